/**
 * `task.report`: a task's start, output and result in one agent message. Driven by a hand-made
 * agent so the test decides exactly what goes over the wire: a combined report is recorded once
 * (a resend changes nothing), the separate messages of an older agent still work, and a report
 * survives a SIGKILL of the server both before the server read it and after it acknowledged it.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { BIZ, b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV, stopAll } from './helpers/processes.js';

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
