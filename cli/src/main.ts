/** The `jobfleet` command. Each subcommand lives in commands/<name>.ts. */
import { Command } from 'commander';
import { adminCommand } from './commands/admin.js';
import { agentCommand } from './commands/agent.js';
import { serveCommand } from './commands/serve.js';
import { templateCommand } from './commands/template.js';

const program = new Command('jobfleet')
  .description('Jobfleet: run scripts and ship files across fleets of hosts (BK-JOB v3 compatible API)')
  .addHelpText(
    'after',
    '\nConfiguration precedence: command-line flag > environment variable > config file > default.',
  )
  .addCommand(serveCommand())
  .addCommand(agentCommand())
  .addCommand(adminCommand())
  .addCommand(templateCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`jobfleet: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
