/**
 * Three cluster servers behind Debian's HAProxy, run with the repository's deploy/haproxy.cfg:
 * agents connect through it over WebSocket, API calls go through it, a job runs on every agent,
 * and when the server holding agents is paused (SIGSTOP) HAProxy's health checks mark it down and
 * `on-marked-down shutdown-sessions` cuts its tunnels, so its agents move to the other servers
 * long before their own ping timeout would, and the next job runs everywhere.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { checkInvariants, clusterScript, serverIdOf, startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { freePort } from './helpers/free-port.js';
import { BIZ, hostIdsByIp } from './helpers/fleet.js';
import { REPO_ROOT, killProcess, startAgent, stopAll } from './helpers/processes.js';
import type { AgentProcess, ServerProcess } from './helpers/processes.js';

const HAPROXY = '/usr/sbin/haproxy';
const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

function hostPort(s: ServerProcess): string {
  return new URL(s.url).host;
}

describe('three servers behind HAProxy', { skip: !withPg }, () => {
  let c: Cluster;
  let lb: ChildProcess;
  let lbUrl: string;
  let lbOutput = '';
  const agents: AgentProcess[] = [];
  const ips = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

  before(async () => {
    if (!fs.existsSync(HAPROXY))
      throw new Error(
        `${HAPROXY} not found: install Debian's haproxy (scripts/install-test-packages.sh does)`,
      );
    // Agents ping every 5 s (20 s of silence before they give up on a server): any quicker move
    // is HAProxy's doing. Cluster timings a little wider than the core tests' for a loaded machine.
    c = await startCluster({
      servers: 3,
      agents: 0,
      env: {
        JOBFLEET_HEARTBEAT_INTERVAL_MS: '5000',
        JOBFLEET_HEARTBEAT_TIMEOUT_MS: '30000',
        JOBFLEET_CLUSTER_HEARTBEAT_MS: '300',
        JOBFLEET_CLUSTER_DEAD_AFTER_MS: '4000',
        JOBFLEET_CLUSTER_SELF_FENCE_MS: '2500',
      },
    });
    // HAProxy cannot bind port 0 and say which port it got.
    const port = await freePort();
    lbUrl = `http://127.0.0.1:${port}`;
    lb = spawn(HAPROXY, ['-db', '-f', path.join(REPO_ROOT, 'deploy', 'haproxy.cfg')], {
      env: {
        PATH: process.env.PATH,
        JOBFLEET_LB_BIND: `127.0.0.1:${port}`,
        JOBFLEET_LB_CHECK_INTER: '300ms',
        JOBFLEET_LB_CHECK_TIMEOUT: '500ms',
        ...Object.fromEntries(c.servers.map((s, i) => [`JOBFLEET_SERVER_${i + 1}`, hostPort(s)])),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    lb.stdout?.on('data', (d: Buffer) => (lbOutput += d.toString()));
    lb.stderr?.on('data', (d: Buffer) => (lbOutput += d.toString()));
    await eventually(
      async () => ((await fetch(`${lbUrl}/healthz`)).status === 200 ? true : undefined),
      15_000,
      'HAProxy to answer /healthz',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${lbOutput}`);
    });
    const lbServer = c.servers[0] as ServerProcess;
    for (const ip of ips)
      agents.push(
        await startAgent({
          server: { url: lbUrl, bootstrapToken: lbServer.bootstrapToken },
          ip,
          biz: BIZ,
          env: { TEST_AGENT_IP: ip, TEST_MARKERS: c.markers },
        }),
      );
    for (const [ip, id] of await hostIdsByIp(lbUrl, lbServer.adminToken)) c.hostIds.set(ip, id);
  });

  after(async () => {
    if (lb) await killProcess(lb);
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });

  /** The cluster as reached through HAProxy: every call goes to the load balancer. */
  function throughLb(): Cluster {
    const server = { ...(c.servers[0] as ServerProcess), url: lbUrl };
    return { ...c, servers: [server], via: () => ({ ...c.via(0), server }) };
  }

  async function holders(): Promise<Map<string, string[]>> {
    const byServer = new Map<string, string[]>();
    const rows = await c.db<{ host_id: string; server_id: string }>(
      "select host_id, server_id from agent_session where state = 'connected'",
    );
    for (const r of rows) {
      const ip = [...c.hostIds].find(([, id]) => id === Number(r.host_id))?.[0] ?? '?';
      byServer.set(r.server_id, [...(byServer.get(r.server_id) ?? []), ip]);
    }
    return byServer;
  }

  test('agents connect through HAProxy over WebSocket and a job submitted through it runs on all', async () => {
    const held = await eventually(async () => {
      const h = await holders();
      return [...h.values()].flat().length === ips.length ? h : undefined;
    });
    // leastconn spreads the agents' long connections over the servers.
    assert.ok(held.size >= 2, `agents held by ${held.size} server(s)`);
    const job = await clusterScript(throughLb(), 0, ips);
    await checkInvariants(throughLb(), [job]);
  });

  test('a paused server is marked down and its agents are moved by shutdown-sessions', async () => {
    const held = await holders();
    const [victimId, victimIps] = [...held].sort((a, b) => b[1].length - a[1].length)[0] ?? ['', []];
    const victim = c.servers.find((s) => serverIdOf(s) === victimId) as ServerProcess;
    assert.ok(victim && victimIps.length > 0);
    victim.proc.kill('SIGSTOP');
    try {
      // Well inside the agents' own 20 s ping window: HAProxy cut the tunnels.
      for (const ip of victimIps) await agents[ips.indexOf(ip)]?.waitReady(2, 15_000);
      await eventually(async () => {
        const now = await holders();
        return [...now.values()].flat().length === ips.length && !now.has(victimId) ? true : undefined;
      }, 20_000);
      const job = await clusterScript(throughLb(), 0, ips);
      await checkInvariants(throughLb(), [job]);
    } finally {
      victim.proc.kill('SIGCONT');
    }
  });
});
