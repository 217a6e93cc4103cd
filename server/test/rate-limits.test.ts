/**
 * Rate limits and quotas, hit and recovered: calls per app and per client address on the API,
 * and per-scope running jobs and hosts in running jobs, each refused with its own code and
 * nothing created by a refusal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import { Store } from '../src/store/store.js';
import { admin, eventually, get, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import {
  b64,
  jobCount,
  operateJob,
  runScript,
  startFleet,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { tempDir } from './helpers/processes.js';

const RATE_LIMITED = ERROR_CATALOGUE.API_RATE_LIMITED.code;
const JOBS_QUOTA = ERROR_CATALOGUE.RUNNING_JOB_EXCEED_RESOURCE_SCOPE_QUOTA_LIMIT.code;
const HOSTS_QUOTA = ERROR_CATALOGUE.RUNNING_HOSTS_EXCEED_SCOPE_QUOTA.code;
const PER_APP = 5;
const PER_ADDRESS = 40;

for (const engine of engines()) {
  describe(`rate limits and quotas on ${engine}`, () => {
    let fleet: Fleet;
    let hosts: number[];

    before(async () => {
      fleet = await startFleet(engine, 2, {
        env: {
          JOBFLEET_API_RATE_PER_APP: String(PER_APP),
          JOBFLEET_API_RATE_PER_ADDRESS: String(PER_ADDRESS),
          JOBFLEET_MAX_RUNNING_JOBS_PER_SCOPE: '2',
          JOBFLEET_MAX_RUNNING_HOSTS_PER_SCOPE: '3',
        },
      });
      hosts = ['127.0.0.2', '127.0.0.3'].map((ip) => fleet.hostIds.get(ip) ?? 0);
    });
    after(stopFleets);

    const list = (creds = fleet.creds) =>
      get(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: Date.now() - 3600_000, create_time_end: Date.now() + 60_000 },
        creds,
      ).catch((err: unknown) => ({ result: false, code: -1, message: String(err) }) as Envelope);
    /** Waits until a fresh one-second window lets calls through again. */
    const recovered = () =>
      eventually(
        async () => {
          const r = await list();
          if (!r.result && r.code !== RATE_LIMITED) throw new Error(r.message);
          return r.result ? true : undefined;
        },
        10_000,
        'the limit to recover',
      );

    test('an app over its rate is refused with 1240429 for the rest of the second, then served again', async () => {
      await recovered();
      const burst = await Promise.all(Array.from({ length: PER_APP * 3 }, () => list()));
      const refused = burst.filter((r) => r.code === RATE_LIMITED);
      // The burst may straddle two one-second windows, so up to twice the limit may be served.
      assert.ok(burst.filter((r) => r.result).length <= 2 * PER_APP, 'no more than the limit served');
      assert.ok(refused.length >= PER_APP, `refusals: ${burst.map((r) => r.code).join(',')}`);
      assert.match(refused[0]?.message ?? '', /app test-app: at most 5 per second; retry in \d+ ms/);
      assert.equal(refused[0]?.result, false);
      // Refusals are visible in metrics: requests are counted by endpoint and BK-JOB code.
      const metrics = await (await fetch(`${fleet.server.url}/metrics`)).text();
      const line = metrics
        .split('\n')
        .find((l) =>
          l.startsWith(
            `jobfleet_http_requests_total{endpoint="get_job_instance_list",code="${RATE_LIMITED}"}`,
          ),
        );
      assert.ok(
        line && Number(line.split(' ').pop()) >= refused.length,
        `no refusal count in /metrics: ${line}`,
      );
      // A name that is no API is counted as "unknown", not as a series of its own.
      await fetch(`${fleet.server.url}/api/v3/no_such_api_${process.pid}`);
      const after = await (await fetch(`${fleet.server.url}/metrics`)).text();
      assert.doesNotMatch(after, /no_such_api_/);
      assert.match(after, /jobfleet_http_requests_total\{endpoint="unknown",code="1240003"\}/);
      await recovered();
    });

    test('a flood of refused writes leaves one audit entry per window, not one per call', async () => {
      await recovered();
      const burst = await Promise.all(
        Array.from({ length: PER_APP * 4 }, () =>
          post(fleet.server.url, 'delete_dangerous_rule', { id: 999_999 }, fleet.creds),
        ),
      );
      const limited = burst.filter((r) => r.code === RATE_LIMITED).length;
      assert.ok(limited >= PER_APP * 2, `codes: ${burst.map((r) => r.code).join(',')}`);
      const entries = await admin<{ entries: { code: number; outcome: string }[] }>(
        fleet.server.url,
        fleet.server.adminToken,
        'GET',
        '/audit?action=delete_dangerous_rule&limit=1000',
      );
      const limitedEntries = entries.data.entries.filter((e) => e.code === RATE_LIMITED);
      assert.ok(limitedEntries.length >= 1 && limitedEntries.length <= 2, `${limitedEntries.length} entries`);
      assert.equal(entries.data.entries.length, burst.length - limited + limitedEntries.length);
      await recovered();
    });

    test('a client address is limited before authentication: wrong secrets are throttled too', async () => {
      await recovered();
      const wrong = { ...fleet.creds, appSecret: 'not-the-secret' };
      const burst = await Promise.all(Array.from({ length: PER_ADDRESS * 2 }, () => list(wrong)));
      const codes = new Set(burst.map((r) => r.code));
      assert.ok(codes.has(ERROR_CATALOGUE.APP_AUTH_FAILED.code), 'the first calls reach authentication');
      const limited = burst.filter((r) => r.code === RATE_LIMITED);
      assert.ok(limited.length > 0, `codes: ${[...codes].join(',')}`);
      assert.ok(
        burst.length - limited.length <= 2 * PER_ADDRESS,
        'no more than the limit reach authentication',
      );
      assert.match(limited[0]?.message ?? '', /address 127\.0\.0\.1/);
      await recovered();

      // The admin token is guarded the same way.
      const guesses = await Promise.all(
        Array.from({ length: PER_ADDRESS * 2 }, () =>
          admin(fleet.server.url, 'guessed-admin-token', 'GET', '/apps'),
        ),
      );
      assert.ok(guesses.some((r) => r.code === RATE_LIMITED));
      assert.ok(guesses.some((r) => r.code === ERROR_CATALOGUE.ADMIN_AUTH_FAILED.code));
      await recovered();

      // Paths the router tidies up reach the same handlers, and are counted the same.
      for (const p of ['//api/v3/get_job_instance_list', '/%61pi/v3/get_job_instance_list']) {
        const body = JSON.stringify({
          ...fleet.scope,
          bk_app_code: wrong.appCode,
          bk_app_secret: wrong.appSecret,
        });
        const codes = await Promise.all(
          Array.from({ length: PER_ADDRESS * 2 }, async () => {
            const r = await fetch(`${fleet.server.url}${p}`, { method: 'POST', body });
            return ((await r.json()) as { code: number }).code;
          }),
        );
        assert.ok(codes.includes(ERROR_CATALOGUE.APP_AUTH_FAILED.code), `${p} reaches the API`);
        assert.ok(codes.includes(RATE_LIMITED), `${p}: ${[...new Set(codes)].join(',')}`);
        await recovered();
      }
    });

    test('running jobs and hosts per scope: refused over either quota, accepted once jobs end', async () => {
      await recovered();
      const sleeper = (hostIds: number[]) =>
        runScript(fleet, { script_content: b64('sleep 60'), target_server: { host_id_list: hostIds } });
      const terminate = (jobId: number) => operateJob(fleet, jobId, 1);
      const a = await sleeper([hosts[0] ?? 0]);
      assert.equal(a.result, true, a.message);
      const b = await sleeper(hosts);
      assert.equal(b.result, true, b.message);
      await new Promise((r) => setTimeout(r, 1100)); // stay clear of the per-app rate
      const before = await jobCount(fleet);

      const overJobs = await sleeper([hosts[0] ?? 0]);
      assert.equal(overJobs.code, JOBS_QUOTA, overJobs.message);
      assert.match(overJobs.message, /already has 2 running jobs \(at most 2\)/);
      assert.equal(await jobCount(fleet), before, 'a refused submission creates no job');

      // A job created without starting is not counted; starting it over the quota is refused.
      const pending = await runScript(fleet, {
        script_content: b64('sleep 60'),
        target_server: { host_id_list: [hosts[0] ?? 0] },
        start_task: false,
      });
      assert.equal(pending.result, true, pending.message);
      const start = await operateJob(fleet, pending.data.job_instance_id, 2);
      assert.equal(start.code, JOBS_QUOTA, start.message);
      await new Promise((r) => setTimeout(r, 1100));

      assert.equal((await terminate(a.data.job_instance_id)).result, true);
      await waitFinished(fleet, a.data.job_instance_id);
      await new Promise((r) => setTimeout(r, 1100));

      const overHosts = await sleeper(hosts);
      assert.equal(overHosts.code, HOSTS_QUOTA, overHosts.message);
      assert.match(overHosts.message, /has 2 hosts in running jobs; 2 more would pass the limit of 3/);

      const fits = await sleeper([hosts[1] ?? 0]);
      assert.equal(fits.result, true, fits.message);
      await new Promise((r) => setTimeout(r, 1100));
      for (const id of [b.data.job_instance_id, fits.data.job_instance_id]) {
        assert.equal((await terminate(id)).result, true);
        await waitFinished(fleet, id);
      }
    });
  });

  describe(`the quota counts over a long history on ${engine}`, () => {
    let store: Store;
    before(async () => {
      store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('quota') });
    });
    after(async () => {
      await store.close();
      await dropFreshDatabases();
    });

    test("count a scope's running jobs and their current hosts, reading those jobs only", async () => {
      const now = Date.now();
      const job = async (scopeId: string, status: number, hosts: number, retried = false) => {
        const { id } = await store.db
          .insertInto('job_instance')
          .values({
            scope_type: 'biz',
            scope_id: scopeId,
            name: 'j',
            type: 1,
            launch_mode: 2,
            operator: 'u',
            app_code: 'a',
            status,
            create_time: now,
            start_time: now,
            end_time: null,
            callback_url: null,
            client_request_id: null,
            job_plan_id: null,
            job_template_id: null,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const step = await store.db
          .insertInto('step_instance')
          .values({
            job_instance_id: id,
            step_order: 1,
            name: 's',
            type: 1,
            status: 2,
            execute_count: retried ? 1 : 0,
            create_time: now,
            start_time: now,
            end_time: null,
            spec: '{}',
            current_batch: 0,
            sealed_key: null,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const attempts = retried ? [0, 1] : [0];
        for (const executeCount of attempts)
          for (let h = 1; h <= hosts; h++)
            await store.db
              .insertInto('host_task')
              .values({
                step_instance_id: step.id,
                execute_count: executeCount,
                host_id: h,
                cloud_id: 0,
                ip: `10.0.0.${h}`,
                ipv6: '',
                agent_id: null,
                status: 3,
                exit_code: null,
                error_code: 0,
                tag: '',
                start_time: null,
                end_time: null,
                log_bytes: 0,
                dropped_bytes: 0,
                batch: 0,
              })
              .execute();
      };
      for (let i = 0; i < 30; i++) await job('1', i % 2 ? 3 : 4, 2);
      await job('1', 2, 3);
      await job('1', 10, 2, true);
      await job('1', 7, 5);
      await job('2', 2, 4);
      assert.equal(await store.quotas.runningJobs('biz', '1'), 2);
      assert.equal(await store.quotas.runningHosts('biz', '1'), 5, 'the current attempt of each step');
      assert.equal(await store.quotas.runningJobs('biz', '3'), 0);
      if (engine !== 'sqlite') return;
      // Without statistics SQLite took the scope's index on create_time: every job it ever ran,
      // at every accept (200,000 jobs: 17 ms a count). The quota's count, as quota-store.ts writes it:
      const plan = await sql<{ detail: string }>`explain query plan select count(*) from job_instance
        where status in (2, 10) and scope_type = 'biz' and scope_id = '1'`.execute(store.db);
      assert.match(
        plan.rows.map((r) => r.detail).join(' | '),
        /job_instance_scope_status \(scope_type=\? AND scope_id=\? AND status=\?\)/,
      );
    });
  });
}
