#!/usr/bin/env node
// The installed `jf` entry point: the operator commands only, so it starts without server code.
import '../dist/src/jf.js';
