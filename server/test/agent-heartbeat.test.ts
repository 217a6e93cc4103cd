/**
 * Heartbeats and registrations at fleet scale, against a real server on every engine, with a
 * hand-driven WebSocket client standing in for an agent so that the test decides exactly what
 * goes on the wire:
 * - a server that says `pingHeartbeat` counts WebSocket pings as heartbeats: an agent that only
 *   pings stays normal past the heartbeat window, and goes abnormal once its pings stop;
 * - an agent of an older version, sending `heartbeat` messages and no pings, stays normal too;
 * - registrations arriving in a burst (they share commits) are all stored and each answered
 *   with its own host, and a server killed right after answering keeps every one of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { AGENT_LINK_PATH, AGENT_REGISTER_PATH, PROTOCOL_VERSION } from '@jobfleet/protocol';
import { ConfigError, loadConfig } from '../src/config.js';
import { admin, agentStatus as agentStatusOf, eventually } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

describe('heartbeat timings', () => {
  it('are refused at start when they only work in the other order', () => {
    const env = (e: Record<string, string>) => () => loadConfig({ env: e });
    const clashes: [Record<string, string>, RegExp][] = [
      [{ JOBFLEET_HEARTBEAT_INTERVAL_MS: '20000' }, /at least twice heartbeatIntervalMs/],
      [
        { JOBFLEET_CLUSTER_SELF_FENCE_MS: '10000', JOBFLEET_CLUSTER_DEAD_AFTER_MS: '10000' },
        /below clusterDeadAfterMs/,
      ],
      [{ JOBFLEET_CLUSTER_HEARTBEAT_MS: '6000' }, /below clusterSelfFenceMs/],
    ];
    for (const [e, message] of clashes)
      assert.throws(env(e), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    // The defaults, and a window of exactly two beats, start.
    loadConfig({});
    loadConfig({ env: { JOBFLEET_HEARTBEAT_INTERVAL_MS: '15000' } });
  });
});

interface Registered {
  hostId: number;
  agentId: string;
  token: string;
}

async function register(server: ServerProcess, ip: string): Promise<Registered> {
  const res = await fetch(new URL(AGENT_REGISTER_PATH, server.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      bootstrapToken: server.bootstrapToken,
      host: { ip, ipv6: '', cloudId: 0, hostname: `h-${ip}`, osType: 'linux' },
      bizId: 1,
    }),
  });
  const env = (await res.json()) as { result: boolean; message: string; data: Registered };
  assert.equal(env.result, true, env.message);
  return env.data;
}

/** Connects as the registered host and says hello; resolves with the socket and the welcome. */
async function connect(
  server: ServerProcess,
  ip: string,
  reg: Registered,
): Promise<{ ws: WebSocket; welcome: Record<string, unknown> }> {
  const url = new URL(AGENT_LINK_PATH, server.url);
  url.protocol = 'ws:';
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${reg.token}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const welcome = new Promise<Record<string, unknown>>((resolve) =>
    ws.once('message', (data: Buffer) =>
      resolve(JSON.parse(data.toString('utf8')) as Record<string, unknown>),
    ),
  );
  ws.send(
    JSON.stringify({
      v: PROTOCOL_VERSION,
      type: 'hello',
      agentVersion: 'test',
      host: { ip, ipv6: '', cloudId: 0, hostname: `h-${ip}`, osType: 'linux' },
      held: [],
    }),
  );
  return { ws, welcome: await welcome };
}

for (const engine of engines()) {
  describe(`agent heartbeats and registration bursts on ${engine}`, () => {
    let server: ServerProcess;

    const agentStatus = (hostId: number) => agentStatusOf(server, '1', hostId);

    /** Keeps `ws` beating (pings or messages) for longer than the server's 3 s window. */
    const beatThroughWindow = async (hostId: number, beat: () => void): Promise<void> => {
      const timer = setInterval(beat, 300);
      try {
        const until = Date.now() + 5000;
        while (Date.now() < until) {
          assert.equal(await agentStatus(hostId), 1, 'a beating agent stays normal');
          await new Promise((r) => setTimeout(r, 500));
        }
      } finally {
        clearInterval(timer);
      }
    };

    before(async () => {
      server = await startServer({ databaseUrl: await freshDatabase(engine) });
      const env = await admin(server.url, server.adminToken, 'POST', '/biz', { id: 1, name: 'one' });
      assert.equal(env.result, true, env.message);
    });

    it('counts pings as heartbeats: an agent that only pings stays normal, and goes abnormal when they stop', async () => {
      const ip = '127.0.0.2';
      const reg = await register(server, ip);
      const { ws, welcome } = await connect(server, ip, reg);
      try {
        assert.equal(welcome.type, 'welcome');
        assert.equal(welcome.pingHeartbeat, true);
        await eventually(async () => ((await agentStatus(reg.hostId)) === 1 ? true : undefined));
        const pongs = { n: 0 };
        ws.on('pong', () => pongs.n++);
        await beatThroughWindow(reg.hostId, () => ws.ping());
        assert.ok(pongs.n > 0, 'the server answers pings');
        // Silent now (the socket stays open): abnormal after the window.
        await eventually(
          async () => ((await agentStatus(reg.hostId)) === 0 ? true : undefined),
          15_000,
          'the silent agent to go abnormal',
        );
      } finally {
        ws.terminate();
      }
    });

    it('still takes heartbeat messages from agents that send them instead of pings', async () => {
      const ip = '127.0.0.3';
      const reg = await register(server, ip);
      const { ws } = await connect(server, ip, reg);
      try {
        await eventually(async () => ((await agentStatus(reg.hostId)) === 1 ? true : undefined));
        await beatThroughWindow(reg.hostId, () =>
          ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: 'heartbeat' })),
        );
      } finally {
        ws.terminate();
      }
    });

    it('stores every registration of a burst, answers each with its own host, and keeps them after kill -9', async () => {
      const ips = Array.from({ length: 200 }, (_, i) => `10.9.${Math.floor(i / 250)}.${(i % 250) + 1}`);
      const answers = await Promise.all(ips.map((ip) => register(server, ip)));
      assert.equal(new Set(answers.map((a) => a.hostId)).size, ips.length, 'one host per registration');
      assert.equal(new Set(answers.map((a) => a.agentId)).size, ips.length);
      await server.kill('SIGKILL');
      server = await server.restart();
      const env = await admin(server.url, server.adminToken, 'GET', '/hosts');
      const hosts = (env.data as { hosts: { bk_host_id: number; ip: string; bk_agent_id: string }[] }).hosts;
      for (const [i, ip] of ips.entries()) {
        const h = hosts.find((x) => x.ip === ip);
        assert.ok(h, `host ${ip} survived the kill`);
        assert.equal(h.bk_host_id, answers[i]?.hostId);
        assert.equal(h.bk_agent_id, answers[i]?.agentId);
      }
      // Each registration's audit entry was stored in its commit, once.
      const audit = await admin<{ entries: { target: string }[] }>(
        server.url,
        server.adminToken,
        'GET',
        '/audit?action=agent%20register&limit=1000',
      );
      assert.equal(audit.result, true, audit.message);
      const targets = audit.data.entries.map((e) => e.target);
      for (const a of answers)
        assert.equal(
          targets.filter((t) => t === `host:${a.hostId}`).length,
          1,
          `audit entry of host ${a.hostId}`,
        );
      // Each answered token works: the agent connects as its own host.
      const { ws, welcome } = await connect(server, ips[7]!, answers[7]!);
      ws.terminate();
      assert.equal(welcome.hostId, answers[7]?.hostId);
    });
  });
}
