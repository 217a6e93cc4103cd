/**
 * The operator commands (`jf`, also under `jobfleet`). Nothing here loads server code, so
 * `jf` starts fast; `jobfleet` adds serve/agent/admin on top.
 */
import { CommanderError, Option } from 'commander';
import type { Command } from 'commander';
import { CliError, Exit } from './exit-codes.js';
import { jobCommands } from './job-commands.js';
import { redoCommand, runFileCommand, runPlanCommand } from './launch-commands.js';
import { resourceCommands } from './resource-commands.js';
import { setupCommands } from './setup-commands.js';

export const VERSION = '0.1.0';

/** The connection and output options every operator command takes. */
function addGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'server URL (env JOBFLEET_URL)')
    .option('--token <token>', 'personal API token, or APP_CODE:APP_SECRET (env JOBFLEET_TOKEN)')
    .option('--scope <scope>', 'biz:<id> or biz_set:<id> (env JOBFLEET_SCOPE)')
    .option('--profile <name>', 'profile of the config file (env JOBFLEET_PROFILE)')
    .addOption(new Option('-o, --output <format>', 'human (default), json, ndjson or yaml'))
    .option('--no-color', 'no colours (also NO_COLOR)')
    .option('-q, --quiet', 'no progress or summary on stderr');
}

const HELP = `
Exit codes: 0 all hosts succeeded · 1 the job or a host failed · 2 usage · 3 terminated ·
4 authentication · 5 wait timed out (the job goes on) · 130 Ctrl-C (the job goes on).
--maxrc: the largest host exit code, when larger.

Examples:
  echo "jobfleet:$SECRET" | jf login --server http://127.0.0.1:8080 --token-stdin --scope biz:1
  jf run script -c 'uname -r' -t 10.0.1.[1-40]
  jf result 42 && jf logs 42 --failed`;

/**
 * Adds the operator commands. The common options sit on every operator command, at every level
 * (and on the root of `jf`), so that `jf -o json jobs ls` and `jf jobs ls -o json` both work;
 * each level reads options only up to its subcommand's name, so a command's own option keeps
 * its value (`-p '-o json'`). Under `jobfleet`, serve/agent/admin keep their own --server
 * and --token.
 */
export function addOperatorCommands(program: Command, optionsOnRoot: boolean): Command {
  if (optionsOnRoot) addGlobalOptions(program);
  // Every level, the root of `jobfleet` included, must stop at its subcommand's name: a parent
  // that reads on hands its child the words after the next name as options to read.
  program.enablePositionalOptions();
  program.addHelpText('after', HELP);
  for (const c of [
    ...jobCommands([runFileCommand(), runPlanCommand()]),
    redoCommand(),
    ...resourceCommands(),
    ...setupCommands(() => program),
  ]) {
    withGlobalOptions(c);
    program.addCommand(c);
  }
  return program;
}

function withGlobalOptions(cmd: Command): void {
  addGlobalOptions(cmd);
  if (cmd.commands.length > 0) cmd.enablePositionalOptions();
  for (const c of cmd.commands) withGlobalOptions(c);
}

function applyExitOverride(cmd: Command, root: string): void {
  cmd.exitOverride();
  // Usage errors are one line too: the pointer to --help goes on the same line.
  cmd.configureOutput({
    outputError: (str, write) => write(`${root}: ${str.trimEnd()} (add --help for usage)\n`),
  });
  for (const c of cmd.commands) applyExitOverride(c, root);
}

/** Runs the program: errors are one line on stderr with their documented exit code. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  applyExitOverride(program, program.name());
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed its message already; help and --version are not errors.
      process.exitCode = err.exitCode === 0 ? Exit.OK : Exit.USAGE;
      return;
    }
    const code = err instanceof CliError ? err.exitCode : Exit.FAILED;
    process.stderr.write(`${program.name()}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = code;
  }
}
