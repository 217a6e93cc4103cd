/** The `jf` command: the operator commands of `jobfleet` alone, without any server code. */
import { Command } from 'commander';
import { Exit } from './jf/exit-codes.js';
import { VERSION, addOperatorCommands, runProgram } from './jf/program.js';

// `jf run ... | head`: a reader that stops early ends jf. The exit code already decided (a
// failed job's 1) stands; before there is one, the outcome is unknown: 141, as for a process
// that SIGPIPE ended.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE')
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : Exit.PIPE_CLOSED);
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
