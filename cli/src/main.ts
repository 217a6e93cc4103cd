/** The `jobfleet` command. Each subcommand lives in commands/<name>.ts; the operator commands in jf/. */
import { Command } from 'commander';
import { adminCommand } from './commands/admin.js';
import { agentCommand } from './commands/agent.js';
import { serveCommand } from './commands/serve.js';
import { templateCommand } from './commands/template.js';
import { addOperatorCommands, runProgram } from './jf/program.js';

const program = new Command('jobfleet')
  .description('Jobfleet: run scripts and ship files across fleets of hosts (BK-JOB v3 compatible API)')
  // No root --version: `admin script push --version V` names a script version, and commander
  // would take a root --version anywhere on the line. `jf --version` prints it.
  .addHelpText(
    'after',
    '\nConfiguration precedence: command-line flag > environment variable > config file > default.',
  )
  .addCommand(serveCommand())
  .addCommand(agentCommand())
  .addCommand(adminCommand())
  .addCommand(templateCommand());
addOperatorCommands(program, false);

await runProgram(program, process.argv);
