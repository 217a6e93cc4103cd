/**
 * `task.report`: a task's start, output and result in one agent message. Driven by a hand-made
 * agent so the test decides exactly what goes over the wire: a combined report is recorded once
 * (a resend changes nothing), the separate messages of an older agent still work, and a report
 * survives a SIGKILL of the server both before the server read it and after it acknowledged it.
 *
 * A download's report carries its file reports too: the server logs them as it logs the same
 * `task.file` messages (hand-made agent), and a real agent sends a quick download as that one
 * message while a slow one still reports its progress live (its messages seen through a relay).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { eventually, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { BIZ, b64, hostIdsByIp, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { FileLogItem, Fleet } from './helpers/fleet.js';
import { startMessageRelay } from './helpers/message-relay.js';
import type { MessageRelay, RelayedMessage } from './helpers/message-relay.js';
import { RESTART_HEARTBEAT_ENV, startAgent, stopAll, tempDir } from './helpers/processes.js';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

interface Msg {
  type: string;
  key?: string;
  stored?: Record<string, number>;
  forget?: string[];
  combinedReports?: boolean;
  fileReports?: boolean;
  /** task.download */
  sources?: { label: string; files: { sourcePath: string; relPath: string; size: number }[] }[];
  targetDir?: string;
}

/** One agent, its WebSocket driven by the test; `connect` again after a server restart. */
class HandAgent {
  private ws: WebSocket | undefined;
  private beat: NodeJS.Timeout | undefined;
  private readonly seen: Msg[] = [];
  private waiters: (() => void)[] = [];
  welcome: Msg | undefined;
  hostId = 0;
  private token = '';
  readonly host = { ip: '127.0.0.9', ipv6: '', cloudId: 0, hostname: 'hand', osType: 'linux' };

  async register(fleet: Fleet): Promise<void> {
    const reg = await fetch(`${fleet.server.url}/agent/v1/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ bootstrapToken: fleet.server.bootstrapToken, host: this.host, bizId: BIZ }),
    });
    const body = (await reg.json()) as { data: { token: string; hostId: number } };
    this.token = body.data.token;
    this.hostId = body.data.hostId;
  }

  async connect(fleet: Fleet, held: { key: string; outputBytes: number; finished: boolean }[]): Promise<Msg> {
    this.close();
    this.seen.length = 0;
    const ws = new WebSocket(`${fleet.server.url.replace('http', 'ws')}/agent/v1/link`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    this.ws = ws;
    ws.on('message', (d: Buffer) => {
      this.seen.push(JSON.parse(d.toString()) as Msg);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.send({ type: 'hello', agentVersion: 'hand', host: this.host, held });
    this.welcome = await this.next((m) => m.type === 'welcome');
    this.beat = setInterval(() => this.send({ type: 'heartbeat' }), 300);
    return this.welcome;
  }

  send(msg: Record<string, unknown>): void {
    this.ws?.send(JSON.stringify({ v: 1, ...msg }));
  }

  /** The first message (seen so far or still to come) that matches. */
  async next(match: (m: Msg) => boolean, timeoutMs = 15_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.seen.find(match);
      if (hit) return hit;
      if (Date.now() > deadline)
        throw new Error(`no matching message; saw ${this.seen.map((m) => m.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  close(): void {
    clearInterval(this.beat);
    this.ws?.terminate();
    this.ws = undefined;
  }
}

function report(key: string, text: string): Record<string, unknown> {
  const now = Date.now();
  return {
    type: 'task.report',
    key,
    startTime: now - 5,
    output: { offset: 0, data: b64(text) },
    result: {
      outcome: 'exited',
      exitCode: 0,
      startTime: now - 5,
      endTime: now,
      outputBytes: Buffer.byteLength(text),
      droppedBytes: 0,
      message: '',
    },
  };
}

async function setUp(engine: Parameters<typeof startFleet>[0]) {
  const fleet = await startFleet(engine, 0, { env: RESTART_HEARTBEAT_ENV });
  const agent = new HandAgent();
  await agent.register(fleet);
  const welcome = await agent.connect(fleet, []);
  const r = await runScript(fleet, {
    script_content: b64('echo hi'),
    target_server: { host_id_list: [agent.hostId] },
  });
  assert.equal(r.result, true, r.message);
  const run = await agent.next((m) => m.type === 'task.run');
  return { fleet, agent, welcome, job: r.data, key: run.key ?? '' };
}

async function assertRecordedOnce(
  fleet: Fleet,
  agent: HandAgent,
  job: { job_instance_id: number; step_instance_id: number },
) {
  const st = await waitFinished(fleet, job.job_instance_id);
  assert.equal(st.job_instance.status, 3);
  assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9);
  assert.equal(await hostLog(fleet, job.job_instance_id, job.step_instance_id, agent.hostId), 'hi\n');
}

for (const engine of engines()) {
  describe(`combined task reports on ${engine}`, () => {
    test('one task.report is recorded once; a resend is acknowledged and changes nothing', async () => {
      const { fleet, agent, welcome, job, key } = await setUp(engine);
      assert.equal(welcome.combinedReports, true);
      agent.send(report(key, 'hi\n'));
      await agent.next((m) => m.type === 'task.recorded' && m.key === key);
      await assertRecordedOnce(fleet, agent, job);
      agent.send(report(key, 'hi\n'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await assertRecordedOnce(fleet, agent, job);
      agent.close();
    });

    test('an agent that sends started, output and finished separately still works', async () => {
      const { fleet, agent, job, key } = await setUp(engine);
      const r = report(key, 'hi\n');
      agent.send({ type: 'task.started', key, startTime: r.startTime });
      agent.send({ type: 'task.output', key, offset: 0, data: b64('hi\n') });
      agent.send({ type: 'task.finished', key, ...(r.result as object) });
      await agent.next((m) => m.type === 'task.recorded' && m.key === key);
      await assertRecordedOnce(fleet, agent, job);
      agent.close();
    });

    test('a report the server never read is resent after SIGKILL and recorded once', async () => {
      const { fleet, agent, job, key } = await setUp(engine);
      // Stopped, the server cannot read the report before it is killed.
      fleet.server.proc.kill('SIGSTOP');
      agent.send(report(key, 'hi\n'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await fleet.server.kill('SIGKILL');
      agent.close();
      fleet.server = await fleet.server.restart();
      const welcome = await agent.connect(fleet, [{ key, outputBytes: 3, finished: true }]);
      assert.deepEqual(welcome.forget, []);
      assert.equal(welcome.stored?.[key], 0);
      agent.send(report(key, 'hi\n'));
      await agent.next((m) => m.type === 'task.recorded' && m.key === key);
      await assertRecordedOnce(fleet, agent, job);
      agent.close();
    });

    test('an acknowledged report survives SIGKILL: the restarted server tells the agent to forget it', async () => {
      const { fleet, agent, job, key } = await setUp(engine);
      agent.send(report(key, 'hi\n'));
      await agent.next((m) => m.type === 'task.recorded' && m.key === key);
      await fleet.server.kill('SIGKILL');
      agent.close();
      fleet.server = await fleet.server.restart();
      const welcome = await agent.connect(fleet, [{ key, outputBytes: 3, finished: true }]);
      assert.deepEqual(welcome.forget, [key]);
      await assertRecordedOnce(fleet, agent, job);
      agent.close();
    });
  });
}

const SOURCE_IP = '127.0.0.2';
const TARGET_IP = '127.0.0.3';
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

for (const engine of engines()) {
  describe(`combined reports of downloads on ${engine}`, () => {
    let fleet: Fleet;
    let relay: MessageRelay;
    let targetRoot: string;
    let sourceId: number;
    let targetId: number;
    const hand = new HandAgent();

    before(async () => {
      fleet = await startFleet(engine, 1, { fileRoots: true });
      // The target reaches the server through the relay, which keeps what it says.
      relay = await startMessageRelay(fleet.server.url);
      targetRoot = tempDir(`root-${TARGET_IP}`);
      await startAgent({
        server: { url: relay.url, bootstrapToken: fleet.server.bootstrapToken },
        ip: TARGET_IP,
        biz: BIZ,
        env: { TEST_AGENT_IP: TARGET_IP, JOBFLEET_AGENT_FILE_ROOT: targetRoot },
      });
      fleet.hostIds = await hostIdsByIp(fleet.server.url, fleet.server.adminToken);
      sourceId = fleet.hostIds.get(SOURCE_IP) ?? 0;
      targetId = fleet.hostIds.get(TARGET_IP) ?? 0;
      await hand.register(fleet);
      await hand.connect(fleet, []);
    });
    after(async () => {
      hand.close();
      await relay.close();
    });

    const put = (rel: string, data: Buffer | string) => {
      const full = path.join(fleet.fileRoots.get(SOURCE_IP) ?? '', rel);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, data);
    };
    const transfer = async (file: string, targetPath: string, hostId: number, extra = {}) => {
      const r = await post<{ job_instance_id: number; step_instance_id: number }>(
        fleet.server.url,
        'fast_transfer_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_source_list: [
            { file_list: [file], server: { host_id_list: [sourceId] }, account: { alias: fleet.account } },
          ],
          file_target_path: targetPath,
          target_server: { host_id_list: [hostId] },
          ...extra,
        },
        fleet.creds,
      );
      assert.equal(r.result, true, r.message);
      return r.data;
    };
    const fileLogs = async (job: { job_instance_id: number; step_instance_id: number }, hostId: number) => {
      const log = await get<{ file_logs: FileLogItem[] | null }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        { ...fleet.scope, ...job, bk_host_id: hostId },
        fleet.creds,
      );
      return log.data.file_logs ?? [];
    };
    /** What the target said of the step's task, in order. */
    const targetSaid = (stepInstanceId: number): RelayedMessage[] =>
      relay.fromAgents.filter(
        (m) => m.key?.startsWith(`${stepInstanceId}:`) && m.key.endsWith(`:${targetId}`),
      );

    test('file reports in a task.report are logged as the same task.file messages are, before the result', async () => {
      assert.equal(hand.welcome?.fileReports, true);
      put('/data/hand.txt', 'hello, hand\n');
      /** One step to the hand agent, answered by `answer`; its file logs, read once it finished. */
      const logsOfStep = async (answer: (key: string, files: Record<string, unknown>[]) => void) => {
        const job = await transfer('/data/hand.txt', '/hand/', hand.hostId);
        const dl = await hand.next(
          (m) => m.type === 'task.download' && !!m.key?.startsWith(`${job.step_instance_id}:`),
        );
        const key = dl.key ?? '';
        const dir = (dl.targetDir ?? '').endsWith('/') ? dl.targetDir : `${dl.targetDir}/`;
        const files = (dl.sources ?? []).flatMap((src) =>
          src.files.map((f) => ({
            label: src.label,
            sourcePath: f.sourcePath,
            targetPath: `${dir}${f.relPath}`,
            size: f.size,
            message: '',
          })),
        );
        assert.equal(files.length, 1);
        answer(key, files);
        await hand.next((m) => m.type === 'task.recorded' && m.key === key);
        const st = await waitFinished(fleet, job.job_instance_id);
        assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9);
        // Read as soon as the step is seen finished: the logs were stored before its result.
        return (await fileLogs(job, hand.hostId))
          .map((l) => ({ ...l, log_content: l.log_content.replace(/^\[[^\]]*\] /, '') }))
          .sort((a, b) => a.mode - b.mode);
      };
      const result = () => {
        const now = Date.now();
        return {
          outcome: 'exited',
          exitCode: 0,
          startTime: now - 5,
          endTime: now,
          outputBytes: 0,
          droppedBytes: 0,
          message: '',
        };
      };
      const combined = await logsOfStep((key, files) =>
        hand.send({
          type: 'task.report',
          key,
          startTime: Date.now() - 5,
          files: files.map((f) => ({ ...f, status: 'finished', bytes: f.size, speed: 1000 })),
          result: result(),
        }),
      );
      const separate = await logsOfStep((key, files) => {
        hand.send({ type: 'task.started', key, startTime: Date.now() - 5 });
        for (const f of files)
          hand.send({ type: 'task.file', key, ...f, status: 'downloading', bytes: 0, speed: 0 });
        for (const f of files)
          hand.send({ type: 'task.file', key, ...f, status: 'finished', bytes: f.size, speed: 1000 });
        hand.send({ type: 'task.finished', key, ...result() });
      });
      assert.equal(combined.length, 2, JSON.stringify(combined));
      assert.deepEqual(combined, separate);
      assert.equal(combined[1]?.mode, 1);
      assert.equal(combined[1]?.status, 4);
      assert.equal(combined[1]?.dest_path, '/hand/hand.txt');
      assert.match(combined[1]?.log_content ?? '', /State: download success .*Progress: 100%/);
    });

    test('a quick download is reported in one task.report carrying its final file report', async () => {
      const data = crypto.randomBytes(4096);
      put('/data/quick.bin', data);
      const job = await transfer('/data/quick.bin', '/quick/', targetId);
      const st = await waitFinished(fleet, job.job_instance_id);
      assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9, JSON.stringify(st));
      assert.equal(sha(fs.readFileSync(path.join(targetRoot, 'quick/quick.bin'))), sha(data));
      const said = targetSaid(job.step_instance_id);
      // Not task.started, two task.file (downloading, finished) and task.finished: one message.
      assert.deepEqual(
        said.map((m) => m.type),
        ['task.report'],
        JSON.stringify(said),
      );
      assert.deepEqual(
        (said[0]?.files as { sourcePath: string; targetPath: string; status: string; bytes: number }[]).map(
          (f) => [f.sourcePath, f.targetPath, f.status, f.bytes],
        ),
        [['/data/quick.bin', '/quick/quick.bin', 'finished', 4096]],
      );
      // The file logs are those the separate messages left: the download's and the source's upload.
      const logs = await fileLogs(job, targetId);
      const download = logs.find((l) => l.mode === 1);
      assert.ok(download, JSON.stringify(logs));
      assert.equal(download.status, 4);
      assert.equal(download.src_ip.ip, SOURCE_IP);
      assert.equal(download.dest_ip?.ip, TARGET_IP);
      assert.equal(download.dest_path, '/quick/quick.bin');
      assert.match(
        download.log_content,
        /FileName: \/quick\/quick\.bin .*State: download success .*Progress: 100%/,
      );
      const upload = logs.find((l) => l.mode === 0);
      assert.equal(upload?.status, 4, JSON.stringify(logs));
      assert.equal(upload.src_ip.bk_host_id, sourceId);
      assert.match(upload.log_content, /State: upload success .*Progress: 100%/);
    });

    test('a slow download reports its progress live once it outlives the hold', async () => {
      const data = crypto.randomBytes(3 * 1024 * 1024);
      put('/data/slow.bin', data);
      // 1 MB/s: three seconds, a progress report about every second.
      const job = await transfer('/data/slow.bin', '/slow/', targetId, { download_speed_limit: 1 });
      // A status poll sees the download under way, its progress growing, before it ends.
      await eventually(
        async () => {
          const d = (await fileLogs(job, targetId)).find((l) => l.mode === 1);
          return d?.status === 3 && !/Progress: 0%/.test(d.log_content) ? true : undefined;
        },
        2_500,
        'a download log with progress while the download runs',
      );
      const st = await waitFinished(fleet, job.job_instance_id);
      assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9, JSON.stringify(st));
      assert.equal(sha(fs.readFileSync(path.join(targetRoot, 'slow/slow.bin'))), sha(data));
      const said = targetSaid(job.step_instance_id);
      const types = said.map((m) => `${m.type}${m.type === 'task.file' ? ` ${String(m.status)}` : ''}`);
      assert.equal(types[0], 'task.started', types.join(', '));
      const progress = said.filter(
        (m) => m.type === 'task.file' && m.status === 'downloading' && Number(m.bytes) > 0,
      );
      assert.ok(progress.length >= 1, types.join(', '));
      assert.equal(types.at(-2), 'task.file finished', types.join(', '));
      assert.equal(types.at(-1), 'task.finished', types.join(', '));
      const download = (await fileLogs(job, targetId)).find((l) => l.mode === 1);
      assert.equal(download?.status, 4);
      assert.match(download.log_content, /State: download success .*Progress: 100%/);
    });
  });
}
