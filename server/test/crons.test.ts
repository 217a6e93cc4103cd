/**
 * Crons end to end on both stores, with real server and agent processes. Expressions carry a
 * seconds field (the documented test-only `cronSecondsField` hook) so firings come seconds
 * apart: saving and bad input, an every-2-seconds cron that fires only while enabled, a
 * one-shot cron, a server SIGKILLed across due times (one job for the latest missed time, the
 * older one recorded as skipped), plans naming removed hosts (a cron's job runs the rest and
 * marks them 2; execute_job_plan refuses), the business time zone as the default and, on
 * PostgreSQL, two servers on one database firing each time exactly once.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { admin, eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds, Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { BIZ, b64, hostLog, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { CLI, RESTART_HEARTBEAT_ENV, adminCli, startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const CRON_ENV = {
  ...RESTART_HEARTBEAT_ENV,
  JOBFLEET_CRON_SECONDS_FIELD: 'true',
  JOBFLEET_CRON_TICK_MS: '200',
  // Servers sharing a database share the key their secrets are sealed with.
  JOBFLEET_SERVER_KEY: Buffer.alloc(32, 7).toString('base64'),
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Firing {
  scheduled_time: number;
  outcome: string;
  job_instance_id: number | null;
}

/** The cron's firing records, read straight from the database, oldest first. */
async function firings(fleet: Fleet, cronId: number): Promise<Firing[]> {
  const q =
    'select scheduled_time, outcome, job_instance_id from cron_firing where cron_id = $1 order by scheduled_time';
  if (fleet.databaseUrl) {
    const client = new pg.Client({ connectionString: fleet.databaseUrl });
    await client.connect();
    try {
      const r = await client.query<Firing>(q, [cronId]);
      return r.rows.map((x) => ({ ...x, scheduled_time: Number(x.scheduled_time) }));
    } finally {
      await client.end();
    }
  }
  const db = new SQLite(path.join(fleet.server.dataDir, 'jobfleet.db'), { readonly: true });
  try {
    return db.prepare(q.replace('$1', '?')).all(cronId) as Firing[];
  } finally {
    db.close();
  }
}

for (const engine of engines()) {
  describe(`crons on ${engine}`, () => {
    let fleet: Fleet;
    let planId: number;
    let templateId: number;

    const call = <T>(name: string, body: Record<string, unknown>, creds?: ApiCreds): Promise<Envelope<T>> =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, creds ?? fleet.creds);
    const read = <T>(name: string, query: Record<string, unknown>): Promise<Envelope<T>> =>
      get<T>(fleet.server.url, name, { ...fleet.scope, ...query }, fleet.creds);

    type JobRow = {
      job_instance_id: number;
      launch_mode: number;
      operator: string;
      job_cron_id: number;
      create_time: number;
    };
    const jobsOf = async (cronId: number): Promise<JobRow[]> => {
      const r = await read<{ total: number; data: JobRow[] }>('get_job_instance_list', {
        create_time_start: Date.now() - 3600_000,
        create_time_end: Date.now() + 60_000,
        job_cron_id: cronId,
        length: 1000,
      });
      assert.equal(r.result, true, r.message);
      return r.data.data;
    };
    const cronCount = async (): Promise<number> =>
      (await read<{ total: number }>('get_cron_list', { status: 2 })).data.total;

    const save = async (body: Record<string, unknown>): Promise<number> => {
      const r = await call<{ id: number; status: number }>('save_cron', { job_plan_id: planId, ...body });
      assert.equal(r.result, true, r.message);
      assert.equal(r.data.status, 2);
      return r.data.id;
    };
    const setStatus = async (id: number, status: number, creds?: ApiCreds): Promise<void> => {
      const r = await call<{ id: number }>('update_cron_status', { id, status }, creds);
      assert.equal(r.result, true, r.message);
      assert.equal(r.data.id, id);
    };

    before(async () => {
      fleet = await startFleet(engine, 1, { env: CRON_ENV });
      const hostId = fleet.hostIds.get('127.0.0.2');
      const t = await call<{ id: number }>('create_job_template', {
        name: 'greet',
        global_var_list: [
          { name: 'who', type: 1, value: 'nobody' },
          { name: 'servers', type: 3, server: { host_id_list: [hostId] }, required: 1 },
          { name: 'token', type: 4, value: 'plan-token' },
        ],
        step_list: [
          {
            name: 'greet',
            type: 1,
            script_info: {
              script_content: b64(
                'echo "hello $who"\ncase "$token" in cron-token-secret) echo "token: cron";; ' +
                  'plan-token) echo "token: plan";; *) echo "token: other";; esac',
              ),
              script_language: 1,
              account: { alias: fleet.account },
              server: { variable: 'servers' },
            },
          },
        ],
      });
      assert.equal(t.result, true, t.message);
      templateId = t.data.id;
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: templateId, name: 'greet' });
      assert.equal(p.result, true, p.message);
      planId = p.data.id;
    });

    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('saving, listing, status codes per endpoint, bad input that saves nothing', async () => {
      const before = await cronCount();
      const refusals: [Record<string, unknown>, number][] = [
        [{ name: 'x', expression: '* 0/5 * * * * *' }, 1241010],
        [{ name: 'x', expression: '0 0 ? * *' }, 1241010],
        [{ name: 'x', expression: '61 * * * *' }, 1241010],
        [{ name: 'x', expression: 'every minute' }, 1241010],
        [{ name: 'x', expression: '* * * * *', execute_time_zone: 'Mars/Olympus_Mons' }, 1241010],
        [{ name: 'x', expression: '* * * * *', job_plan_id: 999_999 }, 1243009],
        [{ name: 'x', expression: '* * * * *', global_var_list: [{ value: 'v' }] }, 1241012],
        [{ name: 'x', expression: '* * * * *', global_var_list: [{ name: 'nope', value: 'v' }] }, 1241005],
        [{ expression: '* * * * *' }, 1240003],
        [{ name: 'x', expression: '* * * * *', job_plan_id: null }, 1240003],
        [{ name: 'x' }, 1240003],
        [{ id: 999_999, name: 'x' }, 1245001],
      ];
      for (const [body, code] of refusals) {
        const r = await call('save_cron', { job_plan_id: planId, ...body });
        assert.equal(r.code, code, `${JSON.stringify(body)}: ${r.message}`);
        assert.equal(r.result, false);
      }
      assert.equal(await cronCount(), before, 'a refused save_cron saved a cron');

      const created = await call<{
        id: number;
        status: number;
        expression: string;
        execute_time_zone: string;
        create_time: number;
        global_var_list: { id: number; name: string; value: string | null; type: number; server: unknown }[];
      }>('save_cron', {
        job_plan_id: planId,
        name: 'nightly',
        expression: '0 0/5 * * *',
        execute_time_zone: 'Europe/Berlin',
        global_var_list: [
          { name: 'who', value: 'night' },
          { name: 'token', value: 'cron-token-secret' },
          { name: 'servers', server: { host_id_list: [fleet.hostIds.get('127.0.0.2')] } },
        ],
      });
      assert.equal(created.result, true, created.message);
      assert.equal(created.data.status, 2);
      assert.equal(created.data.expression, '0 0/5 * * *');
      assert.equal(created.data.execute_time_zone, 'Europe/Berlin');
      assert.ok(created.data.create_time > 1_600_000_000 && created.data.create_time < 1e11, 'seconds');
      assert.deepEqual(
        created.data.global_var_list.map((v) => [v.name, v.value, v.type]),
        [
          ['who', 'night', 1],
          ['token', '******', 4],
          ['servers', null, 3],
        ],
      );
      // Hosts as get_job_plan_detail renders them (BK-JOB's ip_list entries), whatever was authored.
      const hostId = fleet.hostIds.get('127.0.0.2');
      assert.deepEqual(created.data.global_var_list[2]?.server, {
        ip_list: [{ bk_host_id: hostId, bk_cloud_id: 0, ip: '127.0.0.2' }],
        host_id_list: [hostId],
        dynamic_group_list: [],
        topo_node_list: [],
      });
      assert.equal(created.data.global_var_list[0]?.server, null);
      assert.ok(!JSON.stringify(created).includes('cron-token-secret'));
      const id = created.data.id;

      const renamed = await call<{ name: string; status: number; expression: string }>('save_cron', {
        id,
        name: 'nightly renamed',
      });
      assert.equal(renamed.result, true, renamed.message);
      assert.deepEqual(
        [renamed.data.name, renamed.data.status, renamed.data.expression],
        ['nightly renamed', 2, '0 0/5 * * *'],
      );

      await setStatus(id, 1);
      type Item = { id: number; status: number };
      const listed = async (q: Record<string, unknown>) =>
        (await read<{ total: number; data: Item[] }>('get_cron_list', q)).data.data.map((c) => c.id);
      assert.ok((await listed({ status: 1 })).includes(id));
      assert.ok(!(await listed({ status: 0 })).includes(id));
      assert.ok((await listed({ status: 2 })).includes(id), 'status 2 filters nothing');
      // Paging and time ranges as BK-JOB's cron list request reads them: bad paging values are
      // made good, not refused, and a range with one bound filters nothing.
      const now = Math.floor(Date.now() / 1000);
      assert.ok((await listed({ start: -1, length: 0 })).includes(id));
      assert.ok((await listed({ length: 5000 })).includes(id));
      const paged = await read<{ start: number; length: number }>('get_cron_list', { start: -1, length: -3 });
      assert.deepEqual([paged.data.start, paged.data.length], [0, 20]);
      assert.ok((await listed({ create_time_start: now + 3600 })).includes(id), 'one bound filters nothing');
      assert.ok(!(await listed({ create_time_start: now + 3600, create_time_end: now + 7200 })).includes(id));
      assert.ok((await listed({ create_time_start: now - 3600, create_time_end: now + 3600 })).includes(id));
      const one = await read<{ total: number; data: Item[] }>('get_cron_list', { id });
      assert.deepEqual([one.data.total, one.data.data[0]?.status], [1, 1]);
      const later = await read<{ total: number; data: Item[] }>('get_cron_list', { id, start: 20 });
      assert.deepEqual([later.data.total, later.data.data], [1, []], 'only the first page holds it');
      const detail = await read<{ status: number; next_run_times: number[]; execute_time_zone: string }>(
        'get_cron_detail',
        { id },
      );
      assert.equal(detail.data.status, 1);
      assert.equal(detail.data.next_run_times.length, 5);
      assert.ok(
        detail.data.next_run_times.every((t, i, a) => t % 300 === 0 && (i === 0 || t > (a[i - 1] ?? 0))),
      );

      // A plan a cron runs cannot be deleted, nor its template.
      assert.equal((await call('delete_job_plan', { job_plan_id: planId })).code, 1245901);
      assert.equal((await call('delete_job_template', { job_template_id: templateId })).code, 1245901);

      // Operators see every cron and switch it off and on with `jobfleet admin cron ...`.
      const cli = async (...args: string[]): Promise<unknown> => {
        const { stdout } = await promisify(execFile)(process.execPath, [
          CLI,
          'admin',
          '--server',
          fleet.server.url,
          '--admin-token',
          fleet.server.adminToken,
          'cron',
          ...args,
        ]);
        return JSON.parse(stdout) as unknown;
      };
      const all = (await cli('list')) as { crons: { id: number; status: number; next_run_time: number }[] };
      const mine = all.crons.find((c) => c.id === id);
      assert.equal(mine?.status, 1);
      assert.equal(mine?.next_run_time, detail.data.next_run_times[0]);
      assert.deepEqual(await cli('disable', String(id)), { id, status: 0 });
      assert.equal((await read<Item>('get_cron_detail', { id })).data.status, 0);
      assert.deepEqual(await cli('enable', String(id)), { id, status: 1 });
      assert.equal((await read<Item>('get_cron_detail', { id })).data.status, 1);

      // Saving pauses the cron; list and detail answer 0 for paused.
      await save({ id, name: 'nightly again' });
      assert.equal((await read<Item>('get_cron_detail', { id })).data.status, 0);
      // An empty name on update is no name given: the cron keeps its own.
      await save({ id, name: '' });
      assert.equal(
        (await read<Item & { name: string }>('get_cron_detail', { id })).data.name,
        'nightly again',
      );
      const del = await call('delete_cron', { id });
      assert.deepEqual([del.result, del.data], [true, null]);
      assert.equal((await call('delete_cron', { id })).code, 1245008);
      assert.equal((await read('get_cron_detail', { id })).code, 1245001);
    });

    test('an every-2-seconds cron fires only while enabled, as launch mode 3 with its values', async () => {
      const id = await save({
        name: 'every two seconds',
        expression: '*/2 * * * * *',
        global_var_list: [{ name: 'who', value: 'from-cron' }],
      });
      await sleep(3000);
      assert.equal((await jobsOf(id)).length, 0, 'a disabled cron fired');

      const bob = { ...fleet.creds, username: 'bob' };
      await setStatus(id, 1, bob);
      const jobs = await eventually(async () => {
        const j = await jobsOf(id);
        return j.length >= 3 ? j : undefined;
      }, 20_000);
      for (const j of jobs) assert.deepEqual([j.launch_mode, j.operator, j.job_cron_id], [3, 'bob', id]);
      const first = jobs[jobs.length - 1] as JobRow;
      const st = await waitFinished(fleet, first.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const log = await hostLog(
        fleet,
        first.job_instance_id,
        st.step_instance_list[0]?.step_instance_id ?? 0,
        hostId,
      );
      assert.match(log ?? '', /hello from-cron/);

      await setStatus(id, 2);
      await sleep(1000);
      const stopped = (await jobsOf(id)).length;
      await sleep(4000);
      assert.equal((await jobsOf(id)).length, stopped, 'a disabled cron fired');

      const rows = await firings(fleet, id);
      const fired = rows.filter((r) => r.outcome === 'fired');
      assert.equal(fired.length, stopped, 'one job per fired time');
      assert.ok(fired.every((r) => r.scheduled_time % 2 === 0));
      assert.equal(new Set(fired.map((r) => r.job_instance_id)).size, fired.length);

      const detail = await read<{
        last_runs: { outcome: string; job_instance_id: number; status: number }[];
      }>('get_cron_detail', { id });
      const run = detail.data.last_runs.find((r) => r.job_instance_id === first.job_instance_id);
      assert.deepEqual([run?.outcome, run?.status], ['fired', 3]);
    });

    test('a cron saved with a new time and enabled again fires at it, not at the time known before', async () => {
      // The scheduler keeps each cron's next time between ticks: a save must not leave the old one.
      const id = await save({ name: 'yearly, then often', expression: '0 0 1 1 *' });
      await setStatus(id, 1);
      await sleep(2500);
      assert.equal((await jobsOf(id)).length, 0, 'a yearly cron fired');
      // Saving pauses a cron (as BK-JOB's does): enabled again, on its new schedule.
      await save({ id, expression: '*/2 * * * * *' });
      await setStatus(id, 1);
      await eventually(async () => ((await jobsOf(id)).length >= 2 ? true : undefined), 20_000);
      await setStatus(id, 2);
      await sleep(1000);
      const stopped = (await jobsOf(id)).length;
      // Enabled again: a new enabled time, and again the schedule as saved.
      await setStatus(id, 1);
      await eventually(async () => ((await jobsOf(id)).length > stopped ? true : undefined), 20_000);
      await setStatus(id, 2);
    });

    test('a misfire grace of 0 still fires every time the running scheduler reaches on schedule', async () => {
      const id = await save({ name: 'no grace', expression: '*/2 * * * * *', misfire_grace_seconds: 0 });
      await setStatus(id, 1);
      await eventually(async () => ((await jobsOf(id)).length >= 3 ? true : undefined), 20_000);
      await setStatus(id, 0);
      const rows = await firings(fleet, id);
      assert.deepEqual(
        rows.filter((r) => r.outcome !== 'fired'),
        [],
        'times reached on schedule were skipped',
      );
    });

    test('a cron stops starting jobs once the app that saved it loses the scope', async () => {
      const app = { appCode: `cron-owner-${engine}`, appSecret: 'cron-owner-secret', username: 'carol' };
      const grant = (scopes: unknown) =>
        admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
          app_code: app.appCode,
          app_secret: app.appSecret,
          scopes,
        });
      await grant([{ type: 'biz', id: BIZ }]);
      const r = await call<{ id: number }>(
        'save_cron',
        { job_plan_id: planId, name: 'owned by an app', expression: '*/2 * * * * *' },
        app,
      );
      assert.equal(r.result, true, r.message);
      const id = r.data.id;
      await setStatus(id, 1, app);
      await eventually(async () => ((await jobsOf(id)).length >= 1 ? true : undefined), 20_000);
      await grant([]);
      await eventually(
        async () => ((await firings(fleet, id)).some((f) => f.outcome === 'failed') ? true : undefined),
        20_000,
      );
      const started = (await jobsOf(id)).length;
      await sleep(4500);
      assert.equal((await jobsOf(id)).length, started, 'a cron of an app without the scope started a job');
      const detail = await read<{ last_runs: { outcome: string; reason?: string }[] }>('get_cron_detail', {
        id,
      });
      const failed = detail.data.last_runs.find((x) => x.outcome === 'failed');
      assert.match(
        failed?.reason ?? '',
        new RegExp(`^9900403: App ${app.appCode} has no permission for biz ${BIZ}`),
      );
      await setStatus(id, 2);
    });

    test('a cipher value read back as ****** and saved or run again keeps its secret', async () => {
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const tokenOf = async (jobId: number): Promise<string | undefined> => {
        const st = await waitFinished(fleet, jobId);
        assert.equal(st.job_instance.status, 3);
        const log = await hostLog(fleet, jobId, st.step_instance_list[0]?.step_instance_id ?? 0, hostId);
        return /token: (\w+)/.exec(log ?? '')?.[1];
      };
      const id = await save({
        name: 'cipher kept',
        expression: '*/2 * * * * *',
        global_var_list: [{ name: 'token', value: 'cron-token-secret' }],
      });
      type Var = { id: number; name: string; value: string | null; server: unknown };
      const detail = await read<{ global_var_list: Var[] }>('get_cron_detail', { id });
      assert.deepEqual(
        detail.data.global_var_list.map((v) => [v.name, v.value]),
        [['token', '******']],
      );
      // A client (or the console) that saves back what it read keeps the cron's secret.
      const again = await call('save_cron', {
        id,
        global_var_list: detail.data.global_var_list.map(({ id: vid, name, value }) => ({
          id: vid,
          name,
          value,
        })),
      });
      assert.equal(again.result, true, again.message);
      await setStatus(id, 1);
      const job = await eventually(async () => (await jobsOf(id))[0], 20_000);
      await setStatus(id, 2);
      assert.equal(await tokenOf(job.job_instance_id), 'cron');
      // The plan's detail shows its secret as ******; run with that, the plan's secret applies.
      const plan = await read<{ global_var_list: Var[] }>('get_job_plan_detail', { job_plan_id: planId });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: planId,
        global_var_list: plan.data.global_var_list.map(({ name, value, server }) =>
          server ? { name, server } : { name, value },
        ),
      });
      assert.equal(run.result, true, run.message);
      assert.equal(await tokenOf(run.data.job_instance_id), 'plan');
      assert.equal((await call('delete_cron', { id })).result, true);
    });

    test('a one-shot cron fires once and then disables itself', async () => {
      const at = Math.floor(Date.now() / 1000) + 3;
      const id = await save({ name: 'once', execute_time: at });
      await setStatus(id, 1);
      await eventually(async () => ((await jobsOf(id)).length === 1 ? true : undefined), 15_000);
      await sleep(2500);
      assert.equal((await jobsOf(id)).length, 1);
      assert.equal((await read<{ status: number }>('get_cron_detail', { id })).data.status, 0);
      assert.deepEqual(
        (await firings(fleet, id)).map((r) => [r.scheduled_time, r.outcome]),
        [[at, 'fired']],
      );
      // Its time has passed: it cannot be enabled again.
      assert.equal((await call('update_cron_status', { id, status: 1 })).code, 1245002);
    });

    test('a server SIGKILLed across due times fires the latest missed time once and records the older as skipped', async () => {
      const id = await save({
        name: 'through a crash',
        expression: '*/3 * * * * *',
        misfire_grace_seconds: 60,
      });
      await setStatus(id, 1);
      await eventually(async () => ((await jobsOf(id)).length >= 1 ? true : undefined), 15_000);
      await fleet.server.kill('SIGKILL');
      const lastBefore = Math.max(...(await firings(fleet, id)).map((r) => r.scheduled_time));
      await sleep(7000);
      fleet.server = await fleet.server.restart();
      const readyAt = Math.floor(Date.now() / 1000);
      await sleep(1500);
      await setStatus(id, 0);
      await sleep(500);

      // The first tick after the restart finds every time missed while the server was down:
      // the latest is fired, the ones before it are recorded as skipped. That tick may come just
      // after the next due time (the server ready a moment before it), which is then the latest.
      const rows = (await firings(fleet, id)).map((r) => ({
        ...r,
        job_instance_id: Number(r.job_instance_id),
      }));
      const after = rows.filter((r) => r.scheduled_time > lastBefore);
      const catchUp = after.findIndex((r) => r.outcome === 'fired');
      const fired = after[catchUp];
      assert.ok(fired && fired.scheduled_time <= readyAt + 3, JSON.stringify(rows));
      assert.ok(catchUp >= 1, `no skipped time recorded: ${JSON.stringify(rows)}`);
      assert.ok(after.slice(0, catchUp).every((r) => r.outcome === 'skipped'));
      const jobs = await jobsOf(id);
      assert.equal(jobs.length, rows.filter((r) => r.outcome === 'fired').length, 'one job per fired time');
      const job = jobs.find((j) => j.job_instance_id === fired.job_instance_id);
      assert.ok(job);
      // The latest due time when its job was made (due every 3 s; the job a moment after the tick).
      const madeAt = job.create_time / 1000;
      assert.ok(
        fired.scheduled_time <= madeAt && madeAt < fired.scheduled_time + 3.5,
        `fired ${fired.scheduled_time}, its job made at ${madeAt}`,
      );
    });

    test('hosts removed from the fleet: a cron runs the rest and marks them 2, execute_job_plan refuses', async () => {
      const adm = <T>(method: 'GET' | 'POST' | 'DELETE', p: string, body?: unknown) =>
        admin<T>(fleet.server.url, fleet.server.adminToken, method, p, body);
      const live = fleet.hostIds.get('127.0.0.2') ?? 0;
      const ghosts: number[] = [];
      for (const ip of ['127.0.0.61', '127.0.0.62', '127.0.0.63']) {
        const h = await adm<{ bk_host_id: number }>('POST', '/hosts', { ip, bk_biz_id: BIZ });
        assert.equal(h.result, true, h.message);
        ghosts.push(h.data.bk_host_id);
      }
      const [ghostA = 0, ghostB = 0, movedAway = 0] = ghosts;
      const script = (name: string, server: Record<string, unknown>, ignoreError = 0) => ({
        name,
        type: 1,
        script_info: {
          script_content: b64(`echo ${name} on $(hostname)`),
          account: { alias: fleet.account },
          server,
          is_ignore_error: ignoreError,
        },
      });
      const planOf = async (name: string, steps: unknown[]): Promise<number> => {
        const t = await call<{ id: number }>('create_job_template', { name, step_list: steps });
        assert.equal(t.result, true, t.message);
        const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name });
        assert.equal(p.result, true, p.message);
        return p.data.id;
      };
      // By id, then (second step) as plan detail returns hosts: cloud + ip carrying bk_host_id.
      const partly = await planOf('partly gone', [
        script('first', { host_id_list: [live, ghostA, movedAway] }, 1),
        script('second', {
          ip_list: [
            { bk_cloud_id: 0, ip: '127.0.0.2' },
            { bk_cloud_id: 0, ip: '127.0.0.62', bk_host_id: ghostB },
          ],
        }),
      ]);
      const allGone = await planOf('all gone', [script('only', { host_id_list: [ghostA, ghostB] })]);
      const ipOnly = await planOf('gone by ip', [
        script('only', { ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.62' }] }),
      ]);

      const removed = await adminCli(
        [
          '--server',
          fleet.server.url,
          '--admin-token',
          fleet.server.adminToken,
          'host-remove',
          String(ghostA),
        ],
        {},
      );
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal((await adm('DELETE', `/hosts/${ghostB}`)).result, true);
      assert.equal((await adm('DELETE', `/hosts/${ghostB}`)).code, 1240006);
      // One left the business instead: a cron marks it as it marks those gone (BK-JOB sets it invalid).
      assert.equal((await adm('POST', `/hosts/${movedAway}/biz`, { bk_biz_id: null })).result, true);

      // Launched through the API, BK-JOB refuses a plan whose hosts are gone, and nothing starts.
      const refused = await call('execute_job_plan', { job_plan_id: partly });
      assert.equal(refused.code, 1244030, refused.message);
      assert.match(refused.message, new RegExp(`host_id:${ghostA}`));

      // The live host's agent is connected (a server restart ran before this test).
      await eventually(async () => {
        const hosts = await adm<{ hosts: { bk_host_id: number; agent_status: number }[] }>('GET', '/hosts');
        return hosts.data.hosts.find((h) => h.bk_host_id === live)?.agent_status === 1 ? true : undefined;
      }, 15_000);
      const at = Math.floor(Date.now() / 1000) + 3;
      const crons: number[] = [];
      for (const [name, plan] of [
        ['partly gone', partly],
        ['all gone', allGone],
        ['gone by ip', ipOnly],
      ] as const) {
        const id = await save({ name, job_plan_id: plan, execute_time: at });
        await setStatus(id, 1);
        crons.push(id);
      }
      const [partlyCron = 0, allGoneCron = 0, ipOnlyCron = 0] = crons;
      const jobOf = async (cronId: number): Promise<number> =>
        eventually(async () => (await jobsOf(cronId))[0]?.job_instance_id, 20_000, `cron ${cronId} to fire`);

      const partlyJob = await waitFinished(fleet, await jobOf(partlyCron));
      assert.equal(partlyJob.job_instance.status, 4);
      const [first, second] = partlyJob.step_instance_list;
      // The first step ran on the live host, marked the removed one, and ignored the failure.
      assert.equal(first?.status, 6);
      const byHost = (step: typeof first) =>
        new Map(step?.step_ip_result_list?.map((h) => [h.bk_host_id, h.status]));
      assert.deepEqual(
        byHost(first),
        new Map([
          [live, 9],
          [ghostA, 2],
          [movedAway, 2],
        ]),
      );
      assert.equal(second?.status, 4);
      assert.deepEqual(
        byHost(second),
        new Map([
          [live, 9],
          [ghostB, 2],
        ]),
      );
      assert.match(
        (await hostLog(fleet, partlyJob.job_instance.job_instance_id, second?.step_instance_id ?? 0, live)) ??
          '',
        /second on/,
      );

      // Every host gone: the job still starts, and its step fails at once with each host at 2.
      const goneJob = await waitFinished(fleet, await jobOf(allGoneCron));
      assert.equal(goneJob.job_instance.status, 4);
      assert.deepEqual(
        goneJob.step_instance_list[0]?.step_ip_result_list?.map((h) => h.status),
        [2, 2],
      );

      // A host named only by cloud:ip has no id to mark: that firing is refused and recorded.
      await eventually(async () => ((await firings(fleet, ipOnlyCron)).length > 0 ? true : undefined));
      const [ipFiring] = await firings(fleet, ipOnlyCron);
      assert.equal(ipFiring?.outcome, 'failed');
      assert.equal((await jobsOf(ipOnlyCron)).length, 0);
      for (const id of crons) {
        const rows = await firings(fleet, id);
        if (id !== ipOnlyCron)
          assert.deepEqual(
            rows.map((r) => r.outcome),
            ['fired'],
          );
        await call('delete_cron', { id });
      }
    });

    test("a cron saved without a time zone takes its business's, else the server's", async () => {
      const adm = <T>(method: 'GET' | 'POST', p: string, body?: unknown) =>
        admin<T>(fleet.server.url, fleet.server.adminToken, method, p, body);
      const zonePath = `/scopes/biz/${BIZ}/time_zone`;
      assert.equal((await adm('POST', zonePath, { time_zone: 'Mars/Olympus_Mons' })).code, 1240003);
      assert.equal((await adm('POST', '/scopes/biz/7777777/time_zone', { time_zone: 'UTC' })).code, 1240006);
      assert.equal((await adm<{ time_zone: string | null }>('GET', zonePath)).data.time_zone, null);
      const set = await adm('POST', zonePath, { time_zone: 'Asia/Shanghai' });
      assert.equal(set.result, true, set.message);
      const zoneOf = async (id: number) =>
        (await read<{ execute_time_zone: string }>('get_cron_detail', { id })).data.execute_time_zone;
      const inBiz = await save({ name: 'business zone', expression: '0 9 * * *' });
      const explicit = await save({
        name: 'own zone',
        expression: '0 9 * * *',
        execute_time_zone: 'Europe/Berlin',
      });
      assert.equal(await zoneOf(inBiz), 'Asia/Shanghai');
      assert.equal(await zoneOf(explicit), 'Europe/Berlin');
      // The zone is the cron's from its first save: renaming it or clearing the business's keeps it.
      assert.equal((await adm('POST', zonePath, { time_zone: null })).result, true);
      await save({ id: inBiz, name: 'business zone, renamed' });
      assert.equal(await zoneOf(inBiz), 'Asia/Shanghai');
      const inServer = await save({ name: 'server zone', expression: '0 9 * * *' });
      assert.equal(await zoneOf(inServer), Intl.DateTimeFormat().resolvedOptions().timeZone);
      for (const id of [inBiz, explicit, inServer]) await call('delete_cron', { id });
    });

    test('saves at once each keep the others; no cron outlives a plan deleted while it is saved', async () => {
      const id = await save({ name: 'saved at once', expression: '0 9 * * *' });
      // Each save sets a field of its own: none may write back what another changed.
      const saves = await Promise.all([
        call('save_cron', { id, name: 'renamed at once' }),
        call('save_cron', { id, expression: '0 10 * * *' }),
        call('save_cron', { id, end_time: 4_000_000_000 }),
        call('save_cron', { id, misfire_grace_seconds: 17 }),
        call('save_cron', { id, execute_time_zone: 'Europe/Berlin' }),
        call('save_cron', { id, global_var_list: [{ name: 'who', value: 'at once' }] }),
      ]);
      for (const r of saves) assert.equal(r.result, true, r.message);
      const d = await read<{
        name: string;
        expression: string;
        end_time: number;
        misfire_grace_seconds: number;
        execute_time_zone: string;
        global_var_list: { name: string; value: string | null }[];
      }>('get_cron_detail', { id });
      assert.equal(d.data.name, 'renamed at once');
      assert.equal(d.data.expression, '0 10 * * *');
      assert.equal(d.data.end_time, 4_000_000_000);
      assert.equal(d.data.misfire_grace_seconds, 17);
      assert.equal(d.data.execute_time_zone, 'Europe/Berlin');
      assert.equal(d.data.global_var_list.find((v) => v.name === 'who')?.value, 'at once');
      await call('delete_cron', { id });

      // Crons saved while their plan is deleted: the delete is refused, or the saves are.
      for (let round = 0; round < 4; round++) {
        const p = await call<{ id: number }>('create_job_plan', {
          job_template_id: templateId,
          name: `deleted at once ${round}`,
        });
        assert.equal(p.result, true, p.message);
        const saving = Array.from({ length: 4 }, (_, i) =>
          call<{ id: number }>('save_cron', {
            job_plan_id: p.data.id,
            name: `on a deleted plan ${round}.${i}`,
            expression: '0 9 * * *',
          }),
        );
        const deleted = await call('delete_job_plan', { job_plan_id: p.data.id });
        const saved = await Promise.all(saving);
        for (const r of saved) assert.ok(r.result || r.code === 1243009, r.message);
        const made = saved.filter((r) => r.result).map((r) => r.data.id);
        if (deleted.result) assert.deepEqual(made, [], `round ${round}: crons cite the deleted plan`);
        else {
          assert.equal(deleted.code, 1245901, deleted.message);
          assert.ok(made.length > 0, `round ${round}: the delete was refused for no cron`);
          for (const c of made) await call('delete_cron', { id: c });
          const again = await call('delete_job_plan', { job_plan_id: p.data.id });
          assert.equal(again.result, true, again.message);
        }
      }
    });

    if (engine === 'postgres') {
      test('two servers on one PostgreSQL database: 20 firings, exactly 20 jobs', async (t) => {
        const second: ServerProcess = await startServer({
          ...(fleet.databaseUrl ? { databaseUrl: fleet.databaseUrl } : {}),
          env: CRON_ENV,
        });
        const id = await save({ name: 'every second, two servers', expression: '* * * * * *' });
        await setStatus(id, 1);
        await eventually(
          async () =>
            (await firings(fleet, id)).filter((r) => r.outcome === 'fired').length >= 20 ? true : undefined,
          60_000,
        );
        await setStatus(id, 0);
        await sleep(1500);
        const rows = await firings(fleet, id);
        const fired = rows.filter((r) => r.outcome === 'fired');
        const jobs = await jobsOf(id);
        assert.equal(jobs.length, fired.length, 'each fired time started exactly one job');
        assert.equal(new Set(fired.map((r) => r.scheduled_time)).size, fired.length);
        assert.equal(new Set(jobs.map((j) => j.job_instance_id)).size, jobs.length);
        const byServer = [fleet.server, second].map((s) => s.output().split('"msg":"cron fired"').length - 1);
        t.diagnostic(`firings per server: ${byServer.join(' + ')}; skipped: ${rows.length - fired.length}`);
        await second.kill();
      });
    }
  });
}
