/**
 * A large output is stored byte for byte (in chunks of a MiB and more, deflated in the store)
 * while the server and then the agent are killed with SIGKILL in the middle of it: what the
 * server stored survives its crash, and what it had not stored yet the agent still holds and
 * resends. Output arriving faster than it is committed is stored and fingerprinted exactly while
 * the server writes it into memory that earlier output held (output-slabs.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { z } from 'zod';
import { eventually, get, getUrl, post } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { b64, hostLog, runScript, startFleet, waitFinished, stopFleets } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV } from './helpers/processes.js';
import { fingerprintsOf } from '../src/outputs/output-fingerprint.js';

const HALF = 750_000;
const lines = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('');

/** get_job_instance_ip_log's parameters for a host of a job's step. */
const logParams = (fleet: Fleet, jobId: number, stepId: number, hostId: number) => ({
  ...fleet.scope,
  job_instance_id: jobId,
  step_instance_id: stepId,
  bk_host_id: hostId,
});

async function storedBytes(fleet: Fleet, jobId: number, stepId: number, hostId: number): Promise<number> {
  const r = await get<{ log_total_bytes: number }>(
    fleet.server.url,
    'get_job_instance_ip_log',
    { ...logParams(fleet, jobId, stepId, hostId), log_offset: 0, log_length: 4 },
    fleet.creds,
  );
  return r.result ? r.data.log_total_bytes : 0;
}

const Window = z.object({
  data: z.object({
    log_content: z.string().nullable(),
    log_next_offset: z.number(),
    log_complete: z.boolean(),
  }),
});

/** A GET's (or HEAD's) headers and whole body. */
function replyOf(
  url: string,
  options: http.RequestOptions = {},
): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, options, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Runs `script` on one host until its job is finished; the job's and its step's ids. */
async function finishedJob(
  fleet: Fleet,
  hostId: number,
  script: string,
  timeoutMs: number,
): Promise<{ jobId: number; stepId: number }> {
  const r = await runScript(fleet, {
    script_content: b64(script),
    target_server: { host_id_list: [hostId] },
  });
  assert.equal(r.result, true, r.message);
  const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
  await waitFinished(fleet, jobId, timeoutMs);
  return { jobId, stepId };
}

for (const engine of engines()) {
  describe(`large output on ${engine}`, () => {
    after(stopFleets);

    test('10 MiB of output is stored byte-exact across SIGKILL of the server, then of the agent', async () => {
      const fleet = await startFleet(engine, 1, {
        env: RESTART_HEARTBEAT_ENV,
        args: ['--log-cap-bytes', String(64 * 1024 * 1024)],
      });
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const first = lines(1, HALF);
      const all = first + lines(HALF + 1, 2 * HALF);
      assert.ok(all.length > 10 * 1024 * 1024);
      const script = `seq 1 ${HALF}\nsleep 4\nseq ${HALF + 1} ${2 * HALF}\nsleep 30\n`;
      const r = await runScript(fleet, {
        script_content: b64(script),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      const { job_instance_id: jobId, step_instance_id: stepId } = r.data;

      await eventually(
        async () => ((await storedBytes(fleet, jobId, stepId, hostId)) >= first.length ? true : undefined),
        60_000,
        'the first half stored',
      );
      await fleet.server.kill('SIGKILL');
      fleet.server = await fleet.server.restart();
      const agent = fleet.agents[0];
      assert.ok(agent);
      await agent.waitReady(2, 30_000);

      // Some of the second half stored, then the agent dies before the script ends: the agent's
      // restart kills the script, so the log ends where the agent stopped reading, but it holds
      // every byte read before that once and in order, whatever the server had acknowledged.
      const atKill = await eventually(
        async () => {
          const n = await storedBytes(fleet, jobId, stepId, hostId);
          return n > first.length ? n : undefined;
        },
        60_000,
        'the second half started',
      );
      await agent.kill('SIGKILL');
      fleet.agents[0] = await agent.restart();

      const st = await waitFinished(fleet, jobId, 60_000);
      assert.equal(st.finished, true);
      const log = (await hostLog(fleet, jobId, stepId, hostId)) ?? '';
      assert.ok(log.length >= atKill, `${log.length} bytes stored, ${atKill} before the agent died`);
      assert.ok(all.startsWith(log), 'the stored log is the output, byte for byte');
      assert.equal(await storedBytes(fleet, jobId, stepId, hostId), log.length);
    });

    test('output faster than its commits is stored and fingerprinted exactly, in memory used again', async () => {
      const fleet = await startFleet(engine, 1, { args: ['--log-cap-bytes', String(64 * 1024 * 1024)] });
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const count = 6_000_000;
      const expected = lines(1, count);
      assert.ok(expected.length > 40 * 1024 * 1024);
      // Digits in every line: the head is normalised, so each set's fingerprint is a hash of its own.
      const want = fingerprintsOf(Buffer.from(expected), { ip: '', hostname: '' });
      // Twice: the second job's output lands in the memory the first one's was held in.
      for (let i = 0; i < 2; i++) {
        const { jobId, stepId } = await finishedJob(fleet, hostId, `seq 1 ${count}\n`, 120_000);
        const log = await hostLog(fleet, jobId, stepId, hostId);
        assert.equal(log?.length, expected.length);
        assert.ok(log === expected, 'the stored log is the output, byte for byte');
        for (const normalisers of ['', 'numbers']) {
          const groups = await get<{ groups: { group_id: string }[] }>(
            fleet.server.url,
            'get_step_output_groups',
            { ...fleet.scope, job_instance_id: jobId, step_instance_id: stepId, normalisers, length: 1 },
            fleet.creds,
          );
          assert.equal(groups.result, true, groups.message);
          const [group] = groups.data.groups;
          assert.equal(
            group?.group_id.split(':').at(-1),
            want[normalisers],
            `fingerprint with "${normalisers}"`,
          );
        }
      }
    });

    test('a whole log is sent while it is read: a reader gone half way stops only its own reply', async () => {
      const fleet = await startFleet(engine, 1, { args: ['--log-cap-bytes', String(32 * 1024 * 1024)] });
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const count = 2_000_000;
      const expected = lines(1, count);
      const { jobId, stepId } = await finishedJob(fleet, hostId, `seq 1 ${count}\n`, 60_000);
      const url = getUrl(
        fleet.server.url,
        'get_job_instance_ip_log',
        logParams(fleet, jobId, stepId, hostId),
        fleet.creds,
      );
      for (let i = 0; i < 3; i++) {
        const head = await new Promise<{ headers: http.IncomingHttpHeaders; received: number }>(
          (resolve, reject) => {
            http
              .get(url, (res) => {
                let received = 0;
                res.on('data', (d: Buffer) => {
                  received += d.length;
                  // Gone after 2 MiB of about 17: the server is still reading the log.
                  if (received >= 2 * 1024 * 1024) {
                    res.destroy();
                    resolve({ headers: res.headers, received });
                  }
                });
                res.on('end', () => reject(new Error('the whole reply came before the reader left')));
              })
              .on('error', reject);
          },
        );
        assert.equal(head.headers['transfer-encoding'], 'chunked');
        assert.equal(head.headers['content-length'], undefined);
      }
      const log = await hostLog(fleet, jobId, stepId, hostId);
      assert.equal(log?.length, expected.length);
      assert.ok(log === expected, 'the log reads back whole after the readers that left');
      // In windows of 512 KiB, as the console pages: each reply is one piece, sent with its
      // length; the second pass reads the rows the first one inflated, and reads the same.
      const windowUrl = (offset: number, length: number) =>
        getUrl(
          fleet.server.url,
          'get_job_instance_ip_log',
          { ...logParams(fleet, jobId, stepId, hostId), log_offset: offset, log_length: length },
          fleet.creds,
        );
      for (let pass = 0; pass < 2; pass++) {
        const parts: string[] = [];
        for (let offset = 0; ;) {
          const r = await replyOf(windowUrl(offset, 512 * 1024));
          assert.equal(r.headers['content-length'], String(r.body.length));
          const page = Window.parse(JSON.parse(r.body.toString())).data;
          parts.push(page.log_content ?? '');
          if (page.log_complete) break;
          offset = page.log_next_offset;
        }
        assert.ok(parts.join('') === expected, `pass ${pass}: the windows join into the log`);
      }
      const whole = await replyOf(windowUrl(0, 16 * 1024 * 1024));
      assert.equal(whole.headers['transfer-encoding'], 'chunked');
      assert.ok(Window.parse(JSON.parse(whole.body.toString())).data.log_content === expected);
      // HEAD answers as GET without the body, a window with its length; on one kept-alive
      // connection, so that a body sent after a HEAD would spoil the GET after it.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const small = windowUrl(0, 512 * 1024);
      const smallLength = String((await replyOf(small)).body.length);
      for (const [url, length] of [
        [small, smallLength],
        [windowUrl(0, 16 * 1024 * 1024), undefined],
      ] as const) {
        const head = await replyOf(url, { method: 'HEAD', agent });
        assert.equal(head.body.length, 0);
        assert.match(head.headers['content-type'] ?? '', /^application\/json/);
        if (length) assert.equal(head.headers['content-length'], length);
        const after = await replyOf(windowUrl(0, 4), { agent });
        assert.equal(Window.parse(JSON.parse(after.body.toString())).data.log_content, '1\n2\n');
      }
      agent.destroy();
      assert.doesNotMatch(fleet.server.output(), /reply cut short/);
    });

    test('a large log with quotes, backslashes, control characters and non-ASCII text reads back exactly', async () => {
      const fleet = await startFleet(engine, 1);
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const line = (i: number) => `line ${i} "q" \\ back\ttab \u001b[31mred\u001b[0m ü ✓ 😀\n`;
      const expected = Array.from({ length: 30_000 }, (_, i) => line(i + 1)).join('');
      assert.ok(Buffer.byteLength(expected) > 1024 * 1024);
      const printf = `printf 'line %d "q" \\\\ back\\ttab \\033[31mred\\033[0m ü ✓ 😀\\n' "$i"`;
      for (const [script, want] of [
        [`for i in $(seq 1 30000); do ${printf}; done`, expected],
        // Not UTF-8: the bad byte reads back as U+FFFD, as for any log.
        [`for i in $(seq 1 30000); do ${printf}; done; printf 'bad \\377\\n'`, `${expected}bad \ufffd\n`],
      ] as const) {
        const { jobId, stepId } = await finishedJob(fleet, hostId, script, 60_000);
        const log = await hostLog(fleet, jobId, stepId, hostId);
        assert.equal(log?.length, want.length);
        assert.ok(log === want, 'the log reads back exactly');
        const batch = await post<{ script_task_logs: { log_content: string | null }[] }>(
          fleet.server.url,
          'batch_get_job_instance_ip_log',
          {
            ...fleet.scope,
            job_instance_id: jobId,
            step_instance_id: stepId,
            host_id_list: [hostId],
          },
          fleet.creds,
        );
        assert.ok(batch.data.script_task_logs[0]?.log_content === want, 'a batch reads it back exactly');
      }
    });
  });
}
