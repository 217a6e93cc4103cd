#!/usr/bin/env node
// The installed entry point; the command itself is compiled to dist/ by `npm run build`.
import '../dist/src/main.js';
