/** The `jobfleet` command. Each subcommand lives in commands/<name>.ts; the operator commands in jf/. */
import { Command } from 'commander';
import { adminCommand } from './commands/admin.js';
import { agentCommand } from './commands/agent.js';
import { serveCommand } from './commands/serve.js';
import { templateCommand } from './commands/template.js';
import { VERSION, addOperatorCommands, runProgram } from './jf/program.js';

const program = new Command('jobfleet')
  .description('Jobfleet: run scripts and ship files across fleets of hosts (BK-JOB v3 compatible API)')
  .version(VERSION)
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
