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
    .addOption(new Option('-o, --output <format>', 'human, json, ndjson or yaml').default('human'))
    .option('--no-color', 'no colours (also NO_COLOR)')
    .option('-q, --quiet', 'no progress or summary on stderr');
}

const HELP = `
Exit codes: 0 all hosts succeeded · 1 the job or a host failed · 2 usage · 3 terminated ·
4 authentication · 5 wait timed out (the job goes on). --maxrc: the largest host exit code.

Examples:
  jf login --server http://127.0.0.1:8080 --token jobfleet:SECRET --scope biz:1
  jf run script -c 'uname -r' -t 10.0.1.[1-40]
  jf result 42 && jf logs 42 --failed`;

/**
 * Adds the operator commands. For \`jf\` the common options sit on the root (accepted anywhere);
 * under \`jobfleet\`, whose serve/agent/admin have their own --server and --token, they sit on each
 * operator command instead so they never take those commands' options.
 */
export function addOperatorCommands(program: Command, optionsOnRoot: boolean): Command {
  if (optionsOnRoot) addGlobalOptions(program);
  program.addHelpText('after', HELP);
  for (const c of [
    ...jobCommands([runFileCommand(), runPlanCommand()]),
    redoCommand(),
    ...resourceCommands(),
    ...setupCommands(() => program),
  ])
    program.addCommand(optionsOnRoot ? c : addGlobalOptions(c));
  return program;
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
