/**
 * `jobfleet admin script ...` and `jobfleet admin account ...`: the script library and the
 * execution accounts for people without a BK client. Each subcommand is one (or, for `push`, a
 * few) calls of the BK-JOB API through the admin bridge (/api/admin/v3/<name>), which acts as
 * the platform with the admin token; the reply's `data` is printed as JSON.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';

export interface Conn {
  server: string;
  adminToken: string;
}

interface Envelope<T> {
  result: boolean;
  code: number;
  message: string;
  data: T;
}

async function bk<T = unknown>(conn: Conn, name: string, body: Record<string, unknown>): Promise<T> {
  const res = await fetch(new URL(`/api/admin/v3/${name}`, conn.server), {
    method: 'POST',
    headers: { authorization: `Bearer ${conn.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const env = (await res.json()) as Envelope<T>;
  if (!env.result) throw new Error(`${env.message} (code ${env.code})`);
  return env.data;
}

const print = (data: unknown): void => {
  process.stdout.write(JSON.stringify(data, null, 2) + '\n');
};

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`"${v}" is not an integer`);
  return n;
};

const LANGUAGE_BY_EXTENSION: Record<string, number> = {
  '.sh': 1,
  '.bash': 1,
  '.bat': 2,
  '.cmd': 2,
  '.pl': 3,
  '.py': 4,
  '.ps1': 5,
  '.sql': 6,
};

interface ScopeOpts {
  biz?: string;
  bizSet?: string;
  public?: boolean;
}

/** Business scripts need --biz or --biz-set; --public picks the public_ twin of the API. */
function target(o: ScopeOpts): { prefix: (name: string) => string; scope: Record<string, unknown> } {
  if (o.public) return { prefix: (n) => n.replace('script', 'public_script'), scope: {} };
  if (o.biz) return { prefix: (n) => n, scope: { bk_scope_type: 'biz', bk_scope_id: String(num(o.biz)) } };
  if (o.bizSet)
    return { prefix: (n) => n, scope: { bk_scope_type: 'biz_set', bk_scope_id: String(num(o.bizSet)) } };
  throw new Error('give --biz <id> (or JOBFLEET_BIZ), --biz-set <id> or --public');
}

function scoped(cmd: Command): Command {
  return cmd
    .addOption(new Option('--biz <id>', 'business of the script').env('JOBFLEET_BIZ'))
    .option('--biz-set <id>', 'business set of the script')
    .option('--public', 'a public script (shared by every scope)');
}

const fileContent = (file: string) => fs.readFileSync(file).toString('base64');

export function scriptCommand(conn: () => Conn): Command {
  const script = new Command('script').description('the script library (business and public scripts)');
  const run = (name: string, o: ScopeOpts, body: Record<string, unknown>) => {
    const t = target(o);
    return bk(conn(), t.prefix(name), { ...t.scope, ...body }).then(print);
  };

  scoped(script.command('list'))
    .option('--name <part>', 'part of the name')
    .option('--language <n>', 'script language 1..6')
    .option('--start <n>', 'first item', '0')
    .option('--length <n>', 'items (at most 1000)', '20')
    .action((o: ScopeOpts & { name?: string; language?: string; start: string; length: string }) =>
      run('get_script_list', o, {
        ...(o.name ? { name: o.name } : {}),
        ...(o.language ? { script_language: num(o.language) } : {}),
        start: num(o.start),
        length: num(o.length),
      }),
    );
  scoped(script.command('versions <scriptId>'))
    .option('--content', 'include each version content')
    .action((scriptId: string, o: ScopeOpts & { content?: boolean }) =>
      run('get_script_version_list', o, {
        script_id: scriptId,
        return_script_content: o.content === true,
        length: 1000,
      }),
    );
  scoped(script.command('show <versionId>')).action((versionId: string, o: ScopeOpts) =>
    run('get_script_version_detail', o, { id: num(versionId) }),
  );
  scoped(script.command('create <file>'))
    .description('create a script whose first version (a draft) is the file')
    .requiredOption('--name <name>', 'script name')
    .requiredOption('--version <version>', 'version name')
    .option('--language <n>', 'script language 1..6 (default: from the file extension, else 1)')
    .option('--description <text>', 'script description')
    .option('--version-desc <text>', 'version description')
    .action(
      (
        file: string,
        o: ScopeOpts & {
          name: string;
          version: string;
          language?: string;
          description?: string;
          versionDesc?: string;
        },
      ) =>
        run('create_script', o, {
          name: o.name,
          version: o.version,
          script_language: languageOf(file, o.language),
          content: fileContent(file),
          description: o.description ?? '',
          version_desc: o.versionDesc ?? '',
        }),
    );
  scoped(script.command('add-version <scriptId> <file>'))
    .requiredOption('--version <version>', 'version name')
    .option('--version-desc <text>', 'version description')
    .action((scriptId: string, file: string, o: ScopeOpts & { version: string; versionDesc?: string }) =>
      run('create_script_version', o, {
        script_id: scriptId,
        version: o.version,
        content: fileContent(file),
        version_desc: o.versionDesc ?? '',
      }),
    );
  scoped(script.command('update-version <scriptId> <versionId> <file>'))
    .description('replace the content of a draft version')
    .action((scriptId: string, versionId: string, file: string, o: ScopeOpts) =>
      run('update_script_version', o, {
        script_id: scriptId,
        script_version_id: num(versionId),
        content: fileContent(file),
      }),
    );
  scoped(script.command('rename <scriptId> <name>'))
    .option('--description <text>', 'script description')
    .action((scriptId: string, name: string, o: ScopeOpts & { description?: string }) =>
      run('update_script_basic', o, {
        script_id: scriptId,
        name,
        ...(o.description !== undefined ? { description: o.description } : {}),
      }),
    );
  for (const [cmd, api, what] of [
    ['publish', 'publish_script_version', 'put a version online (the online one goes offline)'],
    ['disable', 'disable_script_version', 'disable a version for good'],
  ] as const) {
    scoped(script.command(`${cmd} <scriptId> <versionId>`))
      .description(what)
      .action((scriptId: string, versionId: string, o: ScopeOpts) =>
        run(api, o, { script_id: scriptId, script_version_id: num(versionId) }),
      );
  }
  scoped(script.command('delete <scriptId> [versionId]'))
    .description('delete one version, or the whole script')
    .action((scriptId: string, versionId: string | undefined, o: ScopeOpts) =>
      versionId === undefined
        ? run('delete_script', o, { script_id: scriptId })
        : run('delete_script_version', o, { script_id: scriptId, script_version_id: num(versionId) }),
    );
  scoped(script.command('push <file>'))
    .description(
      'put a local file into the library: a new script, or a new version of the script of that name',
    )
    .requiredOption('--name <name>', 'script name')
    .requiredOption('--version <version>', 'version name')
    .option(
      '--language <n>',
      'script language 1..6 for a new script (default: from the file extension, else 1)',
    )
    .option('--version-desc <text>', 'version description')
    .option('--publish', 'publish the new version')
    .action(
      async (
        file: string,
        o: ScopeOpts & {
          name: string;
          version: string;
          language?: string;
          versionDesc?: string;
          publish?: boolean;
        },
      ) => {
        const t = target(o);
        const call = <T>(name: string, body: Record<string, unknown>) =>
          bk<T>(conn(), t.prefix(name), { ...t.scope, ...body });
        const content = fileContent(file);
        const found = await call<{ data: { id: string; name: string }[] }>('get_script_list', {
          name: o.name,
          length: 1000,
        });
        const existing = found.data.find((s) => s.name === o.name);
        const created = await call<{ id: number; script_id: string; status: number }>(
          existing ? 'create_script_version' : 'create_script',
          existing
            ? { script_id: existing.id, version: o.version, content, version_desc: o.versionDesc ?? '' }
            : {
                name: o.name,
                version: o.version,
                script_language: languageOf(file, o.language),
                content,
                version_desc: o.versionDesc ?? '',
              },
        );
        if (o.publish) {
          await call('publish_script_version', {
            script_id: created.script_id,
            script_version_id: created.id,
          });
          created.status = 1;
        }
        print(created);
      },
    );
  return script;
}

export function languageOf(file: string, given: string | undefined): number {
  if (given !== undefined) return num(given);
  return LANGUAGE_BY_EXTENSION[path.extname(file).toLowerCase()] ?? 1;
}

export function accountCommand(conn: () => Conn): Command {
  const account = new Command('account').description('execution accounts (system and database)');
  const run = (name: string, biz: string, body: Record<string, unknown>) =>
    bk(conn(), name, { bk_scope_type: 'biz', bk_scope_id: String(num(biz)), ...body }).then(print);
  const passwordOption = new Option(
    '--password-env <var>',
    'read the password (Windows or database account) from this environment variable',
  );
  const password = (v: string | undefined): Record<string, unknown> => {
    if (v === undefined) return {};
    const value = process.env[v];
    if (value === undefined) throw new Error(`environment variable ${v} is not set`);
    return { password: value };
  };

  account
    .command('list <bizId>')
    .option('--category <n>', '1 system, 2 database')
    .option('--alias <part>', 'part of the alias')
    .option('--start <n>', 'first item', '0')
    .option('--length <n>', 'items (at most 1000)', '20')
    .action((biz: string, o: { category?: string; alias?: string; start: string; length: string }) =>
      run('get_account_list', biz, {
        ...(o.category ? { category: num(o.category) } : {}),
        ...(o.alias ? { alias: o.alias } : {}),
        start: num(o.start),
        length: num(o.length),
      }),
    );
  account
    .command('create <bizId> <account>')
    .description('create an account: type 1 Linux, 2 Windows (system); 9 MySQL, 10 Oracle, 11 DB2 (database)')
    .option('--type <n>', 'account type', '1')
    .option('--alias <alias>', 'alias (default: the account name)')
    .option('--description <text>', 'description')
    .addOption(passwordOption)
    .option('--db-port <port>', 'database port (database accounts)')
    .option('--db-system-account <id>', 'system account that runs the database client (database accounts)')
    .action(
      (
        biz: string,
        name: string,
        o: {
          type: string;
          alias?: string;
          description?: string;
          passwordEnv?: string;
          dbPort?: string;
          dbSystemAccount?: string;
        },
      ) => {
        const type = num(o.type);
        return run('create_account', biz, {
          account: name,
          type,
          category: type >= 9 ? 2 : 1,
          ...(o.alias ? { alias: o.alias } : {}),
          ...(o.description ? { description: o.description } : {}),
          ...password(o.passwordEnv),
          ...(o.dbPort ? { db_port: num(o.dbPort) } : {}),
          ...(o.dbSystemAccount ? { db_system_account_id: num(o.dbSystemAccount) } : {}),
        });
      },
    );
  account
    .command('update <bizId> <id>')
    .option('--alias <alias>', 'new alias')
    .option('--description <text>', 'new description')
    .addOption(passwordOption)
    .action((biz: string, id: string, o: { alias?: string; description?: string; passwordEnv?: string }) =>
      run('update_account', biz, {
        id: num(id),
        ...(o.alias ? { alias: o.alias } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
        ...password(o.passwordEnv),
      }),
    );
  account
    .command('delete <bizId> <id>')
    .action((biz: string, id: string) => run('delete_account', biz, { id: num(id) }));
  return account;
}
