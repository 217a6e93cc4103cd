/**
 * fast_execute_sql end to end against a real MariaDB server: the targets are database hosts,
 * each agent runs the MariaDB client as the database account's linked system account. Checks
 * output, a failing statement, a wrong password (which must show up nowhere), terminate and
 * timeout stopping the statement on the database side, dangerous rules and bad input.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, post, eventually } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, hostStatuses, jobCount, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { startMariaDb } from './helpers/mariadb.js';
import type { MariaDb } from './helpers/mariadb.js';
import { stopAll } from './helpers/processes.js';

const GOOD_PASSWORD = 'Sq1-g00d"pa\\ss#word';
const BAD_PASSWORD = 'Wr0ng-pass#word-4711';

let maria: MariaDb;
before(async () => {
  maria = await startMariaDb();
  await maria.rootQuery(
    [
      'CREATE DATABASE app',
      'CREATE TABLE app.seen (conn BIGINT)',
      `CREATE USER 'jf'@'127.0.0.1' IDENTIFIED BY '${GOOD_PASSWORD.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`,
      "GRANT ALL ON app.* TO 'jf'@'127.0.0.1'",
      // PROCESS lets the test's checks see other sessions; the client's KILL QUERY needs only its own.
      "GRANT PROCESS ON *.* TO 'jf'@'127.0.0.1'",
    ].join(';\n') + ';',
  );
});
after(async () => {
  await stopAll();
  await dropFreshDatabases();
  await maria?.stop();
});

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p) : [p];
  });
}

/** Every byte under `dir` (database files, spools, secrets) as latin1 text, for greps. */
function everythingUnder(dir: string): string {
  return listFiles(dir)
    .map((f) => fs.readFileSync(f).toString('latin1'))
    .join('\n');
}

async function sleepingQueries(): Promise<string[]> {
  const out = await maria.rootQuery(
    "SELECT info FROM information_schema.processlist WHERE info LIKE 'select sleep%'",
  );
  return out.split('\n').filter((l) => l.trim() !== '');
}

for (const engine of engines()) {
  describe(`fast_execute_sql on ${engine}`, () => {
    let fleet: Fleet;
    let dbAccountId: number;
    let badAccountId: number;
    let systemAccountId: number;

    const runSql = (body: Record<string, unknown>) =>
      post<{ job_instance_id: number; step_instance_id: number | null; job_instance_name: string }>(
        fleet.server.url,
        'fast_execute_sql',
        { ...fleet.scope, ...body },
        fleet.creds,
      );
    const allHosts = () => ({ host_id_list: [...fleet.hostIds.values()] });
    /** `sql` on the first host as `account`, until the job ends. */
    const runOnOneHost = async (sql: string, account = dbAccountId) => {
      const [hostId] = fleet.hostIds.values();
      const r = await runSql({
        script_content: b64(sql),
        db_account_id: account,
        target_server: { host_id_list: [hostId] },
      });
      assert.ok(r.result, r.message);
      return { r, st: await waitFinished(fleet, r.data.job_instance_id, 30_000), hostId: hostId! };
    };

    before(async () => {
      fleet = await startFleet(engine, 3);
      const accounts = await get<{ data: { id: number; alias: string; category: number }[] }>(
        fleet.server.url,
        'get_account_list',
        { ...fleet.scope, category: 1 },
        fleet.creds,
      );
      assert.ok(accounts.result, accounts.message);
      systemAccountId = accounts.data.data.find((a) => a.alias === fleet.account)?.id ?? 0;
      assert.ok(systemAccountId > 0);
      const create = async (alias: string, password: string) => {
        const r = await post<{ id: number }>(
          fleet.server.url,
          'create_account',
          {
            ...fleet.scope,
            account: 'jf',
            alias,
            type: 9,
            category: 2,
            db_password: password,
            db_port: maria.port,
            db_system_account_id: systemAccountId,
          },
          fleet.creds,
        );
        assert.ok(r.result, r.message);
        return r.data.id;
      };
      dbAccountId = await create('app-db', GOOD_PASSWORD);
      badAccountId = await create('app-db-wrong', BAD_PASSWORD);
    });

    it('creates, inserts and selects on 3 database hosts; each host shows the client output', async () => {
      await maria.rootQuery('DELETE FROM app.seen');
      const sql = [
        'CREATE TEMPORARY TABLE app.t (name VARCHAR(20));',
        "INSERT INTO app.t VALUES ('alpha'), ('beta');",
        'SELECT name FROM app.t ORDER BY name;',
        'INSERT INTO app.seen VALUES (CONNECTION_ID());',
      ].join('\n');
      const r = await runSql({
        script_content: b64(sql),
        db_account_id: dbAccountId,
        target_server: allHosts(),
      });
      assert.ok(r.result, r.message);
      assert.equal(r.data.step_instance_id, null, 'BK-JOB leaves step_instance_id null');
      assert.match(r.data.job_instance_name, /^SQL Script_\d+/);
      const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
      assert.equal(st.job_instance.status, 3);
      const step = st.step_instance_list[0]!;
      assert.equal(step.type, 4);
      for (const hostId of fleet.hostIds.values()) {
        const log = (await hostLog(fleet, r.data.job_instance_id, step.step_instance_id, hostId)) ?? '';
        assert.match(log, /Query OK, 2 rows affected/);
        assert.match(log, /\| name {2}\|\n\+-+\+\n\| alpha \|\n\| beta {2}\|/);
        assert.match(log, /2 rows in set/);
      }
      assert.equal((await maria.rootQuery('SELECT COUNT(DISTINCT conn) FROM app.seen')).trim(), '3');
      const list = await get<{ data: { job_instance_id: number; type: number }[] }>(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: Date.now() - 600_000, create_time_end: Date.now() + 60_000 },
        fleet.creds,
      );
      assert.equal(list.data.data.find((j) => j.job_instance_id === r.data.job_instance_id)?.type, 1);
    });

    it('stops at a failing statement: the host fails with the MySQL error and line, later lines never run', async () => {
      await maria.rootQuery('DELETE FROM app.seen');
      const sql = [
        'INSERT INTO app.seen VALUES (-1);',
        'SELECT 1;',
        'SELEC broken;',
        'INSERT INTO app.seen VALUES (-2);',
      ].join('\n');
      const { r, st, hostId } = await runOnOneHost(sql);
      assert.equal(st.job_instance.status, 4);
      const host = st.step_instance_list[0]!.step_ip_result_list![0]!;
      assert.equal(host.exit_code, 1);
      assert.equal(host.status, 104);
      const log =
        (await hostLog(fleet, r.data.job_instance_id, st.step_instance_list[0]!.step_instance_id, hostId)) ??
        '';
      assert.match(log, /ERROR 1064 \(42000\) at line 3/);
      assert.equal((await maria.rootQuery('SELECT COUNT(*) FROM app.seen WHERE conn = -1')).trim(), '1');
      assert.equal((await maria.rootQuery('SELECT COUNT(*) FROM app.seen WHERE conn = -2')).trim(), '0');
    });

    it('a wrong password fails the host with access denied, and no password shows anywhere', async () => {
      const { r, st, hostId } = await runOnOneHost('SELECT 1;', badAccountId);
      assert.equal(st.job_instance.status, 4);
      const stepId = st.step_instance_list[0]!.step_instance_id;
      const log = (await hostLog(fleet, r.data.job_instance_id, stepId, hostId)) ?? '';
      assert.match(log, /ERROR 1045 \(28000\).*Access denied for user 'jf'/);
      const replies = JSON.stringify([
        r,
        st,
        log,
        await get(fleet.server.url, 'get_account_list', { ...fleet.scope, category: 2 }, fleet.creds),
        await get(
          fleet.server.url,
          'get_step_instance_detail',
          { ...fleet.scope, job_instance_id: r.data.job_instance_id, step_instance_id: stepId },
          fleet.creds,
        ),
      ]);
      for (const secret of [BAD_PASSWORD, GOOD_PASSWORD]) {
        assert.ok(!replies.includes(secret), 'password in a reply');
        assert.ok(!fleet.server.output().includes(secret), 'password in the server log');
        for (const agent of fleet.agents) {
          assert.ok(!agent.output().includes(secret), 'password in an agent log');
          assert.ok(!everythingUnder(agent.stateDir).includes(secret), 'password in an agent spool');
        }
        assert.ok(!everythingUnder(fleet.server.dataDir).includes(secret), 'password in the data directory');
      }
    });

    it("the SQL cannot read its client's password back: system, source and LOAD DATA LOCAL refused", async () => {
      await maria.rootQuery('CREATE TABLE IF NOT EXISTS app.loaded (line TEXT)');
      for (const sql of [
        'SELECT 1;\nsystem cat client.cnf\n',
        'SELECT 1;\nsource client.cnf\n',
        "LOAD DATA LOCAL INFILE 'client.cnf' INTO TABLE app.loaded;\nSELECT line FROM app.loaded;\n",
      ]) {
        const { r, st, hostId } = await runOnOneHost(sql);
        const stepId = st.step_instance_list[0]!.step_instance_id;
        const log = (await hostLog(fleet, r.data.job_instance_id, stepId, hostId)) ?? '';
        // The option file holds the password with its quote and backslash escaped: its middle.
        assert.doesNotMatch(log, /g00d|password=|\[client\]/, `${sql.trim()}: ${log}`);
        assert.equal(st.job_instance.status, 4, `${sql.trim()} is refused: ${log}`);
      }
      assert.equal((await maria.rootQuery('SELECT COUNT(*) FROM app.loaded')).trim(), '0');
    });

    it('a database account deleted before its job starts fails the hosts as an unknown account', async () => {
      const [hostId] = fleet.hostIds.values();
      const made = await post<{ id: number }>(
        fleet.server.url,
        'create_account',
        {
          ...fleet.scope,
          account: 'jf',
          alias: 'app-db-gone',
          type: 9,
          category: 2,
          db_password: GOOD_PASSWORD,
          db_port: maria.port,
          db_system_account_id: systemAccountId,
        },
        fleet.creds,
      );
      assert.ok(made.result, made.message);
      const r = await runSql({
        script_content: b64('SELECT 1;'),
        db_account_id: made.data.id,
        start_task: false,
        target_server: { host_id_list: [hostId] },
      });
      assert.ok(r.result, r.message);
      const gone = await post(
        fleet.server.url,
        'delete_account',
        { ...fleet.scope, id: made.data.id },
        fleet.creds,
      );
      assert.ok(gone.result, gone.message);
      const started = await post(
        fleet.server.url,
        'operate_job_instance',
        { ...fleet.scope, job_instance_id: r.data.job_instance_id, operation_code: 2 },
        fleet.creds,
      );
      assert.ok(started.result, started.message);
      const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
      assert.equal(st.job_instance.status, 4);
      assert.deepEqual(
        (st.step_instance_list[0]?.step_ip_result_list ?? []).map((h) => [
          h.bk_host_id,
          h.status,
          h.error_code,
        ]),
        [[hostId, 12, 1244003]],
      );
      // The server's log reaches this test through a pipe, after the status does.
      await eventually(
        async () =>
          /database account \d+ was deleted after the job was submitted/.test(fleet.server.output())
            ? true
            : undefined,
        10_000,
        'the log line of the deleted account',
      );
    });

    it('terminate stops the statement on the database; the client never shows the password in ps', async () => {
      const [hostId] = fleet.hostIds.values();
      const r = await runSql({
        script_content: b64('select sleep(120);'),
        db_account_id: dbAccountId,
        target_server: { host_id_list: [hostId] },
      });
      assert.ok(r.result, r.message);
      await eventually(
        async () => ((await sleepingQueries()).length > 0 ? true : undefined),
        20_000,
        'the query to run',
      );
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      assert.match(ps, /defaults-extra-file=.*client\.cnf/, 'the client is running');
      assert.ok(!ps.includes(GOOD_PASSWORD) && !ps.includes('Sq1-g00d'), 'password in the process list');
      const op = await post(
        fleet.server.url,
        'operate_job_instance',
        { ...fleet.scope, job_instance_id: r.data.job_instance_id, operation_code: 1 },
        fleet.creds,
      );
      assert.ok(op.result, op.message);
      const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
      assert.equal(st.job_instance.status, 11);
      await eventually(
        async () => ((await sleepingQueries()).length === 0 ? true : undefined),
        10_000,
        'the query to stop',
      );
    });

    it('the timeout kills the session on the database side', async () => {
      const [hostId] = fleet.hostIds.values();
      const r = await runSql({
        script_content: b64('select sleep(120);'),
        db_account_id: dbAccountId,
        timeout: 2,
        target_server: { host_id_list: [hostId] },
      });
      assert.ok(r.result, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
      assert.equal(hostStatuses(st).get(hostId!), 102);
      await eventually(
        async () => ((await sleepingQueries()).length === 0 ? true : undefined),
        10_000,
        'the query to stop',
      );
    });

    it('a SQL step of a plan runs as its database account and shows as step type 4', async () => {
      await maria.rootQuery('DELETE FROM app.seen');
      const call = <T>(name: string, body: Record<string, unknown>) =>
        post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
      const template = await call<{ id: number }>('create_job_template', {
        name: `sql template ${engine}`,
        step_list: [
          {
            name: 'record',
            type: 1,
            script_info: {
              script_content: b64(
                'INSERT INTO app.seen VALUES (CONNECTION_ID());\nSELECT COUNT(*) AS n FROM app.seen;',
              ),
              script_language: 6,
              account: { id: dbAccountId },
              server: allHosts(),
            },
          },
        ],
      });
      assert.ok(template.result, template.message);
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.data.id,
        name: 'sql',
      });
      assert.ok(plan.result, plan.message);
      const detail = await get<{ step_list: { type: number; script_info: { script_language: number } }[] }>(
        fleet.server.url,
        'get_job_plan_detail',
        { ...fleet.scope, job_plan_id: plan.data.id },
        fleet.creds,
      );
      assert.deepEqual(
        detail.data.step_list.map((st) => [st.type, st.script_info.script_language]),
        [[1, 6]],
      );
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.data.id });
      assert.ok(run.result, run.message);
      const st = await waitFinished(fleet, run.data.job_instance_id, 30_000);
      assert.equal(st.job_instance.status, 3);
      const step = st.step_instance_list[0]!;
      assert.equal(step.type, 4);
      const [hostId] = fleet.hostIds.values();
      const log = (await hostLog(fleet, run.data.job_instance_id, step.step_instance_id, hostId!)) ?? '';
      assert.match(log, /Query OK, 1 row affected/);
      assert.equal((await maria.rootQuery('SELECT COUNT(DISTINCT conn) FROM app.seen')).trim(), '3');
    });

    it('a dangerous rule for SQL intercepts DROP DATABASE', async () => {
      const rule = await post<{ id: number }>(
        fleet.server.url,
        'create_dangerous_rule',
        { expression: 'DROP\\s+DATABASE', script_language_list: [6], description: 'no dropping', action: 2 },
        fleet.creds,
      );
      assert.ok(rule.result, rule.message);
      await post(fleet.server.url, 'enable_dangerous_rule', { id: rule.data.id }, fleet.creds);
      const before = await jobCount(fleet);
      const r = await runSql({
        script_content: b64('DROP DATABASE app;'),
        db_account_id: dbAccountId,
        target_server: allHosts(),
      });
      assert.equal(r.result, false);
      assert.equal(r.code, 1244019);
      assert.equal(await jobCount(fleet), before);
      assert.equal((await maria.rootQuery("SHOW DATABASES LIKE 'app'")).trim(), 'app');
      await post(fleet.server.url, 'delete_dangerous_rule', { id: rule.data.id }, fleet.creds);
    });

    it('refuses bad input with documented codes and creates nothing', async () => {
      const before = await jobCount(fleet);
      const content = b64('SELECT 1;');
      const cases: [Record<string, unknown>, number][] = [
        [{ script_content: content, target_server: allHosts() }, 1241004],
        [{ script_content: content, db_account_id: systemAccountId, target_server: allHosts() }, 1241005],
        [{ script_content: content, db_account_id: 987654, target_server: allHosts() }, 1244003],
        [{ db_account_id: dbAccountId, target_server: allHosts() }, 1241004],
        [{ script_content: content, db_account_id: dbAccountId }, 1241004],
        [{ script_content: 'not base64!', db_account_id: dbAccountId, target_server: allHosts() }, 1240003],
      ];
      for (const [body, code] of cases) {
        const r = await runSql(body);
        assert.equal(r.result, false, JSON.stringify(body));
        assert.equal(r.code, code, `${JSON.stringify(body)}: ${r.message}`);
      }
      assert.equal(await jobCount(fleet), before);
    });
  });
}
