/** `jobfleet serve`: runs a server, optionally with an agent for this machine in the same process. */
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
// Only the config schema is loaded up front: the server itself (HTTP, database drivers) is
// loaded when `serve` runs, so other commands such as `agent` stay small in memory.
import { CONFIG_KEYS, loadConfig, readConfigFile } from '@jobfleet/server/config';
import type { ConfigInput } from '@jobfleet/server/config';
import type { RunningServer } from '@jobfleet/server';
import { createAgent } from './agent.js';

const LOCAL_BIZ_ID = 1;

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Business 1 and an execution account named after the current OS user, for the local agent. */
async function ensureLocalBusiness(server: RunningServer): Promise<string> {
  const inv = server.services.store.inventory;
  if (!(await inv.getBiz(LOCAL_BIZ_ID))) await inv.createBiz(LOCAL_BIZ_ID, 'Default business');
  const user = os.userInfo().username;
  const accounts = await inv.listAccounts(LOCAL_BIZ_ID);
  if (!accounts.some((a) => a.alias === user && a.category === 1)) {
    await inv.createAccount({
      bizId: LOCAL_BIZ_ID,
      alias: user,
      osUser: user,
      osType: 'linux',
      creator: 'jobfleet',
    });
  }
  return user;
}

/** How to sign in: the first admin's password when this start created it (shown only now). */
function signIn(server: RunningServer, firstAdmin: { name: string; password: string } | undefined): string[] {
  if (!firstAdmin) {
    return [
      'Sign in with a user made by `npx jobfleet admin user create <name> --platform-admin` (or the existing ones):',
      `  curl -s -c cookies.txt -X POST ${server.url}/api/auth/login -d '{"username":"<name>","password":"<password>"}'`,
    ];
  }
  const body = JSON.stringify({ username: firstAdmin.name, password: firstAdmin.password });
  return [
    `Sign in as "${firstAdmin.name}" with password ${firstAdmin.password}`,
    `  (shown only now; \`npx jobfleet admin user reset-password ${firstAdmin.name}\` sets a new one):`,
    `  curl -s -c cookies.txt -X POST ${server.url}/api/auth/login -d '${body}'`,
  ];
}

function quickstart(
  server: RunningServer,
  user: string,
  firstAdmin: { name: string; password: string } | undefined,
): string {
  const { config, secrets } = server.services;
  const auth = JSON.stringify({
    bk_app_code: config.appCode,
    bk_app_secret: secrets.appSecret,
    bk_username: user,
  });
  const script = Buffer.from('echo "hello from $(hostname)"; uname -a').toString('base64');
  return [
    '',
    `Jobfleet is running at ${server.url} (store: ${server.services.store.caps.name}, data: ${path.resolve(config.dataDir)})`,
    '',
    'Check the local agent:',
    `  curl -s -X POST ${server.url}/api/v3/system/query_agent_info -H 'X-Bkapi-Authorization: ${auth}' \\`,
    `    -d '{"bk_scope_type":"biz","bk_scope_id":"1","host_id_list":[1]}'`,
    '',
    'Run a script on it:',
    `  curl -s -X POST ${server.url}/api/v3/fast_execute_script -H 'X-Bkapi-Authorization: ${auth}' \\`,
    `    -d '{"bk_scope_type":"biz","bk_scope_id":"1","script_language":1,"script_content":"${script}","account_alias":"${user}","target_server":{"ip_list":[{"bk_cloud_id":0,"ip":"127.0.0.1"}]}}'`,
    '',
    `Admin token: ${secrets.adminToken}    Agent bootstrap token: ${secrets.agentBootstrapToken}`,
    '',
    ...signIn(server, firstAdmin),
    '',
  ].join('\n');
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('run a Jobfleet server (API, engine, agent hub)')
    .option('--config <file>', 'JSON config file (env JOBFLEET_CONFIG)')
    .option('--local-agent', 'also run an agent for this machine (127.0.0.1, cloud 0, business 1)');
  for (const [key, def] of Object.entries(CONFIG_KEYS)) {
    cmd.addOption(new Option(`--${kebab(key)} <value>`, `${def.doc} [env ${def.env}]`));
  }
  return cmd.action(async (flags: ConfigInput & { config?: string; localAgent?: boolean }) => {
    const { config: file, localAgent, ...rest } = flags;
    const config = loadConfig({
      flags: rest,
      env: process.env,
      file: readConfigFile(file ?? process.env.JOBFLEET_CONFIG),
    });
    const { startServer, ensureFirstAdmin, hasUsers } = await import('@jobfleet/server');
    const server = await startServer(config);
    let agent: ReturnType<typeof createAgent> | undefined;
    if (localAgent) {
      const user = await ensureLocalBusiness(server);
      agent = createAgent(
        {
          server: `http://127.0.0.1:${server.port}`,
          token: server.services.secrets.agentBootstrapToken,
          ip: '127.0.0.1',
          cloudId: '0',
          biz: String(LOCAL_BIZ_ID),
          stateDir: path.join(config.dataDir, 'local-agent'),
          logFormat: config.logFormat,
        },
        process.stderr,
      );
      agent.start();
      await agent.waitFor('ready', 15_000).catch(() => undefined);
      const firstAdmin = await ensureFirstAdmin(server.services.store);
      process.stdout.write(quickstart(server, user, firstAdmin));
    } else if (!(await hasUsers(server.services.store))) {
      process.stdout.write(
        'No users yet: create the first one with `npx jobfleet admin user create <name> --platform-admin`\n',
      );
    }
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await agent?.stop();
      await server.close();
      process.exit(0);
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
  });
}
