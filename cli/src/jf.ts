/** The `jf` command: the operator commands of `jobfleet` alone, without any server code. */
import { Command } from 'commander';
import { VERSION, addOperatorCommands, runProgram } from './jf/program.js';

const program = addOperatorCommands(
  new Command('jf').description('Jobfleet from the terminal: run, watch, gather, logs').version(VERSION),
  true,
);
await runProgram(program, process.argv);
