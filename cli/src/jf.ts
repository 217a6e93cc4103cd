/** The `jf` command: the operator commands of `jobfleet` alone, without any server code. */
import { Command } from 'commander';
import { VERSION, addOperatorCommands, runProgram } from './jf/program.js';

// `jf jobs ls | head`: a reader that stops early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = addOperatorCommands(
  new Command('jf').description('Jobfleet from the terminal: run, watch, gather, logs').version(VERSION),
  true,
);
await runProgram(program, process.argv);
// fetch's connection pool keeps the process alive for a few hundred milliseconds after the last
// reply; a command that is done exits as soon as its output is written.
process.stdout.write('', () => process.stderr.write('', () => process.exit()));
