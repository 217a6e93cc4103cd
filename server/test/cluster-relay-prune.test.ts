/**
 * A server relays the tasks of jobs owned elsewhere to the agents it holds. When such an agent
 * moves to another server mid-task, the entries this server kept for it must go: kept, they
 * pile up for as long as the server runs (a server holding thousands of agents that move at a
 * restart of their peers would carry thousands of dead entries).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { clusterScript, serverIdOf, sessionsOf, startCluster, waitJobFinished } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { BIZ } from './helpers/fleet.js';
import { startAgent, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

async function relayedTasks(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^jobfleet_cluster_relayed_tasks (\S+)$/m.exec(text)?.[1] ?? NaN);
}

describe('cluster: relayed tasks of an agent that moved', { skip: !withPg }, () => {
  let c: Cluster;

  before(async () => {
    // The agent is held by S0; its jobs are submitted to (and owned by) S1.
    c = await startCluster({ servers: 2, agents: 1, placement: () => 0 });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });

  test('are forgotten by the server it left once its task ends elsewhere', async () => {
    const [s0, s1] = c.servers as [ServerProcess, ServerProcess];
    const ip = '127.0.0.2';
    const hostId = c.hostIds.get(ip) ?? 0;
    const job = await clusterScript(c, 1, [ip], { sleep: 30 });
    await eventually(async () => ((await relayedTasks(s0)) === 1 ? true : undefined), 15_000);
    assert.equal(await relayedTasks(s1), 0, 'the owner runs the task itself');

    // The agent dies mid-task and comes back on S1: its restart kills the script and reports it.
    const agent = c.agents[0] ?? (undefined as never);
    const epoch = (await sessionsOf(c)).get(hostId)?.epoch;
    await agent.kill('SIGKILL');
    await startAgent({
      server: { url: s1.url, bootstrapToken: s1.bootstrapToken },
      ip,
      biz: BIZ,
      stateDir: agent.stateDir,
      env: { TEST_AGENT_IP: ip, TEST_MARKERS: c.markers },
    });
    const moved = (await sessionsOf(c)).get(hostId);
    assert.notEqual(moved?.epoch, epoch);
    assert.equal(moved?.server_id, serverIdOf(s1));
    const st = await waitJobFinished(c, job.jobId, 30_000);
    assert.notEqual(st.job_instance.status, 2, 'the job ended');

    // S0 no longer holds the agent: what it kept for its task is gone.
    await eventually(async () => ((await relayedTasks(s0)) === 0 ? true : undefined), 15_000);
    assert.equal(await relayedTasks(s1), 0);
  });
});
