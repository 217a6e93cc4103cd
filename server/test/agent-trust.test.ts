/**
 * Agent trust through real agents: a revoked agent is cut off and cannot register again until
 * readmitted; an agent reporting another identity than it registered with is refused until an
 * admin moves the host; an agent revoked through another server is cut off too; the bootstrap
 * token rotates without touching registered agents.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { AGENT_LINK_PATH, AGENT_REGISTER_PATH } from '@jobfleet/protocol';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import { Store } from '../src/store/store.js';
import { admin, eventually } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { b64, runScript, startFleet, waitFinished, stopFleets } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { adminCli } from './helpers/admin-cli.js';
import { startAgent } from './helpers/processes.js';
import type { AgentProcess } from './helpers/processes.js';

for (const engine of engines()) {
  describe(`agent trust on ${engine}`, () => {
    let fleet: Fleet;
    let agentA: AgentProcess;
    let agentB: AgentProcess;
    let hostA: number;
    let hostB: number;

    before(async () => {
      fleet = await startFleet(engine, 2);
      [agentA, agentB] = fleet.agents as [AgentProcess, AgentProcess];
      hostA = fleet.hostIds.get('127.0.0.2') ?? 0;
      hostB = fleet.hostIds.get('127.0.0.3') ?? 0;
    });
    after(stopFleets);

    const cli = (...args: string[]) => adminCli(fleet.server, ...args);
    const register = async (token: string, ip: string) => {
      const res = await fetch(new URL(AGENT_REGISTER_PATH, fleet.server.url), {
        method: 'POST',
        body: JSON.stringify({
          bootstrapToken: token,
          host: { ip, cloudId: 0, hostname: `host-${ip}`, osType: 'linux' },
        }),
      });
      return (await res.json()) as Envelope<{ hostId: number }>;
    };
    /** The HTTP status a WebSocket upgrade with this agent token gets (101 when accepted). */
    const linkStatus = (token: string) =>
      new Promise<number>((resolve) => {
        const url = new URL(AGENT_LINK_PATH, fleet.server.url);
        url.protocol = 'ws:';
        const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          resolve(101);
          ws.terminate();
        });
        ws.on('error', () => resolve(0));
      });
    const storedToken = (agent: AgentProcess) =>
      (JSON.parse(fs.readFileSync(path.join(agent.stateDir, 'identity.json'), 'utf8')) as { token: string })
        .token;
    const runOn = async (hostId: number) => {
      const r = await runScript(fleet, {
        script_content: b64('echo ok'),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list[0]?.step_ip_result_list));
      return st;
    };

    test('a revoked agent is cut off, its token refused, and it cannot register again until readmitted', async () => {
      const token = storedToken(agentA);
      const revoked = await cli('agent', 'revoke', String(hostA));
      assert.equal(revoked.bk_host_id, hostA);
      assert.equal(typeof revoked.agent_revoked_at, 'number');

      await eventually(
        async () =>
          /server closed the connection: agent revoked by an admin/.test(agentA.output()) ? true : undefined,
        15_000,
        'the revoked agent to be disconnected',
      );
      assert.equal(await linkStatus(token), 401, 'the revoked token no longer opens a link');
      await eventually(
        async () =>
          /registration failed: The agent of host \d+ \(0:127\.0\.0\.2\) was revoked/.test(agentA.output())
            ? true
            : undefined,
        20_000,
        'the agent to try registering again and be refused',
      );
      const again = await register(fleet.server.bootstrapToken, '127.0.0.2');
      assert.equal(again.code, ERROR_CATALOGUE.AGENT_REVOKED.code);
      assert.match(again.message, /jobfleet admin agent readmit/);
      const st = await runOn(hostB);
      assert.equal(st.job_instance.status, 3, 'the other agent is untouched');

      await cli('agent', 'readmit', String(hostA));
      await agentA.kill();
      agentA = await agentA.restart();
      const back = await runOn(hostA);
      assert.equal(back.job_instance.status, 3, 'the readmitted host runs jobs again');
    });

    test('an agent reporting another identity is refused until an admin moves the host', async () => {
      await agentB.kill();
      const moved = await startAgent({
        server: fleet.server,
        ip: '127.0.0.9',
        biz: 2,
        stateDir: agentB.stateDir,
        waitReady: false,
      });
      await eventually(
        async () =>
          /identity mismatch: registered 0:127\.0\.0\.3, reported 0:127\.0\.0\.9/.test(moved.output())
            ? true
            : undefined,
        15_000,
        'the agent to be refused',
      );
      assert.match(fleet.server.output(), /reported identity differs from the registered one/);
      assert.doesNotMatch(moved.output(), /"msg":"state ready"/);

      const changed = await cli('host-identity', String(hostB), '127.0.0.9');
      assert.equal(changed.ip, '127.0.0.9');
      const taken = await admin(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        `/hosts/${hostB}/identity`,
        {
          ip: '127.0.0.2',
        },
      );
      assert.equal(taken.code, ERROR_CATALOGUE.CONFLICT.code, 'another host already has that identity');
      await moved.kill();
      agentB = await moved.restart();
      // It was started without waiting for ready; the job below needs it connected.
      await agentB.waitReady();
      assert.doesNotMatch(agentB.output(), /"msg":"registered"/, 'the same agent token, no new registration');
      const st = await runOn(hostB);
      assert.equal(st.job_instance.status, 3);
    });

    test('a registration whose facts are not addresses is refused and stores no host', async () => {
      const bad = [
        { ip: '../../x' },
        { ip: '10.0.0.300' },
        { ip: '10.1.1.1', ipv6: 'fd00::zz' },
        { ip: '10.1.1.2', hostname: 'a\nb' },
      ];
      for (const facts of bad) {
        const res = await fetch(new URL(AGENT_REGISTER_PATH, fleet.server.url), {
          method: 'POST',
          body: JSON.stringify({
            bootstrapToken: fleet.server.bootstrapToken,
            host: { cloudId: 0, hostname: 'h', osType: 'linux', ...facts },
          }),
        });
        const env = (await res.json()) as Envelope<unknown>;
        assert.equal(env.result, false, JSON.stringify(facts));
        assert.match(env.message, /host\.(ip|ipv6|hostname)/, env.message);
      }
      const store = await Store.open({
        databaseUrl: fleet.server.databaseUrl,
        dataDir: fleet.server.dataDir,
      });
      try {
        const found = await store.inventory.getHostsByCloudIps(bad.map((f) => ({ cloudId: 0, ip: f.ip })));
        assert.deepEqual(found, []);
      } finally {
        await store.close();
      }
    });

    test('an agent revoked through another server (only the database changed) is cut off', async () => {
      // What another server of a cluster does on `agent revoke`: this server learns it from the store.
      const other = await Store.open({
        databaseUrl: fleet.server.databaseUrl,
        dataDir: fleet.server.dataDir,
      });
      try {
        assert.equal((await other.agentTrust.revokedAmong([hostA, hostB])).length, 0);
        await other.agentTrust.revoke(hostB);
        assert.deepEqual(await other.agentTrust.revokedAmong([hostA, hostB, 999_999]), [hostB]);
      } finally {
        await other.close();
      }
      await eventually(
        async () =>
          /server closed the connection: agent revoked or host removed by an admin/.test(agentB.output())
            ? true
            : undefined,
        20_000,
        'the agent revoked elsewhere to be disconnected',
      );
    });

    test('the bootstrap token rotates for new agents without touching registered ones', async () => {
      const rotated = await cli('agent', 'rotate-bootstrap-token');
      const token = String(rotated.token);
      assert.ok(token.length >= 16 && token !== fleet.server.bootstrapToken);
      const old = await register(fleet.server.bootstrapToken, '127.0.0.20');
      assert.equal(old.code, ERROR_CATALOGUE.APP_AUTH_FAILED.code, 'the old token is refused');

      const fresh = await startAgent({
        server: { url: fleet.server.url, bootstrapToken: token },
        ip: '127.0.0.21',
        biz: 2,
      });
      assert.match(fresh.output(), /"msg":"registered"/);

      await agentA.kill();
      agentA = await agentA.restart();
      assert.doesNotMatch(
        agentA.output(),
        /"msg":"registered"/,
        'a registered agent connects with its own token',
      );

      const chosen = await admin<{ token: string }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/agents/bootstrap-token',
        { token: 'chosen-bootstrap-token-0001' },
      );
      assert.equal(chosen.data.token, 'chosen-bootstrap-token-0001');
      assert.equal((await register(token, '127.0.0.22')).code, ERROR_CATALOGUE.APP_AUTH_FAILED.code);
      const server = await fleet.server.kill().then(() => fleet.server.restart());
      const afterRestart = await fetch(new URL(AGENT_REGISTER_PATH, server.url), {
        method: 'POST',
        body: JSON.stringify({
          bootstrapToken: 'chosen-bootstrap-token-0001',
          host: { ip: '127.0.0.22', cloudId: 0, hostname: 'h22', osType: 'linux' },
        }),
      }).then((r) => r.json() as Promise<Envelope>);
      assert.equal(afterRestart.result, true, 'the rotated token outlives a restart');
      const dump = JSON.stringify(
        await admin(
          server.url,
          server.adminToken,
          'GET',
          '/audit?action=admin%20POST%20/agents/bootstrap-token',
        ),
      );
      assert.ok(!dump.includes('chosen-bootstrap-token-0001'), 'the audit log never holds the token');
      assert.ok(!fs.readFileSync(path.join(server.dataDir, 'secrets.json'), 'utf8').includes(token));
    });
  });
}
