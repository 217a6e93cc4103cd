/**
 * The execution accounts API end to end on each engine: accounts created through the API run
 * scripts by alias and id; system, Windows and database accounts keep their fields; every
 * refusal answers its documented code; an account still used is not deleted (citers in scopes
 * the caller was not granted are counted, not named); and no password
 * ever shows in a reply, in the server's output or in the database.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { admin, eventually, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { CLI, stopAll } from './helpers/processes.js';

const WINDOWS_PASSWORD = 'Win-Secret-Pass-7c1e!';
const ROTATED_PASSWORD = 'Win-Rotated-Pass-93ab!';
const DB_PASSWORD = 'Db-Secret-Pass-5f02#';
const CLI_PASSWORD = 'Cli-Secret-Pass-0d4a$';
const PASSWORDS = [WINDOWS_PASSWORD, ROTATED_PASSWORD, DB_PASSWORD, CLI_PASSWORD];

interface Account {
  id: number;
  bk_scope_type: string;
  bk_scope_id: string;
  account: string;
  alias: string;
  category: number;
  type: number;
  os: string | null;
  db_port: number | null;
  db_system_account_id: number | null;
  description: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

for (const engine of engines()) {
  describe(`execution accounts on ${engine}`, () => {
    let fleet: Fleet;
    let hostId = 0;
    /** Every reply body, to check that none carries a password. */
    const replies: string[] = [];
    const call = async <T = Account>(name: string, body: Record<string, unknown>) => {
      const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
      replies.push(JSON.stringify(r));
      return r;
    };
    const me = os.userInfo().username;

    before(async () => {
      fleet = await startFleet(engine, 1);
      hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
    });

    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('an account created through the API runs scripts by alias and by id', async () => {
      const r = await call('create_account', {
        account: me,
        alias: 'api-runner',
        type: 1,
        category: 1,
        description: 'made by the API',
      });
      assert.equal(r.result, true, r.message);
      assert.equal(r.data.account, me);
      assert.equal(r.data.alias, 'api-runner');
      assert.equal(r.data.os, 'Linux');
      assert.equal(r.data.creator, 'tester');
      assert.equal(r.data.bk_scope_id, fleet.scope.bk_scope_id);
      assert.equal(r.data.db_system_account_id, null);
      for (const account of [{ account_alias: 'api-runner' }, { account_id: r.data.id }]) {
        const run = await runScript(fleet, {
          ...account,
          script_content: b64('id -un'),
          target_server: { host_id_list: [hostId] },
        });
        assert.equal(run.result, true, run.message);
        const st = await waitFinished(fleet, run.data.job_instance_id);
        assert.equal(st.job_instance.status, 3);
        const log = await hostLog(fleet, run.data.job_instance_id, run.data.step_instance_id, hostId);
        assert.equal(log?.trim(), me);
      }
      // Without a given alias, the alias is the account name (taken here by the fleet's account).
      const dup = await call('create_account', { account: me, type: 1, category: 1 });
      assert.equal(dup.code, 1243007, dup.message);

      // Accounts made with the admin API are the same records.
      const made = await admin<Account & { biz_id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/accounts',
        {
          bk_biz_id: Number(fleet.scope.bk_scope_id),
          alias: 'from-admin',
          os_user: 'Administrator',
          os_type: 'windows',
        },
      );
      assert.equal(made.result, true, made.message);
      assert.equal(Object.keys(made.data).includes('password_sealed'), false);
      const listed = await call<{ data: Account[] }>('get_account_list', { alias: 'from-admin' });
      assert.equal(listed.data.data[0]?.os, 'Windows');
      assert.equal(listed.data.data[0]?.type, 2);
      assert.equal((await call('delete_account', { id: made.data.id })).result, true);
    });

    test('Windows and database accounts, filters, paging and refusals', async () => {
      const runner = (await call('create_account', { account: 'dbclient', type: 1, category: 1 })).data;
      const win = await call('create_account', {
        account: 'Administrator',
        alias: 'win-admin',
        type: 2,
        category: 1,
        password: WINDOWS_PASSWORD,
      });
      assert.equal(win.result, true, win.message);
      assert.equal(win.data.os, 'Windows');
      assert.equal(win.data.type, 2);
      const db = await call('create_account', {
        account: 'app_rw',
        alias: 'mysql-app',
        type: 9,
        category: 2,
        db_password: DB_PASSWORD,
        db_port: 3306,
        db_system_account_id: runner.id,
      });
      assert.equal(db.result, true, db.message);
      assert.equal(db.data.category, 2);
      assert.equal(db.data.os, null);
      assert.equal(db.data.db_port, 3306);
      assert.equal(db.data.db_system_account_id, runner.id);

      const refusals: [Record<string, unknown>, number][] = [
        [{ type: 1, category: 1 }, 1240003],
        [{ account: 'x', type: 1, category: 0 }, 1240003],
        [{ account: 'x', type: 0, category: 1 }, 1240003],
        [{ account: 'x', type: 9, category: 1 }, 1241010],
        [{ account: 'x', type: 1, category: 2 }, 1241010],
        [{ account: 'bad user!', type: 1, category: 1 }, 1241010],
        [{ account: 'x', type: 1, category: 1, password: 'linux-has-none' }, 1241010],
        [{ account: 'x', type: 2, category: 1 }, 1241004],
        [{ account: 'x', type: 2, category: 1, password: 'p'.repeat(118) }, 1240003],
        [{ account: 'x', type: 9, category: 2, db_password: 'p', db_port: 3306 }, 1241004],
        [
          { account: 'x', type: 9, category: 2, db_password: 'p', db_port: 0, db_system_account_id: 1 },
          1240003,
        ],
        [
          {
            account: 'x',
            type: 10,
            category: 2,
            db_password: 'p',
            db_port: 1521,
            db_system_account_id: 999_999,
          },
          1243008,
        ],
        [
          {
            account: 'x',
            type: 10,
            category: 2,
            db_password: 'p',
            db_port: 1521,
            db_system_account_id: db.data.id,
          },
          1243008,
        ],
        // A Windows account cannot run a database client: agents run on Linux.
        [
          {
            account: 'x',
            type: 9,
            category: 2,
            db_password: 'p',
            db_port: 3306,
            db_system_account_id: win.data.id,
          },
          1243008,
        ],
        [{ account: 'x', alias: 'win-admin', type: 2, category: 1, password: 'p' }, 1243007],
        [{ account: 'x', alias: 'nul\u0000', type: 1, category: 1 }, 1240003],
      ];
      const total = async () => (await call<{ total: number }>('get_account_list', {})).data.total;
      const count = await total();
      for (const [body, code] of refusals) {
        const r = await call('create_account', body);
        assert.equal(r.code, code, `${JSON.stringify(body)} -> ${r.code} ${r.message}`);
      }
      assert.equal(await total(), count, 'refused requests stored nothing');

      const list = (body: Record<string, unknown>) =>
        call<{ data: Account[]; total: number; start: number; length: number }>('get_account_list', body);
      const dbOnly = await list({ category: 2 });
      assert.deepEqual(
        dbOnly.data.data.map((a) => a.alias),
        ['mysql-app'],
      );
      assert.equal((await list({ category: 3 })).code, 1240003);
      const byAlias = await list({ alias: 'WIN' });
      assert.deepEqual(
        byAlias.data.data.map((a) => a.id),
        [win.data.id],
      );
      const capped = await list({ length: 5000 });
      assert.equal(capped.data.length, 1000, 'length is capped at 1000');
      const paged = await list({ start: 1, length: 2 });
      const all = await list({ length: 100 });
      assert.deepEqual(
        paged.data.data.map((a) => a.id),
        all.data.data.slice(1, 3).map((a) => a.id),
      );
      assert.deepEqual(
        all.data.data.map((a) => a.id),
        [...all.data.data.map((a) => a.id)].sort((a, b) => a - b),
      );

      const upd = await call('update_account', {
        id: win.data.id,
        alias: 'win-admin-2',
        description: 'rotated',
        password: ROTATED_PASSWORD,
      });
      assert.equal(upd.result, true, upd.message);
      assert.equal(upd.data.alias, 'win-admin-2');
      assert.equal(upd.data.description, 'rotated');
      assert.ok(upd.data.last_modify_time >= win.data.last_modify_time);
      assert.equal((await call('update_account', { id: win.data.id, alias: 'mysql-app' })).code, 0);
      const taken = await call('update_account', { id: runner.id, alias: 'api-runner' });
      assert.equal(taken.code, 1243007, taken.message);
      assert.equal((await call('update_account', { id: runner.id, password: 'x' })).code, 1241010);
      assert.equal((await call('update_account', { id: 999_999, alias: 'z' })).code, 1244003);

      // The system account a database account runs as is not deleted under it.
      const cited = await call('delete_account', { id: runner.id });
      assert.equal(cited.code, 1243014, cited.message);
      assert.match(cited.message, /database account/);
      const deleted = await call('delete_account', { id: db.data.id });
      assert.equal(deleted.result, true, deleted.message);
      assert.equal(deleted.data.id, db.data.id);
      assert.equal((await call('delete_account', { id: runner.id })).result, true);
      assert.equal((await call('delete_account', { id: runner.id })).code, 1244003);
    });

    test('a delete refused for a template of a set the caller was not granted does not name it', async () => {
      const setId = 8_000_201;
      const made = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz_set', {
        id: setId,
        name: 'set of two',
        biz_ids: [Number(fleet.scope.bk_scope_id)],
      });
      assert.equal(made.result, true, made.message);
      const bizApp = { appCode: 'only-the-business', appSecret: 'only-the-business-secret' };
      const granted = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
        app_code: bizApp.appCode,
        app_secret: bizApp.appSecret,
        scopes: [{ type: 'biz', id: Number(fleet.scope.bk_scope_id) }],
      });
      assert.equal(granted.result, true, granted.message);
      const account = await call('create_account', {
        account: 'setuser',
        alias: 'set-user',
        type: 1,
        category: 1,
      });
      assert.equal(account.result, true, account.message);
      const template = await post(
        fleet.server.url,
        'create_job_template',
        {
          bk_scope_type: 'biz_set',
          bk_scope_id: String(setId),
          name: 'hidden-set-template',
          step_list: [
            {
              name: 'hello',
              type: 1,
              script_info: {
                script_content: b64('echo hi'),
                account: { id: account.data.id },
                server: { host_id_list: [] },
              },
            },
          ],
        },
        fleet.creds,
      );
      assert.equal(template.result, true, template.message);
      const refused = await post(
        fleet.server.url,
        'delete_account',
        { ...fleet.scope, id: account.data.id },
        bizApp,
      );
      assert.equal(refused.code, 1243014, refused.message);
      assert.doesNotMatch(refused.message, /hidden-set-template/);
      assert.match(refused.message, /1 in scopes you cannot see/);
      const platform = await call('delete_account', { id: account.data.id });
      assert.match(platform.message, /hidden-set-template/, 'an app of every scope is shown it');
    });

    test('jobfleet admin account takes a password from the environment', async () => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          CLI,
          'admin',
          '--server',
          fleet.server.url,
          'account',
          'create',
          fleet.scope.bk_scope_id,
          'svc_win',
          '--type',
          '2',
          '--password-env',
          'SVC_PASSWORD',
        ],
        {
          env: { ...process.env, JOBFLEET_ADMIN_TOKEN: fleet.server.adminToken, SVC_PASSWORD: CLI_PASSWORD },
        },
      );
      replies.push(stdout);
      const created = JSON.parse(stdout) as Account;
      assert.equal(created.type, 2);
      assert.equal(created.creator, 'admin');
      const byAdmin = await call<{ data: Account[] }>('get_account_list', { creator: 'admin', length: 100 });
      assert.deepEqual(
        byAdmin.data.data.map((a) => a.alias),
        [me, 'svc_win'],
        'the fleet account (admin API) and this one',
      );
    });

    test('a password in a query string is not logged either', async () => {
      const url = new URL(`${fleet.server.url}/api/v3/update_account`);
      url.searchParams.set('bk_app_code', fleet.creds.appCode);
      url.searchParams.set('bk_app_secret', fleet.creds.appSecret);
      url.searchParams.set('password', ROTATED_PASSWORD);
      const res = await fetch(url, {
        method: 'POST',
        body: JSON.stringify({ ...fleet.scope, id: 999_999 }),
      });
      replies.push(await res.text());
      // The request line reaches the captured output a moment after the reply.
      const line = await eventually(async () =>
        fleet.server
          .output()
          .split('\n')
          .find((l) => l.includes('/api/v3/update_account?')),
      );
      assert.match(line, /update_account\?bk_app_code=[^&"]+&bk_app_secret=\*\*\*&password=\*\*\*"/);
      assert.equal(
        fleet.server.output().includes(fleet.creds.appSecret),
        false,
        'the app secret is not logged',
      );
    });

    test('no password in any reply, in the server output or in the database', async () => {
      const seen = [...replies, fleet.server.output()].join('\n');
      for (const p of PASSWORDS) assert.equal(seen.includes(p), false, `a password leaked: ${p}`);
      let stored: string;
      if (fleet.databaseUrl) {
        const client = new pg.Client({ connectionString: fleet.databaseUrl });
        await client.connect();
        try {
          const r = await client.query<{ row: string }>('select t::text as row from account t');
          stored = r.rows.map((x) => x.row).join('\n');
          const sealed = await client.query<{ n: string }>(
            `select count(*) as n from account where password_sealed like 'sb1:%'`,
          );
          assert.equal(Number(sealed.rows[0]?.n), 2, 'the Windows accounts hold a sealed password');
        } finally {
          await client.end();
        }
      } else {
        stored = fs
          .readdirSync(fleet.server.dataDir)
          .filter((f) => f.startsWith('jobfleet.db'))
          .map((f) => fs.readFileSync(path.join(fleet.server.dataDir, f)).toString('latin1'))
          .join('\n');
        assert.match(stored, /sb1:/, 'sealed passwords are in the database');
      }
      for (const p of PASSWORDS)
        assert.equal(stored.includes(p), false, `a password is stored in the clear: ${p}`);
    });
  });
}
