/**
 * The job event stream end to end: a real server, 500 simulated hosts (the bench's fleet
 * simulator), real SSE clients. A client that drops three times and resumes by Last-Event-ID
 * ends with exactly the events of one that never dropped; so does one that resumes across a
 * server SIGKILL and restart; a coalescing client ends with the same exact counters.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import { admin, eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';
import { startSimulatedFleet } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';
import { readStream, streamUrl } from './helpers/sse-client.js';
import type { SseEvent } from './helpers/sse-client.js';

const BIZ = 2;
const HOSTS = 500;
const scope = { bk_scope_type: 'biz', bk_scope_id: String(BIZ) };

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

    before(async () => {
      const databaseUrl = await freshDatabase(engine);
      // Simulated agents take a while to come back after the restart: give them the time.
      const env = { JOBFLEET_HEARTBEAT_TIMEOUT_MS: '30000' };
      server = await startServer(databaseUrl ? { databaseUrl, env } : { env });
      await admin(server.url, server.adminToken, 'POST', '/biz', { id: BIZ, name: 'stream business' });
      await admin(server.url, server.adminToken, 'POST', '/accounts', {
        bk_biz_id: BIZ,
        alias: os.userInfo().username,
        os_user: os.userInfo().username,
      });
      fleet = await startSimulatedFleet(server, HOSTS, BIZ);
      creds = { appCode: server.appCode, appSecret: server.appSecret, username: 'tester' };
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
  });
}
