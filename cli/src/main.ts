/** The `jobfleet` command. Each subcommand lives in commands/<name>.ts; the operator commands in jf/. */
import { Command } from 'commander';

const program = new Command('jobfleet')
  .description('Jobfleet: run scripts and ship files across fleets of hosts (BK-JOB v3 compatible API)')
  // No root --version: `admin script push --version V` names a script version, and commander
  // would take a root --version anywhere on the line. `jf --version` prints it.
  .addHelpText(
    'after',
    '\nConfiguration precedence: command-line flag > environment variable > config file > default.',
  );

if (process.argv[2] === 'agent') {
  // The agent runs for as long as its host is up: it loads its own command only, not the
  // server's configuration, schemas and the operator commands (about 15 MiB of an idle agent).
  const { agentCommand } = await import('./commands/agent.js');
  program.addCommand(agentCommand());
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    process.stderr.write(`jobfleet: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
} else {
  const [
    { adminCommand },
    { agentCommand },
    { serveCommand },
    { templateCommand },
    { addOperatorCommands, runProgram },
  ] = await Promise.all([
    import('./commands/admin.js'),
    import('./commands/agent.js'),
    import('./commands/serve.js'),
    import('./commands/template.js'),
    import('./jf/program.js'),
  ]);
  program
    .addCommand(serveCommand())
    .addCommand(agentCommand())
    .addCommand(adminCommand())
    .addCommand(templateCommand());
  addOperatorCommands(program, false);
  await runProgram(program, process.argv);
}
