/**
 * The agent's connection loop against real `jobfleet serve` processes: it gets to ready,
 * comes back with backoff after the server restarts, and registers again when a server no
 * longer knows its token. Against bare WebSocket servers: one that never welcomes, and one that
 * welcomes and drops every connection; against a port that refuses connections; and against two
 * of them as a list, the agent going back to the one it started at.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { Agent } from '../src/agent.js';
import type { HostFacts } from '@jobfleet/protocol';
import type { AgentOptions, AgentState } from '../src/agent.js';
import { TaskRunner } from '../src/task-runner.js';
import type * as Processes from '../../server/dist/test/helpers/processes.js';
import { tempStateDir } from './helpers/os-state.js';

// The server's process helpers are compiled with the server's tests; this file runs from
// agent/dist/test, so the path is resolved from the repository root at run time.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const processes = (await import(
  pathToFileURL(path.join(repoRoot, 'server/dist/test/helpers/processes.js')).href
)) as typeof Processes;

const stateDir = tempStateDir();
const dataDirs: string[] = [];
let agent: Agent | undefined;

after(async () => {
  await agent?.stop();
  await processes.stopAll();
  for (const d of [stateDir, ...dataDirs]) fs.rmSync(d, { recursive: true, force: true });
});

function identity(): { token: string; hostId: number } {
  return JSON.parse(fs.readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as {
    token: string;
    hostId: number;
  };
}

const HOST: HostFacts = {
  ip: '127.0.0.9',
  ipv6: '',
  cloudId: 0,
  hostname: 'agent-loop-test',
  osType: 'linux',
};

/** A port nothing listens on: a connection to it is refused at once. */
async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

/** What a bare WebSocket server says to make an agent ready. */
const WELCOME = JSON.stringify({
  v: 1,
  type: 'welcome',
  hostId: 1,
  heartbeatIntervalMs: 1000,
  stored: {},
  forget: [],
});

/**
 * An agent with the first one's stored identity, in a state directory of its own, for a bare
 * WebSocket server (or a port nothing listens on).
 */
function agentWithStoredIdentity(
  server: WebSocketServer | number | string[],
  opts: Pick<
    AgentOptions,
    'backoffBaseMs' | 'backoffCapMs' | 'welcomeTimeoutMs' | 'stableConnectionMs' | 'returnHomeMs' | 'log'
  >,
): Agent {
  const dir = tempStateDir();
  dataDirs.push(dir);
  fs.copyFileSync(path.join(stateDir, 'identity.json'), path.join(dir, 'identity.json'));
  const port = (s: WebSocketServer | number) =>
    typeof s === 'number' ? s : (s.address() as AddressInfo).port;
  return new Agent({
    serverUrl: Array.isArray(server) ? server : `http://127.0.0.1:${port(server)}`,
    bootstrapToken: 'unused: the identity is stored',
    host: HOST,
    stateDir: dir,
    ...opts,
    createRunner: (reports) => new TaskRunner(dir, reports),
  });
}

/** Starts one for `port`; `attemptsWithin` waits until it made `n` connection attempts, or `ms` passed. */
function startCounted(
  port: number,
  opts: Parameters<typeof agentWithStoredIdentity>[1],
): { agent: Agent; attemptsWithin(n: number, ms: number): Promise<number> } {
  const agent = agentWithStoredIdentity(port, opts);
  let attempts = 0;
  agent.on('state', (s: AgentState) => {
    if (s === 'connecting') attempts++;
  });
  agent.start();
  return {
    agent,
    async attemptsWithin(n, ms) {
      const deadline = Date.now() + ms;
      while (attempts < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return attempts;
    },
  };
}

describe('Agent connection loop against a real server', () => {
  const states: AgentState[] = [];
  let server: Processes.ServerProcess;

  it('registers, connects and reaches ready', async () => {
    server = await processes.startServer();
    dataDirs.push(server.dataDir);
    agent = new Agent({
      serverUrl: server.url,
      bootstrapToken: server.bootstrapToken,
      host: HOST,
      stateDir,
      backoffBaseMs: 50,
      backoffCapMs: 400,
      createRunner: (reports) => new TaskRunner(stateDir, reports),
    });
    agent.on('state', (s: AgentState) => states.push(s));
    agent.start();
    await agent.waitFor('ready');
    assert.deepEqual(states, ['registering', 'connecting', 'greeting', 'ready']);
    assert.equal(agent.hostId, identity().hostId);
  });

  it('backs off while the server is down and reconnects with the same token once it is back', async () => {
    const a = agent as Agent;
    const before = identity();
    states.length = 0;
    await server.kill();
    await a.waitFor('backoff');
    server = await server.restart();
    await a.waitFor('ready', 20_000);
    assert.equal(states[0], 'backoff');
    assert.ok(!states.includes('registering'), `states: ${states.join(' ')}`);
    assert.deepEqual(identity(), before);
    assert.equal(a.hostId, before.hostId);
  });

  it('leaves a server that completes the handshake but never welcomes it', async () => {
    const silent = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(silent, 'listening');
    let connections = 0;
    silent.on('connection', () => connections++);
    const waiting = agentWithStoredIdentity(silent, {
      backoffBaseMs: 50,
      backoffCapMs: 100,
      welcomeTimeoutMs: 300,
    });
    waiting.start();
    try {
      const deadline = Date.now() + 10_000;
      while (connections < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(connections >= 2, 'the agent gave up on the silent server and connected again');
    } finally {
      await waiting.stop();
      silent.close();
    }
  });

  it('backs off from a server that welcomes and drops each connection, and starts over after one that held', async () => {
    const flapping = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(flapping, 'listening');
    const connectedAt: number[] = [];
    let holdNext = false;
    let heldEnded = 0;
    flapping.on('connection', (ws) => {
      connectedAt.push(Date.now());
      ws.send(WELCOME);
      if (!holdNext) return ws.close();
      holdNext = false;
      setTimeout(() => {
        heldEnded = Date.now();
        ws.close();
      }, 600);
    });
    const flapper = agentWithStoredIdentity(flapping, {
      backoffBaseMs: 20,
      backoffCapMs: 2000,
      stableConnectionMs: 400,
    });
    flapper.start();
    try {
      // Every connection dropped right after its welcome: the waits grow (20 ms * 2^n, up to
      // 2 s). Had each welcome started the count over, they would stay within 0-20 ms: dozens
      // of connections a second.
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(connectedAt.length <= 15, `connections in the first second: ${connectedAt.length}`);
      // A connection that holds past stableConnectionMs: after it, the shortest waits again.
      holdNext = true;
      const deadline = Date.now() + 15_000;
      const heldIndex = connectedAt.length;
      while (connectedAt.length < heldIndex + 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(heldEnded > 0 && connectedAt.length >= heldIndex + 3, `connections: ${connectedAt.length}`);
      const back = (connectedAt[heldIndex + 2] ?? 0) - heldEnded;
      assert.ok(back < 500, `two reconnects took ${back} ms after the connection that held`);
    } finally {
      await flapper.stop();
      flapping.close();
    }
  });

  it('retries a refused address within 2 s whatever its backoff, says so once, and connects once it listens', async () => {
    const port = await freePort();
    const logged: string[] = [];
    // Any other failure waits up to a minute here: three waits under 10 s would be luck.
    const { agent: refused, attemptsWithin } = startCounted(port, {
      backoffBaseMs: 60_000,
      backoffCapMs: 60_000,
      log: (_level, msg) => logged.push(msg),
    });
    let back: WebSocketServer | undefined;
    try {
      const attempts = await attemptsWithin(4, 10_000);
      assert.ok(attempts >= 4, `attempts in 10 s: ${attempts}`);
      assert.equal(logged.filter((m) => m.includes('ECONNREFUSED')).length, 1, logged.join('\n'));
      back = new WebSocketServer({ port, host: '127.0.0.1' });
      back.on('connection', (ws) => ws.send(WELCOME));
      await once(back, 'listening');
      await refused.waitFor('ready', 10_000);
    } finally {
      await refused.stop();
      back?.close();
    }
  });

  it('does not grow its backoff with refusals: a server that is back and answers 503 is retried at the short waits', async () => {
    const port = await freePort();
    const { agent: refused, attemptsWithin } = startCounted(port, {
      backoffBaseMs: 500,
      backoffCapMs: 60_000,
    });
    let back: WebSocketServer | undefined;
    try {
      // Not counted, the refusals leave the waits after three 503s at 0.5, 1 and 2 s at most
      // (after a last refusal's 2 s); counted, five of them would make those 16, 32 and 60 s.
      await attemptsWithin(5, 20_000);
      let answered = 0;
      back = new WebSocketServer({
        port,
        host: '127.0.0.1',
        verifyClient: (_info, done) => done(answered++ >= 3, 503, 'busy'),
      });
      back.on('connection', (ws) => ws.send(WELCOME));
      await once(back, 'listening');
      await refused.waitFor('ready', 10_000);
      assert.equal(answered, 4);
    } finally {
      await refused.stop();
      back?.close();
    }
  });

  it('goes back to the entry of its list it started at once that one answers /healthz again', async () => {
    /** A bare server that welcomes agents, with a `/healthz` and a switch for both. */
    const bare = async () => {
      const state = {
        up: true,
        checks: 0,
        url: '',
        sockets: new Set<WebSocket>(),
        closes: [] as number[],
      };
      const httpServer = http.createServer((req, res) => {
        if (req.url === '/healthz') state.checks++;
        res.writeHead(state.up && req.url === '/healthz' ? 200 : 503).end();
      });
      const wss = new WebSocketServer({
        server: httpServer,
        verifyClient: (_info, done) => done(state.up, 503, 'down'),
      });
      wss.on('connection', (ws) => {
        state.sockets.add(ws);
        ws.on('close', (code) => {
          state.sockets.delete(ws);
          state.closes.push(code);
        });
        ws.send(WELCOME);
      });
      httpServer.listen(0, '127.0.0.1');
      await once(httpServer, 'listening');
      state.url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
      return { state, close: () => httpServer.close() };
    };
    const servers = [await bare(), await bare()];
    const listed = agentWithStoredIdentity(
      servers.map((s) => s.state.url),
      { backoffBaseMs: 50, backoffCapMs: 100, returnHomeMs: 100 },
    );
    listed.start();
    try {
      await listed.waitFor('ready', 10_000);
      const home = servers.find((s) => s.state.sockets.size === 1)?.state;
      const other = servers.find((s) => s.state !== home)?.state;
      assert.ok(home && other, 'connected to one of the two');
      // Home goes down (its /healthz answers 503, as a draining server's does): the agent moves on and stays.
      home.up = false;
      for (const ws of home.sockets) ws.terminate();
      const deadline = Date.now() + 10_000;
      while (other.sockets.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(other.sockets.size, 1, 'moved to the other entry');
      home.checks = 0;
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(other.sockets.size, 1, 'still on the other entry while home answers 503');
      // Waits of 50-150, 100-300, 200-600, 400-1200 ms: 2 to 4 checks. Not doubled, about 15.
      assert.ok(home.checks >= 2 && home.checks <= 5, `checks of home in 1.5 s: ${home.checks}`);
      home.up = true;
      while (home.sockets.size === 0 && Date.now() < deadline + 10_000)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(home.sockets.size, 1, 'back on home');
      await listed.waitFor('ready', 5_000);
      assert.equal(other.sockets.size, 0);
      assert.deepEqual(other.closes, [1000], 'the other connection closed normally');
    } finally {
      await listed.stop();
      for (const s of servers) s.close();
    }
  });

  it('registers again when a server refuses its stored token', async () => {
    const a = agent as Agent;
    const before = identity();
    await server.kill();
    await a.waitFor('backoff');
    states.length = 0;
    const fresh = await processes.startServer({ port: server.port });
    dataDirs.push(fresh.dataDir);
    await a.waitFor('ready', 20_000);
    assert.ok(states.includes('registering'), `states: ${states.join(' ')}`);
    assert.notEqual(identity().token, before.token);
    assert.equal(a.hostId, identity().hostId);
    await a.stop();
    assert.equal(a.state, 'stopped');
  });
});
