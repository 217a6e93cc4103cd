/**
 * The agent link with real agent processes (each its own identity on 127.0.0.x) against a real
 * server on every engine: registration, refusal, token reuse, heartbeat loss and reconnection
 * after the server dies.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { admin, agentStatus as agentStatusOf, eventually } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { startAgent, startServer, stopAll } from './helpers/processes.js';
import type { AgentProcess, ServerProcess } from './helpers/processes.js';

interface HostView {
  bk_host_id: number;
  ip: string;
  hostname: string;
  bk_agent_id: string;
  bk_biz_id: number | null;
  agent_status: number;
  last_heartbeat: number | null;
}

const stopped = new Set<AgentProcess>();

after(async () => {
  // A stopped process cannot act on a signal until it runs again.
  for (const a of stopped) a.proc.kill('SIGCONT');
  await stopAll();
  await dropFreshDatabases();
});

function readyCount(agent: AgentProcess): number {
  return agent.output().split('"msg":"state ready"').length - 1;
}

for (const engine of engines()) {
  describe(`agent link on ${engine}`, () => {
    let server: ServerProcess;
    let agentA: AgentProcess;
    let agentB: AgentProcess;

    const hosts = async () =>
      ((await admin(server.url, server.adminToken, 'GET', '/hosts')).data as { hosts: HostView[] }).hosts;
    const hostByIp = async (ip: string) => (await hosts()).find((h) => h.ip === ip);
    const agentStatus = (hostId: number) => agentStatusOf(server, '2', hostId);
    const statusBecomes = (hostId: number, status: number, timeoutMs = 15_000) =>
      eventually(
        async () => ((await agentStatus(hostId)) === status ? true : undefined),
        timeoutMs,
        `agent status of host ${hostId} to be ${status}`,
      );

    before(async () => {
      server = await startServer({ databaseUrl: await freshDatabase(engine) });
      const env = await admin(server.url, server.adminToken, 'POST', '/biz', { id: 2, name: 'two' });
      assert.equal(env.result, true, env.message);
    });

    it('registers agents with the bootstrap token, placing them in the business asked for', async () => {
      agentA = await startAgent({ server, ip: '127.0.0.2', biz: 2 });
      agentB = await startAgent({ server, ip: '127.0.0.3' });
      const a = await hostByIp('127.0.0.2');
      const b = await hostByIp('127.0.0.3');
      assert.ok(a && b);
      assert.notEqual(a.bk_host_id, b.bk_host_id);
      assert.equal(a.bk_biz_id, 2);
      assert.equal(a.hostname, 'host-127.0.0.2');
      assert.equal(b.bk_biz_id, null, 'no --biz: the host waits to be assigned');
      assert.notEqual(a.bk_agent_id, '');
      assert.notEqual(a.bk_agent_id, b.bk_agent_id);

      // The agent keeps its own token, not the bootstrap token, for later connections.
      const identity = JSON.parse(fs.readFileSync(path.join(agentA.stateDir, 'identity.json'), 'utf8')) as {
        hostId: number;
        agentId: string;
        token: string;
      };
      assert.equal(identity.hostId, a.bk_host_id);
      assert.equal(identity.agentId, a.bk_agent_id);
      assert.ok(!identity.token.includes(server.bootstrapToken));

      assert.equal(await agentStatus(a.bk_host_id), 1);
      const assigned = await admin(server.url, server.adminToken, 'POST', `/hosts/${b.bk_host_id}/biz`, {
        bk_biz_id: 2,
      });
      assert.equal(assigned.result, true);
      assert.equal(await agentStatus(b.bk_host_id), 1);
    });

    it('refuses a wrong bootstrap token: the agent keeps retrying, never ready, and no host appears', async () => {
      const rogue = await startAgent({
        server: { url: server.url, bootstrapToken: 'not-the-bootstrap-token' },
        ip: '127.0.0.4',
        waitReady: false,
      });
      await eventually(
        async () => (rogue.output().split('registration failed').length - 1 >= 3 ? true : undefined),
        20_000,
        'three refused registrations',
      );
      assert.match(rogue.output(), /App authentication failed/);
      assert.equal(readyCount(rogue), 0);
      assert.equal(rogue.proc.exitCode, null, 'the agent is still running, retrying');
      assert.equal(await hostByIp('127.0.0.4'), undefined);
      await rogue.kill();
    });

    it('reuses the stored agent token after a restart: same host, same agent id', async () => {
      const before = await hostByIp('127.0.0.2');
      await agentA.kill();
      agentA = await agentA.restart();
      assert.doesNotMatch(agentA.output(), /"msg":"registered"/, 'no second registration');
      const afterRestart = await hostByIp('127.0.0.2');
      assert.equal(afterRestart?.bk_host_id, before?.bk_host_id);
      assert.equal(afterRestart?.bk_agent_id, before?.bk_agent_id);
      await statusBecomes(before?.bk_host_id ?? -1, 1);
      assert.equal((await hosts()).filter((h) => h.ip === '127.0.0.2').length, 1);
    });

    it('gives a re-installed agent (no stored token) the same host record and a new agent id', async () => {
      const before = await hostByIp('127.0.0.3');
      await agentB.kill();
      fs.rmSync(path.join(agentB.stateDir, 'identity.json'));
      agentB = await agentB.restart();
      assert.match(agentB.output(), /"msg":"registered"/);
      const afterReinstall = await hostByIp('127.0.0.3');
      assert.equal(afterReinstall?.bk_host_id, before?.bk_host_id);
      assert.notEqual(afterReinstall?.bk_agent_id, before?.bk_agent_id);
      assert.equal(afterReinstall?.bk_biz_id, 2, 'the host stays in its business');
    });

    it("stores a connected agent's heartbeat once per half timeout window, not on every beat", async () => {
      // The test servers take a beat every 300 ms and time out after 3 s: 1.5 s between writes.
      const seen = new Set<number>();
      const until = Date.now() + 3_400;
      while (Date.now() < until) {
        const h = await hostByIp('127.0.0.2');
        assert.equal(h?.agent_status, 1);
        if (typeof h?.last_heartbeat === 'number') seen.add(h.last_heartbeat);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(seen.size >= 2, `the heartbeat is still stored (${seen.size} values seen)`);
      assert.ok(seen.size <= 4, `${seen.size} stored heartbeats in 3.4 s of beats every 300 ms`);
    });

    it('marks a silent agent abnormal after the heartbeat window, and normal once it is back', async () => {
      const hostId = (await hostByIp('127.0.0.2'))?.bk_host_id ?? -1;
      assert.equal(await agentStatus(hostId), 1);
      const readyBefore = readyCount(agentA);
      agentA.proc.kill('SIGSTOP');
      stopped.add(agentA);
      try {
        await statusBecomes(hostId, 0);
        // The store is written just after the hub lets go of the connection.
        await eventually(
          async () => ((await hostByIp('127.0.0.2'))?.agent_status === 0 ? true : undefined),
          10_000,
          'the store to record the agent as abnormal',
        );
        assert.equal(
          await agentStatus((await hostByIp('127.0.0.3'))?.bk_host_id ?? -1),
          1,
          'the other agent is unaffected',
        );
      } finally {
        agentA.proc.kill('SIGCONT');
        stopped.delete(agentA);
      }
      await agentA.waitReady(readyBefore + 1, 30_000);
      await statusBecomes(hostId, 1);
    });

    it('reconnects every agent after the server is killed and restarted on the same port', async () => {
      const counts = [readyCount(agentA), readyCount(agentB)];
      await server.kill('SIGKILL');
      server = await server.restart();
      await Promise.all([
        agentA.waitReady((counts[0] ?? 0) + 1, 45_000),
        agentB.waitReady((counts[1] ?? 0) + 1, 45_000),
      ]);
      for (const ip of ['127.0.0.2', '127.0.0.3']) {
        const host = await hostByIp(ip);
        assert.ok(host, ip);
        await statusBecomes(host.bk_host_id, 1);
      }
    });
  });
}
