/**
 * Job history retention on both stores. Through real servers and agents: a server started with
 * `--job-retention-days` removes, at its start, finished jobs that ended before the retention
 * with every row recorded for them (a script job with output and a delivered callback, a file
 * job with file logs), and keeps a recent job and a running one however old. Through the store:
 * removal a few rows per statement takes every row of a job, and keeps what does not qualify;
 * crons' firings before the retention go, each cron's latest kept. Files the server holds go
 * when nothing named them for the retention (an upload, a pushed config of a removed job), with
 * their bytes; those a template or a job the retention keeps names stay, and a job naming a
 * removed one is refused. Through the store, a file named as it is retired: one of the two wins.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunStatus } from '../src/engine/statuses.js';
import { pruneJobHistory } from '../src/job-history-retention.js';
import { Store } from '../src/store/store.js';
import { eventually, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { onFleetDatabase, queryFleetDatabase } from './helpers/fleet-database.js';
import {
  b64,
  hostLog,
  jobStatus,
  operateJob,
  runScript,
  startFleet,
  waitCallbackDelivered,
  waitFinished,
} from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV, stopAll, tempDir } from './helpers/processes.js';
import { newJob } from './helpers/store-fixtures.js';

const DAY_MS = 24 * 3600_000;

/** Every table that holds rows of a job, with how its rows name the job or its steps. */
const JOB_TABLES = [
  ['job_instance', 'id in (JOBS)'],
  ['step_instance', 'job_instance_id in (JOBS)'],
  ['job_instance_var', 'job_instance_id in (JOBS)'],
  ['job_event', 'job_instance_id in (JOBS)'],
  ['callback', 'job_instance_id in (JOBS)'],
  ['callback_attempt', 'callback_id in (select id from callback where job_instance_id in (JOBS))'],
  ...[
    'host_task',
    'log_chunk',
    'file_log',
    'output_fingerprint',
    'host_task_var',
    'step_confirmation',
    'file_offer',
    'step_ip_set',
  ].map(
    (t) => [t, 'step_instance_id in (select id from step_instance where job_instance_id in (JOBS))'] as const,
  ),
] as const;

/** Rows per table for the given jobs (by step ids read first, so rows left without their step count too). */
async function rowsOfJobs(fleet: Fleet, jobs: number[]): Promise<Record<string, number>> {
  const ids = jobs.join(',');
  const steps = await queryFleetDatabase<{ id: number }>(
    fleet,
    `select id from step_instance where job_instance_id in (${ids})`,
    `select id from step_instance where job_instance_id in (${ids})`,
  );
  const stepIds = steps.map((s) => s.id).join(',') || '0';
  const counts: Record<string, number> = {};
  for (const [table, where] of JOB_TABLES) {
    const w = where
      .replace('select id from step_instance where job_instance_id in (JOBS)', stepIds)
      .replaceAll('JOBS', ids);
    const text = `select count(*) as n from ${table} where ${w}`;
    const [row] = await queryFleetDatabase<{ n: number | string }>(fleet, text, text);
    counts[table] = Number(row?.n);
  }
  return counts;
}

/** A loopback receiver that answers every callback. */
async function callbackReceiver() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`,
    close: () => server.close(),
  };
}

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`job history retention on ${engine}`, () => {
    let fleet: Fleet;
    before(async () => {
      fleet = await startFleet(engine, 2, {
        env: { ...RESTART_HEARTBEAT_ENV, JOBFLEET_JOB_RETENTION_DAYS: '1' },
      });
    });

    test('a server removes finished jobs past the retention at start, whole, and keeps the rest', async () => {
      const [srcHost, dstHost] = [fleet.hostIds.get('127.0.0.2'), fleet.hostIds.get('127.0.0.3')];
      const receiver = await callbackReceiver();
      const dir = tempDir('retention-files');
      fs.writeFileSync(path.join(dir, 'a.txt'), 'to be copied\n');
      try {
        const script = (name: string, content: string, extra: Record<string, unknown> = {}) =>
          runScript(fleet, {
            task_name: name,
            script_content: b64(content),
            target_server: { host_id_list: [srcHost, dstHost] },
            ...extra,
          });
        const oldScript = await script('old script', 'echo old output', { callback_url: receiver.url });
        const oldFile = await post<{ job_instance_id: number }>(
          fleet.server.url,
          'fast_transfer_file',
          {
            ...fleet.scope,
            account_alias: fleet.account,
            file_target_path: path.join(dir, 'copy'),
            file_source_list: [
              {
                file_list: [path.join(dir, 'a.txt')],
                server: { host_id_list: [srcHost] },
                account: { alias: fleet.account },
              },
            ],
            target_server: { host_id_list: [dstHost] },
          },
          fleet.creds,
        );
        const recent = await script('recent script', 'echo recent output');
        const running = await script('running script', 'sleep 120');
        for (const r of [oldScript, oldFile, recent, running]) assert.equal(r.result, true, r.message);
        const [oldId, fileId, recentId, runningId] = [oldScript, oldFile, recent, running].map(
          (r) => r.data.job_instance_id,
        ) as [number, number, number, number];
        for (const id of [oldId, fileId, recentId])
          assert.equal((await waitFinished(fleet, id)).job_instance.status, 3);
        await waitCallbackDelivered(fleet, oldId);

        const before = await rowsOfJobs(fleet, [oldId, fileId]);
        for (const table of [
          'job_instance',
          'step_instance',
          'job_event',
          'callback',
          'callback_attempt',
          'host_task',
          'log_chunk',
          'file_log',
          'step_ip_set',
        ])
          assert.ok((before[table] ?? 0) > 0, `${table} has rows of the old jobs: ${JSON.stringify(before)}`);
        const recentBefore = await rowsOfJobs(fleet, [recentId]);

        // Two days ago for the old jobs; the running one was created two days ago too.
        const twoDaysAgo = Date.now() - 2 * DAY_MS;
        const age = `update job_instance set create_time = ${twoDaysAgo}, start_time = ${twoDaysAgo}, end_time = ${twoDaysAgo + 1000} where id in (${oldId}, ${fileId});
          update job_instance set create_time = ${twoDaysAgo}, start_time = ${twoDaysAgo} where id = ${runningId};`;
        await onFleetDatabase(fleet, age, age);
        await fleet.server.kill();
        fleet.server = await fleet.server.restart();
        const server = fleet.server;
        await eventually(
          async () =>
            /"removed":2,"retentionDays":1,"msg":"finished jobs past retention removed"/.test(
              server.output(),
            ) || undefined,
          15_000,
          'the old jobs removed',
        );

        for (const id of [oldId, fileId]) {
          const r = await get(
            fleet.server.url,
            'get_job_instance_status',
            { ...fleet.scope, job_instance_id: id },
            fleet.creds,
          );
          assert.equal(r.code, 1244006, JSON.stringify(r));
        }
        const after = await rowsOfJobs(fleet, [oldId, fileId]);
        assert.ok(
          Object.values(after).every((n) => n === 0),
          `nothing of the old jobs is left: ${JSON.stringify(after)}`,
        );
        assert.deepEqual(await rowsOfJobs(fleet, [recentId]), recentBefore);
        const kept = await jobStatus(fleet, recentId);
        assert.equal(kept.job_instance.status, 3);
        const step = kept.step_instance_list[0]!.step_instance_id;
        assert.match((await hostLog(fleet, recentId, step, srcHost!)) ?? '', /recent output/);
        assert.equal((await jobStatus(fleet, runningId)).job_instance.status, RunStatus.RUNNING);
        assert.equal((await operateJob(fleet, runningId, 1)).result, true);
        await waitFinished(fleet, runningId);
      } finally {
        receiver.close();
      }
    });
    test('stored files nothing named for the retention go with their bytes; named ones stay', async () => {
      const dstHost = fleet.hostIds.get('127.0.0.3');
      const dir = tempDir('retention-uploads');
      const upload = async (name: string) => {
        const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
          fleet.server.url,
          'generate_local_file_upload_url',
          { ...fleet.scope, file_name_list: [name] },
          fleet.creds,
        );
        const entry = urls.data.url_map[name];
        assert.ok(entry, urls.message);
        const up = (await (await fetch(entry.upload_url, { method: 'PUT', body: `${name}\n` })).json()) as {
          result: boolean;
        };
        assert.equal(up.result, true);
        return entry.path;
      };
      const [unused, inTemplate, inKeptJob, inOldJob, recent] = [
        await upload('unused.txt'),
        await upload('in-template.txt'),
        await upload('in-kept-job.txt'),
        await upload('in-old-job.txt'),
        await upload('recent.txt'),
      ];
      const account = { alias: fleet.account };
      const template = await post<{ id: number }>(
        fleet.server.url,
        'create_job_template',
        {
          ...fleet.scope,
          name: 'ships an upload',
          step_list: [
            {
              name: 'ship',
              type: 2,
              file_info: {
                file_source_list: [{ file_type: 2, file_list: [inTemplate] }],
                file_destination: { path: `${dir}/t/`, account, server: { host_id_list: [dstHost] } },
              },
            },
          ],
        },
        fleet.creds,
      );
      assert.equal(template.result, true, template.message);
      const transfer = (file: string, sub: string) =>
        post<{ job_instance_id: number }>(
          fleet.server.url,
          'fast_transfer_file',
          {
            ...fleet.scope,
            account_alias: fleet.account,
            file_target_path: `${dir}/${sub}/`,
            file_source_list: [{ file_type: 2, file_list: [file] }],
            target_server: { host_id_list: [dstHost] },
          },
          fleet.creds,
        );
      const keptJob = await transfer(inKeptJob, 'kept');
      const oldJob = await transfer(inOldJob, 'old');
      const pushed = await post<{ job_instance_id: number }>(
        fleet.server.url,
        'push_config_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: `${dir}/conf/`,
          file_list: [{ file_name: 'app.conf', content: b64('x=1\n') }],
          target_server: { host_id_list: [dstHost] },
        },
        fleet.creds,
      );
      for (const r of [keptJob, oldJob, pushed]) {
        assert.equal(r.result, true, r.message);
        assert.equal((await waitFinished(fleet, r.data.job_instance_id)).job_instance.status, 3);
      }
      const sql = (text: string) => queryFleetDatabase<Record<string, unknown>>(fleet, text, text);
      const pushedPath = String(
        (await sql(`select path from stored_file where file_name = 'app.conf'`))[0]?.path,
      );
      const all = [unused, inTemplate, inKeptJob, inOldJob, recent, pushedPath];
      const quoted = (paths: string[]) => paths.map((p) => `'${p}'`).join(',');
      /** Whether each file's bytes are held: under the data directory (SQLite) or as chunks (PostgreSQL). */
      const held = async (p: string) =>
        engine === 'sqlite'
          ? fs.existsSync(path.join(fleet.server.dataDir, 'files', p))
          : Number((await sql(`select count(*) as n from stored_file_chunk where path = '${p}'`))[0]?.n) > 0;
      for (const p of all) assert.equal(await held(p), true, `${p} is held`);

      // Everything but the recent upload unnamed for two days; the kept job was created two days
      // ago and finished within the retention (its steps can be retried); the old jobs ended then.
      const twoDaysAgo = Date.now() - 2 * DAY_MS;
      const age = `update stored_file set created_at = ${twoDaysAgo}, used_at = ${twoDaysAgo} where path in (${quoted(all.filter((p) => p !== recent))});
        update job_instance set create_time = ${twoDaysAgo}, start_time = ${twoDaysAgo}, end_time = ${twoDaysAgo + 1000} where id in (${oldJob.data.job_instance_id}, ${pushed.data.job_instance_id});
        update job_instance set create_time = ${twoDaysAgo} where id = ${keptJob.data.job_instance_id};`;
      await onFleetDatabase(fleet, age, age);
      await fleet.server.kill();
      const restartedAt = Date.now();
      fleet.server = await fleet.server.restart();
      const server = fleet.server;
      await eventually(
        async () =>
          /"removed":3,"retentionDays":1,"msg":"unused stored files past retention removed"/.test(
            server.output(),
          ) || undefined,
        15_000,
        'the unnamed files removed',
      );

      const rows = await sql(`select path, used_at from stored_file where path in (${quoted(all)})`);
      assert.deepEqual(rows.map((r) => r.path).sort(), [inTemplate, inKeptJob, recent].sort());
      // Named where the pass had to read to know: counted as used now, not read again for a day.
      for (const r of rows.filter((x) => x.path !== recent))
        assert.ok(Number(r.used_at) >= restartedAt, `${String(r.path)} used again: ${JSON.stringify(r)}`);
      for (const p of [unused, inOldJob, pushedPath]) {
        assert.equal(await held(p), false, `${p} is gone`);
        if (engine === 'sqlite')
          assert.equal(fs.existsSync(path.dirname(path.join(fleet.server.dataDir, 'files', p))), false);
      }
      for (const p of [inTemplate, inKeptJob, recent]) assert.equal(await held(p), true, `${p} is kept`);

      const gone = await transfer(unused, 'gone');
      assert.equal(gone.code, 1241007, JSON.stringify(gone));
      const again = await transfer(inTemplate, 'again');
      assert.equal(again.result, true, again.message);
      assert.equal((await waitFinished(fleet, again.data.job_instance_id)).job_instance.status, 3);
      assert.equal(fs.readFileSync(`${dir}/again/in-template.txt`, 'utf8'), 'in-template.txt\n');
    });
  });

  describe(`job history removal a few rows at a time on ${engine}`, () => {
    let store: Store;
    before(async () => {
      store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('history') });
    });
    after(async () => {
      await store.close();
    });

    test('every row of an old finished job goes; unfinished and recent jobs stay', async () => {
      const ex = store.executions;
      const hosts = Array.from({ length: 7 }, (_, i) => ({
        hostId: 100 + i,
        cloudId: 0,
        ip: `10.9.0.${i + 1}`,
        ipv6: '',
        agentId: null,
        status: 1,
        batch: 0,
      }));
      const started = async (name: string) =>
        (
          await ex.createJobInstance(
            newJob('2', name, [
              {
                name: `${name} 1`,
                type: 1,
                spec: { kind: 'confirm', approvers: [], message: '', notifyChannels: [], webhookUrl: null },
                hosts,
              },
              {
                name: `${name} 2`,
                type: 1,
                spec: { kind: 'confirm', approvers: [], message: '', notifyChannels: [], webhookUrl: null },
                hosts,
              },
            ]),
            true,
          )
        ).jobInstanceId;
      const now = Date.now();
      const [succeeded, failed, waiting, recent] = [
        await started('succeeded'),
        await started('failed'),
        await started('waiting'),
        await started('recent'),
      ];
      assert.equal(
        await ex.casJob(succeeded, undefined, { status: RunStatus.SUCCESS, end_time: now - 3 * DAY_MS }),
        true,
      );
      assert.equal(
        await ex.casJob(failed, undefined, { status: RunStatus.FAIL, end_time: now - 2 * DAY_MS }),
        true,
      );
      assert.equal(await ex.casJob(waiting, undefined, { status: RunStatus.WAITING_USER }), true);
      assert.equal(await ex.casJob(recent, undefined, { status: RunStatus.SUCCESS, end_time: now }), true);
      const tasks = async (job: number) =>
        (await Promise.all((await ex.getStepHeadsOfJob(job)).map((s) => ex.listHostTasks(s.id, 0)))).flat()
          .length;
      assert.equal(await tasks(succeeded), 14);

      // Nothing within the retention, nothing with retention 0.
      assert.equal(await pruneJobHistory(store.history, 5, now, 2), 0);
      assert.equal(await pruneJobHistory(store.history, 0, now, 2), 0);
      // Two rows a statement: 14 tasks and their events go over many statements.
      assert.equal(await pruneJobHistory(store.history, 1, now, 2), 2);
      for (const job of [succeeded, failed]) {
        assert.equal(await ex.getJob(job), undefined);
        assert.deepEqual(await ex.getStepHeadsOfJob(job), []);
        assert.deepEqual(await ex.events.listOfJob(job, 0, 1000), []);
      }
      for (const job of [waiting, recent]) {
        assert.ok(await ex.getJob(job));
        assert.equal(await tasks(job), 14);
      }
      assert.equal(await pruneJobHistory(store.history, 1, now, 2), 0);
    });

    test('a stored file named as it is retired: only one of the two takes effect', async () => {
      const files = store.files;
      const now = Date.now();
      const row = (p: string) => ({
        path: p,
        scope_type: 'biz',
        scope_id: '2',
        creator: 'tester',
        file_name: p.split('/').pop() ?? p,
        upload_token_hash: null,
        expires_at: now,
        size: 1,
        sha256: 'x',
        created_at: now - 3 * DAY_MS,
      });
      await files.createStoredFiles([row('2/a/u/a'), row('2/b/u/b')]);
      // A row of a version before used_at counts from its creation.
      await store.db
        .insertInto('stored_file')
        .values({ ...row('2/c/u/c'), upload_claimed_by: null, used_at: null })
        .execute();
      assert.equal(await files.useStoredFiles(['2/a/u/a', '2/a/u/a'], now), 1);
      assert.deepEqual(await files.unusedBefore(now - DAY_MS, '', 10), ['2/b/u/b', '2/c/u/c']);
      assert.deepEqual(await files.unusedBefore(now - DAY_MS, '2/b/u/b', 10), ['2/c/u/c']);
      assert.deepEqual(await files.retireUnused(['2/a/u/a', '2/b/u/b'], now - DAY_MS), ['2/b/u/b']);
      // Retired: no job names it any more, and no upload completes into it.
      assert.equal(await files.useStoredFiles(['2/b/u/b'], now), 0);
      assert.equal((await files.getStoredFiles(['2/b/u/b']))[0]?.size, null);
      await files.deleteRetired(['2/a/u/a', '2/b/u/b']);
      assert.deepEqual(
        (await files.getStoredFiles(['2/a/u/a', '2/b/u/b', '2/c/u/c'])).map((r) => r.path).sort(),
        ['2/a/u/a', '2/c/u/c'],
      );
    });

    test("a cron's firings before the retention go, but its latest", async () => {
      const cron = async (name: string) =>
        (
          await store.db
            .insertInto('cron_job')
            .values({
              scope_type: 'biz',
              scope_id: '2',
              job_plan_id: 1,
              name,
              expression: '* * * * *',
              execute_time: null,
              time_zone: 'UTC',
              enabled: 1,
              enabled_at: 0,
              end_time: null,
              misfire_grace_seconds: 60,
              vars: '{}',
              app_code: 'app',
              creator: 'tester',
              create_time: 0,
              last_modify_user: 'tester',
              last_modify_time: 0,
            })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id;
      const nowSeconds = 1_000_000;
      const fire = async (cronId: number, times: number[]) => {
        for (let i = 0; i < times.length; i += 1000)
          await store.db
            .insertInto('cron_firing')
            .values(
              times.slice(i, i + 1000).map((t) => ({
                cron_id: cronId,
                scheduled_time: t,
                outcome: 'fired',
                job_instance_id: null,
                reason: null,
                recorded_at: t * 1000,
              })),
            )
            .execute();
      };
      const busy = await cron('every minute');
      const stopped = await cron('stopped long ago');
      // Minutes from 10 days ago to now; the other cron's last two firings are 5 days old.
      await fire(
        busy,
        Array.from({ length: 14_401 }, (_, i) => nowSeconds - 10 * 86_400 + i * 60),
      );
      await fire(stopped, [nowSeconds - 6 * 86_400, nowSeconds - 5 * 86_400]);
      const timesOf = async (cronId: number) =>
        (await store.crons.lastFirings(cronId, 20_000)).map((f) => Number(f.scheduled_time));
      // One day of retention, 1,000 rows a statement.
      assert.equal(await store.crons.pruneFiringsBefore(nowSeconds - 86_400, 1000), 9 * 1440 + 1);
      const kept = await timesOf(busy);
      assert.equal(kept.length, 1440 + 1);
      assert.equal(Math.min(...kept), nowSeconds - 86_400);
      assert.deepEqual(await timesOf(stopped), [nowSeconds - 5 * 86_400]);
      assert.equal(await store.crons.pruneFiringsBefore(nowSeconds - 86_400, 1000), 0);
    });
  });
}
