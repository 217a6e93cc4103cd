/** `jobfleet admin user ...`: people, their roles per scope, passwords and tokens. */
import { Command } from 'commander';
import type { call as callFn, Conn } from './admin.js';

const ROLES = ['viewer', 'operator', 'admin'];

/** `biz:2=operator` → {scope_type: 'biz', scope_id: 2, role: 'operator'} */
function parseRole(spec: string): { scope_type: string; scope_id: number; role: string } {
  const m = /^(biz|biz_set):(\d+)=(\w+)$/.exec(spec);
  if (!m || !ROLES.includes(m[3] ?? ''))
    throw new Error(`role "${spec}" is not <biz|biz_set>:<id>=<${ROLES.join('|')}>`);
  return { scope_type: m[1] ?? '', scope_id: Number(m[2]), role: m[3] ?? '' };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

const path = (name: string) => `/users/${encodeURIComponent(name)}`;

export function userCommand(conn: () => Conn, call: typeof callFn): Command {
  const user = new Command('user').description('manage users: accounts, roles per scope, passwords, tokens');
  user
    .command('create <name>')
    .description('create a user; the generated password is printed once (or give one with --password-stdin)')
    .option('--display-name <text>', 'name shown in the console')
    .option('--platform-admin', 'may do anything in every scope and use the admin API')
    .option('--password-stdin', 'read the password from standard input')
    .action(
      async (name: string, o: { displayName?: string; platformAdmin?: boolean; passwordStdin?: boolean }) =>
        call(conn(), 'POST', '/users', {
          name,
          ...(o.displayName ? { display_name: o.displayName } : {}),
          platform_admin: o.platformAdmin === true,
          ...(o.passwordStdin ? { password: await readStdin() } : {}),
        }),
    );
  user
    .command('list')
    .description('list users with their roles')
    .action(() => call(conn(), 'GET', '/users'));
  user
    .command('roles <name> [roles...]')
    .description('set every role of a user, e.g. biz:2=operator biz_set:8000001=viewer (none: remove all)')
    .option('--platform-admin', 'make the user a platform admin')
    .option('--no-platform-admin', 'take platform admin away')
    .action((name: string, roles: string[], o: { platformAdmin?: boolean }) =>
      call(conn(), 'POST', `${path(name)}/roles`, {
        roles: roles.map(parseRole),
        ...(o.platformAdmin === undefined ? {} : { platform_admin: o.platformAdmin }),
      }),
    );
  user
    .command('reset-password <name>')
    .description(
      "set a new password (generated and printed once unless --password-stdin) and end the user's sessions",
    )
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, o: { passwordStdin?: boolean }) =>
      call(conn(), 'POST', `${path(name)}/password`, o.passwordStdin ? { password: await readStdin() } : {}),
    );
  user
    .command('delete <name>')
    .description('delete a user with its roles, sessions and tokens')
    .action((name: string) => call(conn(), 'DELETE', path(name)));
  user
    .command('tokens <name>')
    .description("list a user's personal API tokens (never their values)")
    .action((name: string) => call(conn(), 'GET', `${path(name)}/tokens`));
  user
    .command('revoke-token <id>')
    .description('revoke a personal API token at once')
    .action((id: string) => call(conn(), 'DELETE', `/tokens/${encodeURIComponent(id)}`));
  return user;
}
