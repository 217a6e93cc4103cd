/**
 * Cluster mode: the callback queue is timed by the database clock, so servers whose clocks
 * disagree still send each callback attempt once and retry after the backoff. One of the two
 * servers runs under libfaketime, its clock minutes ahead of the other's (and of the database's);
 * its monotonic clock is left alone, so its timers run as usual.
 *
 * Runs only where PostgreSQL is given (JOBFLEET_TEST_PG_URL) and libfaketime is installed
 * (scripts/install-test-packages.sh installs it).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually, get } from './helpers/api-client.js';
import { startCluster, startClusterServer } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { b64, runScript } from './helpers/fleet.js';
import type { CallbackRecord } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const FAKETIME_LIB = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/faketime/libfaketime.so.1`;
const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const withFaketime = fs.existsSync(FAKETIME_LIB);

/** How far the skewed server's clock runs ahead: far past the lease of a claimed callback. */
const SKEW_MS = 120_000;
/** A claimed callback's lease is its timeout + 2 s (callback-queue.ts). */
const CALLBACK_TIMEOUT_MS = 5000;
const BACKOFF_MS = 3000;
/** How long the receiver holds the POST it answers slowly: well inside the lease. */
const HOLD_MS = 2500;

/** How the receiver answers the POSTs of one job, by attempt (1-based). */
type Answer = (attempt: number) => { status: number; afterMs: number };

describe(
  'cluster: callbacks with a server whose clock runs ahead',
  { skip: !withPg || !withFaketime },
  () => {
    let c: Cluster;
    let receiver: http.Server;
    let url = '';
    /** When each POST of a job arrived (this process's clock, which is not skewed). */
    const hits = new Map<number, number[]>();
    const answers = new Map<number, Answer>();
    /** The skewed server's index in `c.servers`. */
    const SKEWED = 1;

    before(async () => {
      receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const jobId = (JSON.parse(body) as { job_instance_id: number }).job_instance_id;
          const list = hits.get(jobId) ?? [];
          list.push(Date.now());
          hits.set(jobId, list);
          const { status, afterMs } = answers.get(jobId)?.(list.length) ?? { status: 200, afterMs: 0 };
          setTimeout(() => {
            res.statusCode = status;
            res.end('ok');
          }, afterMs);
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
      const env = {
        JOBFLEET_CALLBACK_TIMEOUT_MS: String(CALLBACK_TIMEOUT_MS),
        JOBFLEET_CALLBACK_BACKOFF_BASE_MS: String(BACKOFF_MS),
      };
      c = await startCluster({ servers: 1, agents: 1, env });
      c.servers.push(
        await startClusterServer(c.databaseUrl ?? '', SKEWED, {
          ...env,
          LD_PRELOAD: FAKETIME_LIB,
          FAKETIME: `+${SKEW_MS / 1000}s`,
          FAKETIME_DONT_FAKE_MONOTONIC: '1',
        }),
      );
    });
    after(async () => {
      await stopAll();
      receiver?.closeAllConnections();
      receiver?.close();
      await c?.close();
      await dropFreshDatabases();
    });

    /** Runs a job with a callback through server `via`; the receiver answers its POSTs by `answer`. */
    async function jobWithCallback(via: number, answer: Answer): Promise<number> {
      const r = await runScript(c.via(via), {
        script_content: b64('echo done'),
        callback_url: url,
        target_server: { host_id_list: [c.hostIds.get('127.0.0.2')] },
      });
      assert.equal(r.result, true, r.message);
      answers.set(r.data.job_instance_id, answer);
      return r.data.job_instance_id;
    }

    async function callbackOf(via: number, jobId: number): Promise<CallbackRecord | undefined> {
      const f = c.via(via);
      const list = await get<{ callback_list: CallbackRecord[] }>(
        f.server.url,
        'get_job_instance_callback_list',
        { ...f.scope, job_instance_id: jobId },
        f.creds,
      );
      return list.data.callback_list[0];
    }

    const hitsOf = (jobId: number) => hits.get(jobId) ?? [];

    test('the skewed server runs its clock ahead', () => {
      // pino stamps each line with the process's Date.now().
      const line = c.servers[SKEWED]?.output()
        .split('\n')
        .find((l) => l.includes('"time":'));
      const stamped = Number((JSON.parse(line ?? '{}') as { time?: number }).time);
      assert.ok(
        stamped - Date.now() > SKEW_MS - 30_000,
        `skewed server's time ${stamped}, now ${Date.now()}`,
      );
    });

    test('a server whose clock runs ahead does not send a callback another server holds', async () => {
      // Queued and sent by the server with the true clock (the job's owner queues its callback and
      // takes it at once); the receiver holds the POST well inside the lease.
      const jobId = await jobWithCallback(1 - SKEWED, () => ({ status: 200, afterMs: HOLD_MS }));
      const cb = await eventually(
        async () => {
          const x = await callbackOf(1 - SKEWED, jobId);
          return x?.state === 'delivered' ? x : undefined;
        },
        30_000,
        `callback of job ${jobId} delivered`,
      );
      // Long enough for any other server to have looked at the queue a few times.
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(hitsOf(jobId).length, 1, `POSTs of job ${jobId}: ${JSON.stringify(hitsOf(jobId))}`);
      assert.deepEqual(
        cb.attempt_list.map((a) => a.http_status),
        [200],
      );
    });

    test('a retry is sent after the backoff, not at once by the server whose clock runs ahead', async () => {
      // The first attempt is the true clock's server's (as above), and fails: its retry is due
      // after the backoff for every server, whatever its clock says.
      const jobId = await jobWithCallback(1 - SKEWED, (n) => ({ status: n === 1 ? 500 : 200, afterMs: 0 }));
      await eventually(
        async () => ((await callbackOf(1 - SKEWED, jobId))?.state === 'delivered' ? true : undefined),
        30_000,
        `callback of job ${jobId} delivered`,
      );
      const [first = 0, second = 0, ...more] = hitsOf(jobId);
      assert.equal(more.length, 0, `POSTs of job ${jobId}: ${JSON.stringify(hitsOf(jobId))}`);
      const gap = second - first;
      assert.ok(gap >= BACKOFF_MS - 300 && gap <= BACKOFF_MS + 5000, `retry ${gap} ms after the first POST`);
    });

    test('a callback the server whose clock runs ahead queued is retried by another after the backoff', async () => {
      // Queued by the skewed server (the job's owner), which most likely makes the first attempt.
      const jobId = await jobWithCallback(SKEWED, (n) => ({ status: n === 1 ? 500 : 200, afterMs: 0 }));
      await eventually(
        async () => ((await callbackOf(1 - SKEWED, jobId))?.attempts === 1 ? true : undefined),
        30_000,
        `first callback attempt of job ${jobId} recorded`,
      );
      // The server that may have recorded the failed attempt leaves: the retry is the other's.
      await c.servers[SKEWED]?.kill();
      const first = hitsOf(jobId)[0] ?? 0;
      const second = await eventually(
        async () => hitsOf(jobId)[1],
        BACKOFF_MS + 10_000 - (Date.now() - first),
        `the retry of job ${jobId}'s callback within ${BACKOFF_MS + 10_000} ms of its first POST`,
      );
      assert.ok(second - first >= BACKOFF_MS - 300, `retry ${second - first} ms after the first POST`);
      await eventually(
        async () => ((await callbackOf(1 - SKEWED, jobId))?.state === 'delivered' ? true : undefined),
        10_000,
        `callback of job ${jobId} delivered`,
      );
      assert.equal(hitsOf(jobId).length, 2, `POSTs of job ${jobId}: ${JSON.stringify(hitsOf(jobId))}`);
    });
  },
);
