/**
 * get_job_instance_list's ip filter finds exactly the jobs with a task on that ip, through the
 * sets of addresses kept per step (store/step-ip-sets.ts), on each engine:
 *
 * - through the API of a real server: jobs of one and two steps (the ip in the second only),
 *   targets by host id and by ip, a job retried, addresses that are a prefix or a suffix of
 *   others (10.0.0.1, 10.0.0.11, 110.0.0.1), values that are patterns or lists, and paging;
 * - through the store, every path that stores tasks (by id, small and large; from resolved
 *   hosts, with addresses that need quoting in an array literal; a step of no tasks), against
 *   the jobs the tasks themselves name;
 * - on a database migrated from the schema before the sets (0051): the rows stored before are
 *   found, a step stored without a set (an older server during a rolling upgrade) is found
 *   through its tasks, and an address holding a comma is never read as two.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { openEngine } from '../src/store/engines.js';
import { migrateTo, migrateToLatest } from '../src/store/migrations.js';
import type { NewHostTask } from '../src/store/execution-store.js';
import { IP_SETS_CONFIRMED_KEY } from '../src/store/step-ip-sets.js';
import { Store } from '../src/store/store.js';
import { admin, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import type { EngineName } from './helpers/databases.js';
import { b64, BIZ, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll, tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob } from './helpers/store-fixtures.js';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

/** What the filter must find: the jobs a task on `ip` names, newest first (the list's order). */
async function jobsWithTaskOn(db: Kysely<unknown>, ip: string): Promise<number[]> {
  const { rows } = await sql<{ id: number | string }>`select j.id from job_instance j
    where exists (select 1 from step_instance s join host_task t on t.step_instance_id = s.id
      where s.job_instance_id = j.id and t.ip = ${ip})
    order by j.create_time desc, j.id desc`.execute(db);
  return rows.map((r) => Number(r.id));
}

async function listedJobs(
  store: Store,
  ip: string,
  scopeId = '1',
): Promise<{ total: number; ids: number[] }> {
  const { total, jobs } = await store.executions.listJobs({
    scopeType: 'biz',
    scopeId,
    createTimeStart: 0,
    createTimeEnd: Number.MAX_SAFE_INTEGER,
    ip,
    start: 0,
    length: 1000,
  });
  return { total, ids: jobs.map((j) => j.id) };
}

async function assertListedAsTasksSay(store: Store, ips: readonly string[]): Promise<void> {
  const db = store.db as unknown as Kysely<unknown>;
  for (const ip of ips) {
    const expected = await jobsWithTaskOn(db, ip);
    assert.deepEqual(await listedJobs(store, ip), { total: expected.length, ids: expected }, `ip ${ip}`);
  }
}

/** Filter values that are parts of stored addresses, patterns or lists: they match no task. */
const NEAR_MISSES = [
  '10.8.0',
  '0.1',
  '.1',
  '%',
  '_',
  '10.8.0._',
  '10.8.0.%',
  ',',
  '10.8.0.2,10.8.0.3',
  '10.8.0.1,',
];

for (const engine of engines()) {
  describe(`job list ip filter through the API on ${engine}`, () => {
    let fleet: Fleet;
    const hostIds = new Map<string, number>();
    const call = <T>(name: string, body: Record<string, unknown>) =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
    const list = (query: Record<string, string | number>) =>
      get<{ total: number; data: { job_instance_id: number }[] }>(
        fleet.server.url,
        'get_job_instance_list',
        {
          ...fleet.scope,
          create_time_start: Date.now() - 3600_000,
          create_time_end: Date.now() + 60_000,
          ...query,
        },
        fleet.creds,
      );

    before(async () => {
      fleet = await startFleet(engine, 2);
      for (const [ip, id] of fleet.hostIds) hostIds.set(ip, id);
      // Hosts without agents: their tasks fail at once, and they are stored all the same.
      for (const ip of ['10.0.0.1', '10.0.0.11', '110.0.0.1', '10.0.0.2']) {
        const added = await admin<{ bk_host_id: number }>(
          fleet.server.url,
          fleet.server.adminToken,
          'POST',
          '/hosts',
          {
            ip,
            bk_biz_id: BIZ,
          },
        );
        assert.ok(added.result, added.message);
        hostIds.set(ip, added.data.bk_host_id);
      }
    });

    const id = (ip: string) => hostIds.get(ip) ?? 0;
    const script = b64('echo ok');

    test('finds exactly the jobs with a task on the ip, with the right total', async () => {
      // One step by host id.
      const byId = await runScript(fleet, {
        script_content: script,
        target_server: { host_id_list: [id('127.0.0.2')] },
      });
      assert.ok(byId.result, byId.message);
      await waitFinished(fleet, byId.data.job_instance_id);
      // One step by ip (resolved as the long way).
      const byIp = await runScript(fleet, {
        script_content: script,
        target_server: {
          ip_list: [
            { bk_cloud_id: 0, ip: '10.0.0.11' },
            { bk_cloud_id: 0, ip: '127.0.0.3' },
          ],
        },
      });
      assert.ok(byIp.result, byIp.message);
      await waitFinished(fleet, byIp.data.job_instance_id);
      // Two steps; 10.0.0.1 only in the second.
      const account = { alias: fleet.account };
      const template = await call<{ id: number }>('create_job_template', {
        name: 'two steps',
        step_list: [
          {
            name: 'first',
            type: 1,
            script_info: {
              script_content: script,
              script_language: 1,
              account,
              server: { host_id_list: [id('127.0.0.2')] },
            },
          },
          {
            name: 'second',
            type: 1,
            script_info: {
              script_content: script,
              script_language: 1,
              account,
              server: { host_id_list: [id('10.0.0.1')] },
            },
          },
        ],
      });
      assert.ok(template.result, template.message);
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.data.id,
        name: 'two steps',
      });
      assert.ok(plan.result, plan.message);
      const twoSteps = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: plan.data.id,
      });
      assert.ok(twoSteps.result, twoSteps.message);
      await waitFinished(fleet, twoSteps.data.job_instance_id);
      // A job whose step failed on 110.0.0.1 (no agent), then retried.
      const retried = await runScript(fleet, {
        script_content: script,
        target_server: { host_id_list: [id('110.0.0.1'), id('127.0.0.3')] },
      });
      assert.ok(retried.result, retried.message);
      const first = await waitFinished(fleet, retried.data.job_instance_id);
      assert.notEqual(first.job_instance.status, 3);
      const retry = await call('operate_step_instance', {
        job_instance_id: retried.data.job_instance_id,
        step_instance_id: retried.data.step_instance_id,
        operation_code: 2,
      });
      assert.ok(retry.result, retry.message);
      await waitFinished(fleet, retried.data.job_instance_id);

      const J1 = byId.data.job_instance_id;
      const J2 = byIp.data.job_instance_id;
      const J3 = twoSteps.data.job_instance_id;
      const J4 = retried.data.job_instance_id;
      const expected: [string, number[]][] = [
        ['10.0.0.1', [J3]],
        ['10.0.0.11', [J2]],
        ['110.0.0.1', [J4]],
        ['127.0.0.2', [J3, J1]],
        ['127.0.0.3', [J4, J2]],
        ['10.0.0.2', []],
        ...[
          '10.0.0',
          '0.0.1',
          '10.0.0.',
          '%',
          '10.0.0._',
          '10.0.0.1,10.0.0.11',
          '10.0.0.1,',
          ' 10.0.0.1',
        ].map((ip): [string, number[]] => [ip, []]),
      ];
      for (const [ip, jobs] of expected) {
        const r = await list({ ip, length: 100 });
        assert.equal(r.result, true, r.message);
        assert.deepEqual(
          { total: r.data.total, ids: r.data.data.map((j) => j.job_instance_id) },
          { total: jobs.length, ids: jobs },
          `ip ${JSON.stringify(ip)}`,
        );
      }
      // Pages of a filtered list: the total is of every match, the page of its own.
      const page1 = await list({ ip: '127.0.0.3', length: 1 });
      assert.deepEqual([page1.data.total, page1.data.data.map((j) => j.job_instance_id)], [2, [J4]]);
      const page2 = await list({ ip: '127.0.0.3', length: 1, start: 1 });
      assert.deepEqual([page2.data.total, page2.data.data.map((j) => j.job_instance_id)], [2, [J2]]);
      // A page past the last match still counts every match.
      const past = await list({ ip: '127.0.0.3', length: 10, start: 5 });
      assert.deepEqual([past.data.total, past.data.data], [2, []]);
      // With a job id the filter still holds.
      assert.equal((await list({ ip: '10.0.0.1', job_instance_id: J3 })).data.total, 1);
      assert.equal((await list({ ip: '10.0.0.11', job_instance_id: J3 })).data.total, 0);
    });
  });

  describe(`job list ip filter in the store on ${engine}`, () => {
    test("every path that stores tasks keeps its step's set: the list finds what the tasks say", async () => {
      const store = await Store.open({
        databaseUrl: await freshDatabase(engine),
        dataDir: tempDir('ip-sets'),
      });
      try {
        await store.inventory.createBiz(1, 'one');
        // 10.8.0.0 .. 10.8.4.209: 10.8.0.1, 10.8.0.11, 10.8.0.111 and 10.8.1.1 among them.
        const hosts = await store.inventory.registerAgentHosts(agentRegistrations(1234, '10.8', 1));
        const byIp = new Map(hosts.map((h) => [h.ip, h]));
        const idOf = (ip: string) => byIp.get(ip)?.id ?? 0;
        const byId = (ips: string[]) => ({
          hosts: [],
          hostsById: { ids: ips.map(idOf), bizIds: [1], batches: null },
        });
        const resolved = (ips: string[]): NewHostTask[] =>
          ips.map((ip, i) => ({
            hostId: byIp.get(ip)?.id ?? 900_000 + i,
            cloudId: 0,
            ip,
            ipv6: '',
            agentId: null,
            status: 18,
            batch: 0,
          }));
        const step = (name: string, rest: object) => ({
          name,
          type: 1,
          spec: { kind: 'script' },
          hosts: [],
          ...rest,
        });
        let now = 1_700_000_000_000;
        const create = async (name: string, steps: ReturnType<typeof step>[]) =>
          store.executions.createJobInstance(newJob('1', name, steps), true, (now += 1000));

        // Over TASKS_RETURNED_UP_TO hosts by id: counted by a read, which makes the set.
        await create('large', [step('all', byId(hosts.map((h) => h.ip)))]);
        // One step by id (PostgreSQL: one statement for the whole job).
        const small = await create('small', [step('two', byId(['10.8.0.1', '10.8.0.11']))]);
        // Two steps by id, the second alone on 10.8.0.111.
        await create('two steps', [
          step('first', byId(['10.8.0.2', '10.8.0.3', '10.8.0.4'])),
          step('second', byId(['10.8.0.111'])),
        ]);
        // Resolved hosts, as every other target is stored; then addresses an array literal must
        // quote (only hosts registered before addresses were checked could have them), a missing
        // host's empty address, and a step of no tasks.
        await create('resolved', [step('hosts', { hosts: resolved(['10.8.1.1', '10.8.0.5']) })]);
        await create('odd', [
          step('none', {}),
          step('quoted', { hosts: resolved(['null', 'a"b\\c', '', '10.8.0.6', 'x y']) }),
        ]);
        // A retry stores the same hosts again: no address is added, the job is listed once.
        const smallStep = small.stepInstanceIds[0] ?? 0;
        await store.db.updateTable('step_instance').set({ status: 4 }).where('id', '=', smallStep).execute();
        assert.equal(await store.executions.beginRetry(smallStep, 0, 'all'), true);

        const sets = await store.db.selectFrom('step_ip_set').selectAll().execute();
        const steps = await store.db.selectFrom('step_instance').select('id').execute();
        for (const { id } of steps) {
          const tasks = await store.executions.listHostTasks(id, 0);
          const set = sets.find((s) => s.step_instance_id === id);
          if (tasks.length === 0) assert.equal(set, undefined, `step ${id} has no tasks, no set`);
          else {
            assert.ok(set, `step ${id} has a set`);
            assert.ok(set.ips.startsWith(',') && set.ips.endsWith(','));
            assert.deepEqual(
              set.ips.slice(1, -1).split(',').sort(),
              tasks.map((t) => t.ip).sort(),
              `step ${id}`,
            );
          }
        }

        const sampled = hosts.filter((_, i) => i % 37 === 0).map((h) => h.ip);
        await assertListedAsTasksSay(store, [
          ...sampled,
          '10.8.0.1',
          '10.8.0.11',
          '10.8.0.111',
          '10.8.1.1',
          '10.8.0.5',
          '10.8.0.6',
          'null',
          'NULL',
          'a"b\\c',
          'x y',
          '',
          ...NEAR_MISSES,
        ]);
        // The addresses it was made for, in the jobs expected (a check of the check).
        assert.equal((await listedJobs(store, '10.8.0.111')).total, 2);
        assert.equal((await listedJobs(store, '10.8.0.11')).total, 2);
        assert.equal((await listedJobs(store, '10.8.0.6')).total, 2);
        assert.equal((await listedJobs(store, '10.8.0.2,10.8.0.3')).total, 0);
        // Another scope's list finds none of them.
        assert.equal((await listedJobs(store, '10.8.0.1', '2')).total, 0);
      } finally {
        await store.close();
      }
    });
  });

  describe(`job list ip filter on a database migrated from 0051 on ${engine}`, () => {
    test("sets are made for the rows stored before; an older server's step and a comma in an address are found right", async () => {
      const { databaseUrl, dataDir, jobs } = await olderDatabase(engine);
      const store = await Store.open({ databaseUrl, dataDir });
      try {
        const db = store.db as unknown as Kysely<unknown>;
        const sets = await store.db
          .selectFrom('step_ip_set')
          .selectAll()
          .orderBy('step_instance_id')
          .execute();
        assert.deepEqual(
          sets.map((s) => s.ips.slice(1, -1).split(',').sort()),
          // Job A's step over both its executions, B's two steps, C's address with a comma in
          // it (the set cannot tell it from two), D's two addresses; E's step has no tasks.
          [
            ['10.0.0.1', '10.0.0.2'],
            ['10.0.0.11'],
            ['110.0.0.1'],
            ['10.0.0.5', '10.0.0.6'],
            ['10.0.0.5', '10.0.0.6'],
          ],
        );
        const confirm = await store.db
          .selectFrom('server_setting')
          .select('key')
          .where('key', '=', IP_SETS_CONFIRMED_KEY)
          .execute();
        assert.equal(confirm.length, 1, 'an address with a comma: matches are confirmed');

        // A step stored without a set after the migration, as a server of the older version does
        // during a rolling upgrade: found through its tasks.
        const later = await insertOlderJob(db, 'F', 6, [[['10.0.0.1', '10.0.0.7']]]);
        const expect: [string, number[]][] = [
          ['10.0.0.1', [later, jobs.A]],
          ['10.0.0.2', [jobs.A]],
          ['10.0.0.11', [jobs.B]],
          ['110.0.0.1', [jobs.B]],
          ['10.0.0.5', [jobs.D]],
          ['10.0.0.6', [jobs.D]],
          ['10.0.0.5,10.0.0.6', [jobs.C]],
          ['10.0.0.7', [later]],
          ['10.0.0', []],
        ];
        for (const [ip, ids] of expect) {
          assert.deepEqual(await listedJobs(store, ip), { total: ids.length, ids }, `ip ${ip}`);
          assert.deepEqual(await jobsWithTaskOn(db, ip), ids, `ip ${ip}, by the tasks`);
        }
      } finally {
        await store.close();
      }
    });

    test('a database with no address holding a comma searches the sets alone', async () => {
      const { databaseUrl, dataDir } = await olderDatabase(engine, { withComma: false });
      const store = await Store.open({ databaseUrl, dataDir });
      try {
        const confirm = await store.db
          .selectFrom('server_setting')
          .select('key')
          .where('key', '=', IP_SETS_CONFIRMED_KEY)
          .execute();
        assert.equal(confirm.length, 0);
        // 10.0.0.5 and 10.0.0.6 are neighbours in D's set: as one value they name no task.
        assert.deepEqual(await listedJobs(store, '10.0.0.5,10.0.0.6'), { total: 0, ids: [] });
        assert.equal((await listedJobs(store, '10.0.0.6')).total, 1);
      } finally {
        await store.close();
      }
    });
  });
}

/**
 * A database at migration 0051 holding jobs as the version before the sets stored them: A (its
 * step on 10.0.0.1 and 10.0.0.2, run twice), B (10.0.0.11, then 110.0.0.1 in a second step),
 * C (one legacy address with a comma, unless `withComma` is false), D (10.0.0.5 and 10.0.0.6)
 * and E (a step of no tasks); then migrated to the latest version.
 */
async function olderDatabase(
  engine: EngineName,
  opts: { withComma?: boolean } = {},
): Promise<{
  databaseUrl: string | undefined;
  dataDir: string;
  jobs: Record<'A' | 'B' | 'C' | 'D' | 'E', number>;
}> {
  const databaseUrl = await freshDatabase(engine);
  const dataDir = tempDir(`ip-set-migration-${engine}`);
  const opened = openEngine({ databaseUrl, dataDir });
  const db = opened.db as unknown as Kysely<unknown>;
  try {
    await migrateTo(db, opened.caps, '0051_audit_log_target');
    const jobs = {
      A: await insertOlderJob(db, 'A', 1, [
        [
          ['10.0.0.1', '10.0.0.2'],
          ['10.0.0.1', '10.0.0.2'],
        ],
      ]),
      B: await insertOlderJob(db, 'B', 2, [[['10.0.0.11']], [['110.0.0.1']]]),
      C: await insertOlderJob(db, 'C', 3, [[[opts.withComma === false ? '10.0.0.9' : '10.0.0.5,10.0.0.6']]]),
      D: await insertOlderJob(db, 'D', 4, [[['10.0.0.5', '10.0.0.6']]]),
      E: await insertOlderJob(db, 'E', 5, [[]]),
    };
    assert.equal((await migrateToLatest(db, opened.caps)).applied[0], '0052_step_ip_set');
    return { databaseUrl, dataDir, jobs };
  } finally {
    await opened.db.destroy();
  }
}

/**
 * A job of business 1 as an older version stores it: `steps`, each a list of executions, each
 * the addresses of its tasks (host ids from the address). Returns the job's id.
 */
async function insertOlderJob(
  db: Kysely<unknown>,
  name: string,
  at: number,
  steps: string[][][],
): Promise<number> {
  const { rows } = await sql<{ id: number | string }>`insert into job_instance
      (scope_type, scope_id, name, type, launch_mode, operator, app_code, status, create_time)
    values ('biz', '1', ${name}, 1, 2, 'tester', 'app', 3, ${1_700_000_000_000 + at * 1000}) returning id`.execute(
    db,
  );
  const jobId = Number(rows[0]?.id);
  for (const [order, executions] of steps.entries()) {
    const { rows: made } = await sql<{ id: number | string }>`insert into step_instance
        (job_instance_id, step_order, name, type, status, execute_count, create_time, spec)
      values (${jobId}, ${order}, 'step', 1, 3, ${Math.max(0, executions.length - 1)}, ${at}, '{}') returning id`.execute(
      db,
    );
    const stepId = Number(made[0]?.id);
    for (const [count, ips] of executions.entries())
      for (const ip of ips)
        await sql`insert into host_task (step_instance_id, execute_count, host_id, cloud_id, ip, status)
          values (${stepId}, ${count}, ${hostIdOf(ip)}, 0, ${ip}, 9)`.execute(db);
  }
  return jobId;
}

/** One host id per address, as the hosts of the older version's rows. */
const olderHostIds = new Map<string, number>();
const hostIdOf = (ip: string): number => {
  let id = olderHostIds.get(ip);
  if (id === undefined) olderHostIds.set(ip, (id = 1000 + olderHostIds.size));
  return id;
};
