/** `jf login`, `jf doctor`, `jf api`, `jf completion` and the resource commands. */
import fs from 'node:fs';
import { Command, Option } from 'commander';
import { ApiClient, replyExitCode } from './api-client.js';
import { contextOf, globalOptionsOf, outputOf, positiveInt } from './context.js';
import { CliError, Exit } from './exit-codes.js';
import { configPath } from './config-path.js';
import { paint, printData, table } from './render.js';
import { completionScript } from './completion.js';
import { addScriptCommands } from './resource-commands.js';
import { readStdinLine, readValueFile } from './secret-input.js';

function loginCommand(): Command {
  return new Command('login')
    .description(`store a profile (server, token, scope) in ${configPath()} with mode 0600`)
    .option('--token-stdin', 'read the token from the first line of standard input')
    .option('--name <profile>', 'profile name', 'default')
    .option('-a, --account <alias>', 'default execution account for jf run')
    .option('--user <name>', 'the person acting, when the token is an app code:secret')
    .option('--no-verify', 'save without checking the server')
    .addHelpText(
      'after',
      `
The token is a personal API token (jft_...) or an app as APP_CODE:APP_SECRET, read from
standard input (--token-stdin), else --token, else JOBFLEET_TOKEN; a token on the command line
shows in ps and the shell history.
Examples:
  jf login --server https://jobfleet.example --scope biz:2 --token-stdin < ~/.jobfleet-token
  echo "jobfleet:$SECRET" | jf login --server http://127.0.0.1:8080 --token-stdin --scope biz:1`,
    )
    .action(
      async (
        flags: { tokenStdin?: boolean; name: string; account?: string; user?: string; verify: boolean },
        cmd: Command,
      ) => {
        const g = globalOptionsOf(cmd);
        if (flags.tokenStdin && g.token)
          throw new CliError('give the token with --token-stdin or --token, not both', Exit.USAGE);
        const token = flags.tokenStdin ? await readStdinLine('token') : g.token || process.env.JOBFLEET_TOKEN;
        if (!g.server || !token)
          throw new CliError(
            'jf login needs --server and a token (--token-stdin, --token or JOBFLEET_TOKEN)',
            Exit.USAGE,
          );
        const { parseScope, parseToken, resolveConnection, saveProfile } = await import('./profile.js');
        if (g.scope) parseScope(g.scope);
        parseToken(token);
        if (flags.verify) {
          const client = new ApiClient(
            await resolveConnection(
              { server: g.server, token, scope: g.scope },
              { ...process.env, XDG_CONFIG_HOME: '/nonexistent' },
            ),
          );
          await client.call('get_latest_service_version', {}, false);
          if (g.scope)
            await client.call('get_job_instance_list', {
              create_time_start: Date.now() - 60_000,
              create_time_end: Date.now(),
              length: 1,
            });
        }
        await saveProfile(flags.name, {
          server: g.server,
          token,
          ...(g.scope ? { scope: g.scope } : {}),
          ...(flags.account ? { account: flags.account } : {}),
          ...(flags.user ? { user: flags.user } : {}),
        });
        if (!outputOf(cmd).quiet) process.stderr.write(`profile "${flags.name}" saved to ${configPath()}\n`);
      },
    );
}

interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

function doctorCommand(): Command {
  return new Command('doctor')
    .description('check the server, credentials, scope and clock skew, and say what to fix')
    .addHelpText('after', '\nExamples:\n  jf doctor\n  jf doctor --profile prod -o json')
    .action(async (_f: unknown, cmd: Command) => {
      const ctx = await contextOf(cmd);
      const { client, out } = ctx;
      const checks: Check[] = [];
      const t0 = Date.now();
      let reached = false;
      try {
        const res = await client.raw('POST', '/api/v3/get_latest_service_version', '{}');
        reached = true;
        const rtt = Date.now() - t0;
        checks.push({ check: 'server', ok: true, detail: `${client.conn.server} answered in ${rtt} ms` });
        if (res.date) {
          const skew = Math.round((Date.parse(res.date) - (t0 + rtt / 2)) / 1000);
          checks.push({
            check: 'clock',
            ok: Math.abs(skew) <= 30,
            detail:
              Math.abs(skew) <= 30
                ? `skew ${skew} s`
                : `this machine is ${-skew} s off the server clock; fix NTP (signed requests allow 300 s)`,
          });
        }
      } catch (err) {
        checks.push({
          check: 'server',
          ok: false,
          detail: `${err instanceof Error ? err.message : String(err)}; check --server / JOBFLEET_URL`,
        });
      }
      if (reached) {
        try {
          await client.call('get_latest_service_version', {}, false);
          checks.push({
            check: 'auth',
            ok: true,
            detail: client.conn.auth?.kind === 'app' ? `app ${client.conn.auth.code}` : 'personal token',
          });
          if (!client.conn.scope)
            checks.push({
              check: 'scope',
              ok: false,
              detail: 'no default scope; pass --scope biz:<id> or jf login --scope',
            });
          else {
            try {
              const now = Date.now();
              await client.call('get_job_instance_list', {
                create_time_start: now - 60_000,
                create_time_end: now,
                length: 1,
              });
              checks.push({
                check: 'scope',
                ok: true,
                detail: `${client.conn.scope.type}:${client.conn.scope.id}`,
              });
            } catch (err) {
              checks.push({
                check: 'scope',
                ok: false,
                detail: `${(err as Error).message}; pick a scope you are granted`,
              });
            }
          }
        } catch (err) {
          checks.push({
            check: 'auth',
            ok: false,
            detail: `${(err as Error).message}; run jf login with a valid token`,
          });
        }
      }
      const c = paint(out);
      printData(out, checks, () =>
        checks
          .map((k) => `${k.ok ? c.green('ok  ') : c.red('FAIL')} ${k.check.padEnd(7)} ${k.detail}`)
          .join('\n'),
      );
      const failed = checks.find((k) => !k.ok);
      if (failed) process.exitCode = failed.check === 'auth' ? Exit.AUTH : Exit.FAILED;
    });
}

function apiCommand(): Command {
  return new Command('api')
    .description('a raw authenticated call; the reply body is printed unchanged')
    .argument('<method>', 'GET or POST')
    .argument('<path>', 'path, e.g. /api/v3/get_job_instance_status?job_instance_id=1')
    .option('-d, --data <json>', 'request body, or @file (@- reads standard input)')
    .addHelpText(
      'after',
      '\nExamples:\n  jf api POST /api/v3/get_job_instance_status -d \'{"bk_scope_type":"biz","bk_scope_id":"2","job_instance_id":7}\'\n  jf api GET \'/api/v3/get_latest_service_version\'',
    )
    .action(async (method: string, path: string, flags: { data?: string }, cmd: Command) => {
      const body = flags.data?.startsWith('@') ? await readValueFile(flags.data.slice(1)) : flags.data;
      const { client } = await contextOf(cmd);
      const res = await client.raw(method.toUpperCase(), path.startsWith('/') ? path : `/${path}`, body);
      process.stdout.write(res.text.endsWith('\n') ? res.text : res.text + '\n');
      process.exitCode = replyExitCode(res.status, res.text);
    });
}

function listCommand(
  name: string,
  description: string,
  example: string,
  run: (
    client: ApiClient,
  ) => Promise<{ rows: unknown[]; head: string[]; cells: (r: never) => (string | number | null)[] }>,
): Command {
  return new Command(name)
    .description(description)
    .addHelpText('after', `\nExamples:\n  ${example}`)
    .action(async (_f: unknown, cmd: Command) => {
      const ctx = await contextOf(cmd);
      const { rows, head, cells } = await run(ctx.client);
      printData(ctx.out, rows, () =>
        table(
          head,
          rows.map((r) => cells(r as never)),
        ),
      );
    });
}

function resourceCommands(): Command[] {
  const scripts = new Command('scripts').description('the script library of the scope').addCommand(
    listCommand('ls', 'library scripts', "jf scripts ls -o json | jq '.[].name'", async (client) => {
      const rows = await client.readAll<{
        id: string;
        name: string;
        type: number;
        online_script_version_id: number | null;
        last_modify_user: string;
      }>('get_script_list');
      return {
        rows,
        head: ['ID', 'ONLINE VERSION', 'MODIFIED BY', 'NAME'],
        cells: (s: (typeof rows)[number]) => [s.id, s.online_script_version_id, s.last_modify_user, s.name],
      };
    }),
  );
  scripts.addCommand(
    new Command('versions')
      .description('versions of a library script')
      .argument('<script>', 'script id')
      .addHelpText('after', '\nExamples:\n  jf scripts versions 3f2a9c')
      .action(async (id: string, _f: unknown, cmd: Command) => {
        const ctx = await contextOf(cmd);
        const rows = await ctx.client.readAll<{
          id: number;
          version: string;
          status: number;
          last_modify_user: string;
        }>('get_script_version_list', { script_id: id });
        printData(ctx.out, rows, () =>
          table(
            ['VERSION ID', 'VERSION', 'STATUS', 'MODIFIED BY'],
            rows.map((v) => [v.id, v.version, v.status, v.last_modify_user]),
          ),
        );
      }),
  );
  const accounts = new Command('accounts').description('execution accounts of the scope').addCommand(
    listCommand('ls', 'accounts', 'jf accounts ls', async (client) => {
      const rows = await client.readAll<{
        id: number;
        alias: string;
        account: string;
        category: number;
        os: string;
      }>('get_account_list');
      return {
        rows,
        head: ['ID', 'ALIAS', 'ACCOUNT', 'CATEGORY'],
        cells: (a: (typeof rows)[number]) => [a.id, a.alias, a.account, a.category === 2 ? 'db' : 'system'],
      };
    }),
  );
  const rules = new Command('rules').description('dangerous-command rules').addCommand(
    listCommand('ls', 'rules', 'jf rules ls', async (client) => {
      const r = await client.call<
        { id: number; expression: string; action: number; status: number; description: string }[]
      >('get_dangerous_rule_list', {}, false);
      return {
        rows: r,
        head: ['ID', 'ACTION', 'ENABLED', 'EXPRESSION', 'DESCRIPTION'],
        cells: (x: (typeof r)[number]) => [
          x.id,
          x.action === 2 ? 'block' : 'scan',
          x.status === 1 ? 'yes' : 'no',
          x.expression,
          x.description,
        ],
      };
    }),
  );
  rules.addCommand(
    new Command('test')
      .description('which enabled rules a script hits, before it runs (exit 1 when any does)')
      .argument('<file>', 'script file')
      .addOption(
        new Option('-l, --lang <language>', 'script language')
          .choices(['shell', 'bat', 'perl', 'python', 'powershell'])
          .default('shell'),
      )
      .addHelpText('after', '\nExamples:\n  jf rules test deploy.sh && jf run script -f deploy.sh -t @hosts')
      .action(async (file: string, flags: { lang: string }, cmd: Command) => {
        const ctx = await contextOf(cmd);
        let text: string;
        try {
          text = fs.readFileSync(file, 'utf8');
        } catch {
          throw new CliError(`cannot read ${file}`, Exit.USAGE);
        }
        const lang = ['shell', 'bat', 'perl', 'python', 'powershell'].indexOf(flags.lang) + 1;
        const hits = await ctx.client.call<
          { line: number; line_content: string; match_content: string; description: string }[]
        >('check_script', { script_language: lang, content: Buffer.from(text).toString('base64') }, false);
        printData(ctx.out, hits, () =>
          hits.length === 0
            ? 'no rule hit'
            : hits.map((h) => `${file}:${h.line}: ${h.description}: ${h.line_content.trim()}`).join('\n'),
        );
        if (hits.length) process.exitCode = Exit.FAILED;
      }),
  );
  const agents = new Command('agents').description('agent status of hosts').addCommand(
    new Command('ls')
      .description('agent status of host ids')
      .addHelpText(
        'after',
        '\nExamples:\n  jf agents ls 1 2 3\n  jf agents ls $(jf hosts 42 --format ids | tr , " ")',
      )
      .argument('<hosts...>', 'host ids', (v: string, prev: number[] = []) => [
        ...prev,
        positiveInt('host id')(v),
      ])
      .action(async (ids: number[], _f: unknown, cmd: Command) => {
        const ctx = await contextOf(cmd);
        const data = await ctx.client.callPath<{
          agent_info_list: { bk_host_id: number; status: number; version: string }[];
        }>('/api/v3/system/query_agent_info', { host_id_list: ids });
        const list = data.agent_info_list;
        printData(ctx.out, list, () =>
          table(
            ['HOST', 'STATUS', 'VERSION'],
            list.map((a) => [a.bk_host_id, a.status === 1 ? 'normal' : 'abnormal', a.version]),
          ),
        );
      }),
  );
  return [addScriptCommands(scripts), accounts, rules, agents];
}

function completionCommand(root: () => Command): Command {
  return new Command('completion')
    .description('print a shell completion script')
    .addArgument(
      new Command().createArgument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']),
    )
    .addHelpText(
      'after',
      '\nExamples:\n  jf completion bash > /etc/bash_completion.d/jf   # or: source <(jf completion bash)\n  jf completion fish > ~/.config/fish/completions/jf.fish',
    )
    .action((shell: 'bash' | 'zsh' | 'fish') => {
      process.stdout.write(completionScript(root(), shell));
    });
}

export function setupCommands(root: () => Command): Command[] {
  return [loginCommand(), doctorCommand(), ...resourceCommands(), apiCommand(), completionCommand(root)];
}
