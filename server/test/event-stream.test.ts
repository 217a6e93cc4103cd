/**
 * The job event stream end to end: a real server, 500 simulated hosts (the bench's fleet
 * simulator), real SSE clients. A client that drops three times and resumes by Last-Event-ID
 * ends with exactly the events of one that never dropped; so does one that resumes across a
 * server SIGKILL and restart; a coalescing client ends with the same exact counters.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import { computeSignature, signatureBase } from '../src/api/app-signature.js';
import { Store } from '../src/store/store.js';
import { scopeStatusEvents } from '../src/streams/event-streams.js';
import { admin, eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';
import { startSimulatedServer } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';
import { readStream, streamUrl } from './helpers/sse-client.js';
import type { SseEvent } from './helpers/sse-client.js';

const BIZ = 2;
const HOSTS = 500;
const scope = { bk_scope_type: 'biz', bk_scope_id: String(BIZ) };

const BACKLOG = 40_000;

/** Appends synthetic log notices to a job's event log, straight into the store the server uses. */
async function appendBacklog(
  server: ServerProcess,
  databaseUrl: string | undefined,
  job: number,
): Promise<void> {
  const data = (i: number) =>
    JSON.stringify({
      job_instance_id: job,
      step_instance_id: 0,
      execute_count: 0,
      bk_host_id: i,
      offset: i * 100,
      length: 100,
      note: 'x'.repeat(80),
    });
  if (databaseUrl) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      await client.query(
        `insert into job_event (job_instance_id, scope_type, scope_id, kind, data, at)
         select $1, 'biz', $2, 'log', $3 || i || $4, 0 from generate_series(1, $5) as i`,
        [job, String(BIZ), data(0).slice(0, -1) + ',"i":', '}', BACKLOG],
      );
    } finally {
      await client.end();
    }
    return;
  }
  const db = new Database(path.join(server.dataDir, 'jobfleet.db'));
  db.pragma('busy_timeout = 10000');
  const insert = db.prepare(
    "insert into job_event (job_instance_id, scope_type, scope_id, kind, data, at) values (?, 'biz', ?, 'log', ?, 0)",
  );
  db.transaction(() => {
    for (let i = 0; i < BACKLOG; i++) insert.run(job, String(BIZ), data(i));
  })();
  db.close();
}

/** A client that asks for a stream and then never reads a byte. */
function stalledClient(server: ServerProcess, url: string, creds: ApiCreds): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const socket = net.connect(Number(u.port), u.hostname, () => {
      const auth = JSON.stringify({ bk_app_code: creds.appCode, bk_app_secret: creds.appSecret });
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nX-Bkapi-Authorization: ${auth}\r\n\r\n`,
      );
      socket.pause();
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

async function scrape(server: ServerProcess): Promise<{ clients: number; buffered: number; rss: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    clients: value('jobfleet_stream_clients'),
    buffered: value('jobfleet_stream_buffered_bytes'),
    rss: value('jobfleet_process_resident_memory_bytes'),
  };
}

/** Exact host counts per status at the end, replayed from a stream's events (coalesced or not). */
function countsOf(events: readonly SseEvent[]): Map<string, Record<string, number>> {
  const counts = new Map<string, Record<string, number>>();
  const apply = (key: string, delta: Record<string, number>) => {
    const c = counts.get(key) ?? {};
    for (const [s, n] of Object.entries(delta)) c[s] = (c[s] ?? 0) + n;
    counts.set(key, c);
  };
  for (const e of events) {
    const d = JSON.parse(e.data) as Record<string, unknown>;
    if (e.event === 'job' && Array.isArray(d.steps)) {
      for (const s of d.steps as { step_instance_id: number; host_counts: Record<string, number> }[])
        apply(`${s.step_instance_id}:0`, s.host_counts);
    } else if (e.event === 'host') {
      const from = d.from_status as number | null;
      apply(`${String(d.step_instance_id)}:${String(d.execute_count)}`, {
        ...(from !== null ? { [from]: -1 } : {}),
        [String(d.status)]: 1,
      });
    } else if (e.event === 'coalesced') {
      for (const s of d.steps as {
        step_instance_id: number;
        execute_count: number;
        status_delta: Record<string, number>;
      }[])
        apply(`${s.step_instance_id}:${s.execute_count}`, s.status_delta);
    }
  }
  for (const c of counts.values()) for (const [k, v] of Object.entries(c)) if (v === 0) delete c[k];
  return counts;
}

/** Reads a whole job stream, disconnecting after each count in `drops` and resuming by Last-Event-ID. */
async function readWithDrops(url: string, creds: ApiCreds, drops: number[]): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for (const n of drops) {
    const last = events.at(-1)?.id;
    const r = await readStream(url, creds, {
      stopAfter: n,
      ...(last !== undefined ? { lastEventId: last } : {}),
    });
    events.push(...r.events);
  }
  const r = await readStream(url, creds, { lastEventId: events.at(-1)?.id ?? 0 });
  assert.ok(r.end, 'the resumed stream ends with the job');
  events.push(...r.events);
  return events;
}

function assertOrdered(events: readonly SseEvent[]): void {
  for (let i = 1; i < events.length; i++)
    assert.ok((events[i]?.id ?? 0) > (events[i - 1]?.id ?? 0), `ids increase at ${i}`);
}

for (const engine of engines()) {
  describe(`job event stream on ${engine}`, () => {
    let server: ServerProcess;
    let fleet: SimulatedFleet;
    let creds: ApiCreds;
    let databaseUrl: string | undefined;
    let firstJob = 0;

    before(async () => {
      databaseUrl = await freshDatabase(engine);
      // Simulated agents take a while to come back after the restart: the helper's 30 s
      // heartbeat timeout gives them the time.
      const env = { JOBFLEET_STREAM_MAX_PER_CALLER: '5' };
      ({ server, fleet, creds } = await startSimulatedServer({
        databaseUrl,
        env,
        biz: BIZ,
        bizName: 'stream business',
        hosts: HOSTS,
      }));
    });
    after(async () => {
      await fleet?.stop();
      await stopAll();
      await dropFreshDatabases();
    });

    async function startJob(rolling: Record<string, unknown>): Promise<number> {
      const r = await post<{ job_instance_id: number }>(
        server.url,
        'fast_execute_script',
        {
          ...scope,
          script_language: 1,
          script_content: Buffer.from('echo hi').toString('base64'),
          account_alias: os.userInfo().username,
          target_server: { host_id_list: fleet.hostIds },
          rolling_config: rolling,
        },
        creds,
      );
      assert.equal(r.result, true, r.message);
      return r.data.job_instance_id;
    }

    test('three drops resumed by Last-Event-ID give exactly the uninterrupted events', async () => {
      const job = await startJob({ mode: 2, expression: String(HOSTS / 10) });
      firstJob = job;
      const url = streamUrl(server.url, 'get_job_event_stream', {
        ...scope,
        job_instance_id: job,
        max_events_per_second: 0,
      });
      const [whole, resumed] = await Promise.all([
        readStream(url, creds),
        readWithDrops(url, creds, [7, HOSTS / 5, HOSTS / 5]),
      ]);
      assert.ok(whole.end, 'the stream ends when the job finished');
      assert.equal(whole.end.status, 3);
      assertOrdered(whole.events);
      assert.deepEqual(resumed, whole.events);
      const kinds = new Set(whole.events.map((e) => e.event));
      for (const k of ['job', 'step', 'batch', 'host']) assert.ok(kinds.has(k), `has ${k} events`);
      const batches = whole.events
        .filter((e) => e.event === 'batch')
        .map((e) => JSON.parse(e.data) as { batch: number; batch_count: number });
      const lastBatch = Math.max(...batches.map((b) => Number(b.batch)));
      assert.ok(lastBatch > 1);
      for (const b of batches)
        assert.equal(b.batch_count, lastBatch, 'each batch event tells how many there are');
      const counts = countsOf(whole.events);
      assert.deepEqual([...counts.values()], [{ 9: HOSTS }], 'every host ended successful');

      // A reconnect after the end gets 204, which tells an EventSource to stop.
      const again = await readStream(url, creds, { lastEventId: whole.events.at(-1)?.id ?? 0 });
      assert.equal(again.status, 204);

      // A coalescing client gets far fewer messages, and the same exact counters.
      const slow = await readStream(
        streamUrl(server.url, 'get_job_event_stream', {
          ...scope,
          job_instance_id: job,
          max_events_per_second: 5,
        }),
        creds,
      );
      assert.ok(slow.events.some((e) => e.event === 'coalesced'));
      assert.ok(slow.events.length < whole.events.length / 2, `${slow.events.length} messages`);
      assert.equal(slow.events.at(-1)?.id, whole.events.at(-1)?.id);
      assert.deepEqual(countsOf(slow.events), counts);
    });

    test('a stream resumes across a server SIGKILL and restart', async () => {
      // Rolling, waiting for a person after each batch: the job is mid-way when the server dies.
      const job = await startJob({ mode: 3, expression: String(HOSTS / 5) });
      const url = (base: string) =>
        streamUrl(base, 'get_job_event_stream', { ...scope, job_instance_id: job, max_events_per_second: 0 });
      const status = async () =>
        (
          await get<{ job_instance: { status: number } }>(
            server.url,
            'get_job_instance_status',
            { ...scope, job_instance_id: job },
            creds,
          )
        ).data.job_instance.status;
      await eventually(async () => ((await status()) === 7 ? true : undefined), 90_000, 'first batch done');
      const before = await readStream(url(server.url), creds, { stopAfter: 10 });
      await server.kill('SIGKILL');
      server = await server.restart();
      const after = [...before.events];
      for (let batch = 2; batch <= 5; batch++) {
        await eventually(
          async () => ((await status()) === 7 ? true : undefined),
          90_000,
          `batch ${batch - 1} done`,
        );
        const steps = await get<{ step_instance_list: { step_instance_id: number }[] }>(
          server.url,
          'get_job_instance_status',
          { ...scope, job_instance_id: job },
          creds,
        );
        const op = await post(
          server.url,
          'operate_step_instance',
          {
            ...scope,
            job_instance_id: job,
            step_instance_id: steps.data.step_instance_list[0]?.step_instance_id,
            operation_code: 13,
          },
          creds,
        );
        assert.equal(op.result, true, op.message);
        if (batch === 3) {
          const part = await readStream(url(server.url), creds, {
            lastEventId: after.at(-1)?.id ?? 0,
            stopAfter: 5,
          });
          after.push(...part.events);
        }
      }
      const rest = await readStream(url(server.url), creds, { lastEventId: after.at(-1)?.id ?? 0 });
      assert.ok(rest.end, 'the resumed stream ends with the job');
      after.push(...rest.events);
      const whole = await readStream(url(server.url), creds);
      assertOrdered(whole.events);
      assert.deepEqual(after, whole.events);
      assert.deepEqual([...countsOf(whole.events).values()], [{ 9: HOSTS }]);
    });

    test('the scope stream carries the status events of every job of the scope, from now on', async () => {
      const url = streamUrl(server.url, 'get_scope_event_stream', { ...scope });
      let job = 0;
      const reading = readStream(url, creds, {
        until: (e) => {
          const d = JSON.parse(e.data) as { job_instance_id: number; status?: number };
          return e.event === 'job' && d.job_instance_id === job && d.status === 3;
        },
      });
      await new Promise((r) => setTimeout(r, 500));
      job = await startJob({ mode: 2, expression: String(HOSTS / 2) });
      const got = await reading;
      assert.ok(got.events.length > 0);
      assert.ok(
        got.events.every((e) => ['job', 'step', 'batch'].includes(e.event)),
        'status events only',
      );
      assert.ok(
        got.events.every((e) => (JSON.parse(e.data) as { job_instance_id: number }).job_instance_id === job),
      );
      assert.equal(got.events[0]?.event, 'job');
      assertOrdered(got.events);

      // A read moves past the host and log events it skips, up to the log's newest id: the next
      // read of a stream starts there, not again at its last status event.
      const store = await Store.open({ databaseUrl, dataDir: server.dataDir });
      try {
        const newest = await store.executions.events.lastId();
        const source = scopeStatusEvents(store.executions.events, scope.bk_scope_type, scope.bk_scope_id);
        const whole = await source.list(0, 100_000);
        assert.ok(whole.rows.every((r) => ['job', 'step', 'batch'].includes(r.kind)));
        assert.ok(whole.through >= newest, `read through ${whole.through}, the log holds ${newest}`);
        const first = await source.list(0, 1);
        assert.equal(first.through, first.rows[0]?.id, 'a full page moves only as far as its rows');
        assert.deepEqual((await source.list(whole.through, 500)).rows, []);
      } finally {
        await store.close();
      }
      // An unknown scope is refused with an envelope, before any stream starts.
      const other = await get(
        server.url,
        'get_scope_event_stream',
        { bk_scope_type: 'biz', bk_scope_id: '999' },
        creds,
      );
      assert.equal(other.result, false);
      const bad = await fetch(url, {
        headers: {
          'last-event-id': 'yesterday',
          'x-bkapi-authorization': JSON.stringify({
            bk_app_code: creds.appCode,
            bk_app_secret: creds.appSecret,
          }),
        },
      });
      const envelope = (await bad.json()) as { result: boolean; message: string };
      assert.equal(envelope.result, false);
      assert.match(envelope.message, /Last-Event-ID/);
    });

    test('a stream ends once its app loses the scope', async () => {
      const app = { appCode: `watcher-${engine}`, appSecret: 'watcher-secret-1', username: 'tester' };
      const grant = (scopes: unknown) =>
        admin(server.url, server.adminToken, 'POST', '/apps', {
          app_code: app.appCode,
          app_secret: app.appSecret,
          scopes,
        });
      await grant([{ type: 'biz', id: BIZ }]);
      const url = streamUrl(server.url, 'get_scope_event_stream', { ...scope });
      const reading = readStream(url, app, { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 500));
      await grant([{ type: 'biz', id: BIZ + 1 }]);
      const got = await reading;
      assert.equal(got.status, 200);
      assert.equal(got.end, undefined);
      const again = await get(server.url, 'get_scope_event_stream', scope, app);
      assert.equal(again.result, false);
    });

    test("a signed stream ends once its app's secret is replaced", async () => {
      const app = { appCode: `signer-${engine}`, appSecret: 'signer-secret-1', username: 'tester' };
      const setSecret = (secret: string) =>
        admin(server.url, server.adminToken, 'POST', '/apps', {
          app_code: app.appCode,
          app_secret: secret,
          scopes: [{ type: 'biz', id: BIZ }],
        });
      assert.equal((await setSecret(app.appSecret)).result, true);
      // Signed as the ESB SDK signs: no secret on the wire.
      const path = '/api/v3/get_scope_event_stream';
      const pairs: [string, string][] = [
        ['bk_app_code', app.appCode],
        ...Object.entries(scope),
        ['bk_timestamp', String(Math.floor(Date.now() / 1000))],
        ['bk_nonce', String(crypto.randomInt(1, 2 ** 40))],
      ];
      const signature = computeSignature(
        app.appSecret,
        signatureBase({ method: 'GET', path, pairs, body: undefined }),
      );
      const url = `${server.url}${path}?${new URLSearchParams([...pairs, ['bk_signature', signature]])}`;
      const reading = readStream(url, { ...app, appSecret: '' }, { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await setSecret('signer-secret-2')).result, true);
      const got = await reading;
      assert.equal(got.status, 200);
      assert.equal(got.end, undefined);
    });

    test('clients that stop reading do not make the server buffer their backlog', async () => {
      await appendBacklog(server, databaseUrl, firstJob);
      const url = streamUrl(server.url, 'get_job_event_stream', {
        ...scope,
        job_instance_id: firstJob,
        max_events_per_second: 0,
      });
      const before = await scrape(server);
      const stalled = await Promise.all(Array.from({ length: 5 }, () => stalledClient(server, url, creds)));
      await eventually(
        async () => ((await scrape(server)).clients === 5 ? true : undefined),
        30_000,
        'streams open',
      );
      let worst = { clients: 0, buffered: 0, rss: 0 };
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 300));
        const m = await scrape(server);
        worst = {
          clients: Math.max(worst.clients, m.clients),
          buffered: Math.max(worst.buffered, m.buffered),
          rss: Math.max(worst.rss, m.rss),
        };
      }
      // Each stalled stream has ~9 MB waiting in the log; the server holds about one page of it.
      const backlogBytes = BACKLOG * 200;
      console.log(
        `stalled clients: 5, backlog each ${(backlogBytes / 1e6).toFixed(1)} MB, ` +
          `server-side buffered ${(worst.buffered / 1e6).toFixed(2)} MB, rss ${(before.rss / 1e6).toFixed(0)} -> ${(worst.rss / 1e6).toFixed(0)} MB`,
      );
      assert.equal(worst.clients, 5);
      assert.ok(worst.buffered < 5 * 512 * 1024, `buffered ${worst.buffered} bytes`);
      // The app holds the most streams it may: one more is refused with an envelope.
      const sixth = await get(
        server.url,
        'get_job_event_stream',
        { ...scope, job_instance_id: firstJob },
        creds,
      );
      assert.equal(sixth.code, 1240430, sixth.message);
      assert.ok(worst.rss - before.rss < 64 * 1024 * 1024, `rss grew by ${worst.rss - before.rss} bytes`);
      for (const s of stalled) s.destroy();
      await eventually(
        async () => ((await scrape(server)).clients === 0 ? true : undefined),
        10_000,
        'streams closed',
      );
      // The whole backlog still reaches a client that reads.
      const all = await readStream(url, creds, { timeoutMs: 120_000 });
      assert.ok(all.end);
      assert.ok(all.events.length >= BACKLOG);
    });
  });
}
