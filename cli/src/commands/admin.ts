/**
 * `jobfleet admin ...`: manages the inventory, apps and users through the admin API of a running
 * server. Every subcommand is one HTTP call; the reply's `data` is printed as JSON.
 */
import { Command, Option } from 'commander';
import { accountCommand, scriptCommand } from './library.js';
import { userCommand } from './admin-user.js';
import { readValueFile } from '../jf/secret-input.js';

export interface Conn {
  server: string;
  adminToken: string;
}

/** The `data` of an admin API reply; a refusal becomes an error carrying its message and code. */
async function request(
  conn: Conn,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(new URL(`/api/admin${path}`, conn.server), {
    method,
    headers: { authorization: `Bearer ${conn.adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const env = (await res.json()) as { result: boolean; code: number; message: string; data: unknown };
  if (!env.result) throw new Error(`${env.message} (code ${env.code})`);
  return env.data;
}

const print = (data: unknown) => process.stdout.write(JSON.stringify(data, null, 2) + '\n');

export async function call(
  conn: Conn,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<void> {
  print(await request(conn, method, path, body));
}

/**
 * Every host (of a business), read a page at a time so that a 50,000-host fleet is not one reply
 * the server builds whole; printed once at the end, in the shape of the unpaged reply, so that a
 * failure part way prints nothing a script could take for the whole list.
 */
async function listHosts(conn: Conn, bizId: number | undefined, pageSize: number): Promise<void> {
  const hosts: unknown[] = [];
  let after: number | null = 0;
  while (after !== null) {
    const q = new URLSearchParams({ limit: String(pageSize), after_id: String(after) });
    if (bizId !== undefined) q.set('bk_biz_id', String(bizId));
    const page = (await request(conn, 'GET', `/hosts?${q}`)) as {
      hosts: unknown[];
      next_after_id: number | null;
    };
    hosts.push(...page.hosts);
    after = page.next_after_id;
  }
  print({ hosts });
}

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`"${v}" is not an integer`);
  return n;
};
const numList = (v: string) => v.split(',').filter(Boolean).map(num);

function parseScopes(v: string): unknown {
  if (v === 'all') return 'all';
  return v.split(',').map((part) => {
    const [type, id] = part.split(':');
    if ((type !== 'biz' && type !== 'biz_set') || id === undefined)
      throw new Error(`scope "${part}" is not biz:<id> or biz_set:<id>`);
    return { type, id: num(id) };
  });
}

export function adminCommand(): Command {
  const admin = new Command('admin')
    .description('manage businesses, hosts, topology, dynamic groups, accounts, apps, users and crons')
    .addOption(
      new Option('--server <url>', 'server base URL').env('JOBFLEET_SERVER').default('http://127.0.0.1:8080'),
    )
    .addOption(
      new Option('--admin-token <token>', 'admin token').env('JOBFLEET_ADMIN_TOKEN').makeOptionMandatory(),
    );
  const conn = (): Conn => admin.opts<Conn>();

  admin
    .command('biz-list')
    .description('list businesses and business sets')
    .action(() => call(conn(), 'GET', '/biz'));
  admin
    .command('biz-create <id> <name>')
    .description('create a business (id 1..7999999)')
    .action((id: string, name: string) => call(conn(), 'POST', '/biz', { id: num(id), name }));
  admin
    .command('biz-set-create <id> <name> <bizIds>')
    .description('create a business set (id 8000000..9999999) of comma-separated business ids')
    .action((id: string, name: string, bizIds: string) =>
      call(conn(), 'POST', '/biz_set', { id: num(id), name, biz_ids: numList(bizIds) }),
    );
  admin
    .command('host-list')
    .option('--biz <id>', 'only hosts of this business')
    .option('--page-size <n>', 'hosts per request (1..5000)', '1000')
    .action((o: { biz?: string; pageSize: string }) =>
      listHosts(conn(), o.biz ? num(o.biz) : undefined, num(o.pageSize)),
    );
  admin
    .command('host-add <ip>')
    .description('add a host by hand (it has no agent until one registers from that ip)')
    .option('--cloud-id <id>', 'cloud area id', '0')
    .option('--biz <id>', 'business')
    .option('--hostname <name>', 'hostname')
    .action((ip: string, o: { cloudId: string; biz?: string; hostname?: string }) =>
      call(conn(), 'POST', '/hosts', {
        ip,
        bk_cloud_id: num(o.cloudId),
        hostname: o.hostname ?? '',
        ...(o.biz ? { bk_biz_id: num(o.biz) } : {}),
      }),
    );
  admin
    .command('host-assign <hostId> <bizId>')
    .description('move a host into a business')
    .action((hostId: string, bizId: string) =>
      call(conn(), 'POST', `/hosts/${num(hostId)}/biz`, { bk_biz_id: num(bizId) }),
    );
  admin
    .command('host-remove <hostId>')
    .description('remove a host that left the fleet (its agent must register again to come back)')
    .action((hostId: string) => call(conn(), 'DELETE', `/hosts/${num(hostId)}`));
  admin
    .command('scope-time-zone <scope> [zone]')
    .description(
      'show or set the IANA time zone of biz:<id> or biz_set:<id> (its crons default to it); "none" clears it',
    )
    .action((scope: string, zone: string | undefined) => {
      const [s] = parseScopes(scope) as { type: string; id: number }[];
      if (!s) throw new Error(`scope "${scope}" is not biz:<id> or biz_set:<id>`);
      const path = `/scopes/${s.type}/${s.id}/time_zone`;
      if (zone === undefined) return call(conn(), 'GET', path);
      return call(conn(), 'POST', path, { time_zone: zone === 'none' ? null : zone });
    });
  admin
    .command('set-create <bizId> <name>')
    .action((bizId: string, name: string) =>
      call(conn(), 'POST', '/topology/sets', { bk_biz_id: num(bizId), name }),
    );
  admin
    .command('module-create <bizId> <setId> <name>')
    .action((bizId: string, setId: string, name: string) =>
      call(conn(), 'POST', '/topology/modules', { bk_biz_id: num(bizId), set_id: num(setId), name }),
    );
  admin
    .command('module-add-hosts <moduleId> <hostIds>')
    .description('put comma-separated hosts into a module')
    .action((moduleId: string, hostIds: string) =>
      call(conn(), 'POST', `/topology/modules/${num(moduleId)}/hosts`, { host_ids: numList(hostIds) }),
    );
  admin
    .command('topology <bizId>')
    .action((bizId: string) => call(conn(), 'GET', `/topology?bk_biz_id=${num(bizId)}`));
  admin
    .command('group-create <bizId> <name> <filterJson>')
    .description(
      'create a dynamic group; filter like {"ip":["10.0.0.0/8"],"hostname":"web-*","os_type":"linux","module_ids":[3]}',
    )
    .option('--id <id>', 'group id (generated when omitted)')
    .action((bizId: string, name: string, filter: string, o: { id?: string }) =>
      call(conn(), 'POST', '/dynamic_groups', {
        bk_biz_id: num(bizId),
        name,
        filter: JSON.parse(filter) as unknown,
        ...(o.id ? { id: o.id } : {}),
      }),
    );
  admin
    .command('account-create <bizId> <alias> <osUser>')
    .description('create an execution account')
    .option('--os <type>', 'linux or windows', 'linux')
    .action((bizId: string, alias: string, osUser: string, o: { os: string }) =>
      call(conn(), 'POST', '/accounts', { bk_biz_id: num(bizId), alias, os_user: osUser, os_type: o.os }),
    );
  admin
    .command('account-list <bizId>')
    .action((bizId: string) => call(conn(), 'GET', `/accounts?bk_biz_id=${num(bizId)}`));
  admin
    .command('app-create <appCode> [appSecret] [scopes]')
    .description(
      'create or update an app; scopes: all, or e.g. biz:2,biz_set:8000001. With --secret-stdin the secret is read from standard input and left out: app-create CODE SCOPES --secret-stdin',
    )
    .option('--permissions <list>', 'comma-separated platform permissions, e.g. public_script_manage')
    .option('--secret-stdin', 'read the secret from standard input (one final line end is dropped)')
    .action(
      async (
        appCode: string,
        second: string | undefined,
        third: string | undefined,
        o: { permissions?: string; secretStdin?: boolean },
      ) => {
        // A secret given as an argument shows in ps and the shell history; on stdin it does not.
        const [secretArg, scopes] = o.secretStdin ? [undefined, second] : [second, third];
        if (scopes === undefined || (o.secretStdin && third !== undefined))
          throw new Error(
            'give app-create CODE SECRET SCOPES, or app-create CODE SCOPES --secret-stdin with the secret on standard input',
          );
        const appSecret = secretArg ?? (await readValueFile('-'));
        if (appSecret === '') throw new Error('no secret on standard input');
        return call(conn(), 'POST', '/apps', {
          app_code: appCode,
          app_secret: appSecret,
          scopes: parseScopes(scopes),
          permissions: (o.permissions ?? '').split(',').filter(Boolean),
        });
      },
    );
  const cron = admin.command('cron').description('list, enable and disable crons of every scope');
  cron
    .command('list')
    .description('every cron with its status and next run time (seconds)')
    .action(() => call(conn(), 'GET', '/crons'));
  cron
    .command('enable <id>')
    .description('enable a cron (times before now are not caught up)')
    .action((id: string) => call(conn(), 'POST', `/crons/${num(id)}/enable`));
  cron.command('disable <id>').action((id: string) => call(conn(), 'POST', `/crons/${num(id)}/disable`));
  admin.addCommand(scriptCommand(conn));
  admin.addCommand(accountCommand(conn));
  admin
    .command('audit')
    .description('list audit entries (every write through the API and the admin API), newest first')
    .option('--app <code>', 'only calls of this app')
    .option('--user <name>', 'only calls of this user')
    .option('--action <action>', 'only this action, e.g. fast_execute_script or "admin POST /apps"')
    .option('--outcome <outcome>', 'ok, refused or error')
    .option('--actor <kind>', 'app, user, admin, agent or system')
    .option('--since <time>', 'from this time (ISO date or epoch milliseconds)')
    .option('--until <time>', 'up to this time (ISO date or epoch milliseconds)')
    .option('--before-id <id>', 'entries older than this id (the next_before_id of a previous page)')
    .option('--limit <n>', 'entries per page (1..1000)', '100')
    .action((o: Record<string, string | undefined>) => {
      const q = new URLSearchParams();
      const put = (key: string, v: string | undefined) => {
        if (v) q.set(key, v);
      };
      put('app_code', o.app);
      put('username', o.user);
      put('action', o.action);
      put('outcome', o.outcome);
      put('actor_kind', o.actor);
      put('from', o.since && String(epochMs(o.since)));
      put('to', o.until && String(epochMs(o.until)));
      put('before_id', o.beforeId);
      put('limit', o.limit);
      return call(conn(), 'GET', `/audit?${q}`);
    });
  const agent = admin.command('agent').description('revoke and readmit agents, rotate the bootstrap token');
  agent
    .command('revoke <hostId>')
    .description("revoke the host's agent: its token stops working and no agent may register for the host")
    .action((hostId: string) => call(conn(), 'POST', `/agents/${num(hostId)}/revoke`));
  agent
    .command('readmit <hostId>')
    .description('let an agent register for a revoked host again (with the bootstrap token)')
    .action((hostId: string) => call(conn(), 'POST', `/agents/${num(hostId)}/readmit`));
  agent
    .command('rotate-bootstrap-token')
    .description(
      'replace the bootstrap token for every server of the cluster; registered agents are not touched',
    )
    .option('--token <token>', 'the new token (16+ characters; a random one when omitted)')
    .action((o: { token?: string }) =>
      call(conn(), 'POST', '/agents/bootstrap-token', o.token ? { token: o.token } : {}),
    );
  admin
    .command('host-identity <hostId> <ip>')
    .description("change the identity (cloud id + ip) a host's agent must report")
    .option('--cloud-id <id>', 'cloud area id', '0')
    .action((hostId: string, ip: string, o: { cloudId: string }) =>
      call(conn(), 'POST', `/hosts/${num(hostId)}/identity`, { ip, bk_cloud_id: num(o.cloudId) }),
    );
  admin
    .command('cluster')
    .description('the servers of a cluster: state, age, agents held, jobs owned')
    .action(() => call(conn(), 'GET', '/cluster'));
  admin
    .command('drain <server>')
    .description(
      'make a cluster server (its id or URL, as `admin cluster` lists) hand its jobs and agents to the others and exit',
    )
    .action((server: string) => call(conn(), 'POST', '/cluster/drain', { server }));
  admin.addCommand(userCommand(conn, call));
  return admin;
}

function epochMs(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) throw new Error(`"${v}" is not a date or epoch milliseconds`);
  return n;
}
