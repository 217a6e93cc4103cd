/**
 * Cluster mode: a task for an agent held by another server goes through the outbox, and the
 * holder claims it under the agent's session. An agent that reconnects has its session opened
 * (committed) before it is ready; a claim in between marked its tasks sent under the new
 * session without sending them, and no later claim took them again: the task waited forever.
 * Here an agent holding twenty running tasks (each checked against the store while it
 * reconnects, which keeps that moment open for a while) reconnects again and again while a job
 * for it waits on the other server, and the holder polls its outbox every 20 ms. Runs only
 * where PostgreSQL is given (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { startCluster, waitJobFinished } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import { BIZ, b64, hostIdsByIp, runScript } from './helpers/fleet.js';
import { startAgent, stopAll } from './helpers/processes.js';
import type { AgentProcess } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const IP = '127.0.0.2';
const RUNNING = 20;
const ROUNDS = 10;

describe('cluster: tasks for an agent that is reconnecting', { skip: !withPg }, () => {
  let c: Cluster;
  let relay: FaultProxy;
  let agent: AgentProcess;
  let hostId = 0;

  before(async () => {
    c = await startCluster({ servers: 2, agents: 0, env: { JOBFLEET_CLUSTER_POLL_MS: '20' } });
    const first = c.servers[0];
    assert.ok(first);
    relay = await startFaultProxy(first.url);
    agent = await startAgent({
      server: { url: relay.url, bootstrapToken: first.bootstrapToken },
      ip: IP,
      biz: BIZ,
      env: { TEST_AGENT_IP: IP, TEST_MARKERS: c.markers },
    });
    hostId = (await hostIdsByIp(first.url, first.adminToken)).get(IP) ?? 0;
    c.hostIds.set(IP, hostId);
  });
  after(async () => {
    await stopAll();
    await relay?.close();
    await c?.close();
    await dropFreshDatabases();
  });

  test('a job submitted elsewhere while its agent reconnects runs once the agent is back', async () => {
    const running: number[] = [];
    for (let i = 0; i < RUNNING; i++) {
      const r = await runScript(c.via(0), {
        script_content: b64('sleep 300'),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      running.push(r.data.job_instance_id);
    }
    // Every long task has started: the agent holds them all when it reconnects.
    await eventually(async () => {
      const rows = await c.db<{ n: string }>(
        'select count(*) as n from host_task where host_id = $1 and status = 7',
        [hostId],
      );
      return Number(rows[0]?.n) === RUNNING ? true : undefined;
    }, 60_000);
    for (let round = 0; round < ROUNDS; round++) {
      relay.cut(300);
      const r = await runScript(c.via(1), {
        script_content: b64(`echo round ${round}`),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      await agent.waitReady(round + 2, 30_000);
      const st = await waitJobFinished(c, r.data.job_instance_id, 15_000).catch(async (err: unknown) => {
        const tasks = await c.db('select status from host_task where step_instance_id = $1', [
          r.data.step_instance_id,
        ]);
        const commands = await c.db('select id, sent_epoch from agent_command where step_instance_id = $1', [
          r.data.step_instance_id,
        ]);
        const sessions = await c.db('select server_id, epoch, state from agent_session where host_id = $1', [
          hostId,
        ]);
        throw new Error(
          `round ${round}: ${(err as Error).message}; task ${JSON.stringify(tasks)}, outbox ${JSON.stringify(
            commands,
          )}, session ${JSON.stringify(sessions)}`,
        );
      });
      assert.equal(st.job_instance.status, 3, `round ${round}`);
    }
  });
});
