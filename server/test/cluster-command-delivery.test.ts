/**
 * Cluster mode: a task for an agent held by another server goes through the outbox, and the
 * holder claims it under the agent's session. An agent that reconnects has its session opened
 * (committed) before it is ready; a claim in between marked its tasks sent under the new
 * session without sending them, and no later claim took them again: the task waited forever.
 * Here an agent holding twenty running tasks (each checked against the store while it
 * reconnects, which keeps that moment open for a while) reconnects again and again while a job
 * for it waits on the other server, and the holder polls its outbox every 20 ms.
 * A command left in the outbox for a task that is over is never sent: a restarted agent, which
 * no longer knows the task, would run it again. Runs only where PostgreSQL is given
 * (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { clusterPerSuite, markerLines, waitJobFinished } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import { BIZ, b64, hostIdsByIp, runScript } from './helpers/fleet.js';
import { startAgent } from './helpers/processes.js';
import type { AgentProcess } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const IP = '127.0.0.2';
const RUNNING = 20;
const ROUNDS = 10;

describe('cluster: tasks for an agent that is reconnecting', { skip: !withPg }, () => {
  const cluster = clusterPerSuite({ servers: 2, agents: 0, env: { JOBFLEET_CLUSTER_POLL_MS: '20' } });
  let c: Cluster;
  let relay: FaultProxy;
  let agent: AgentProcess;
  let hostId = 0;

  before(async () => {
    c = cluster();
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
    await relay?.close();
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

describe('cluster: a stale command for a finished task', { skip: !withPg }, () => {
  const cluster = clusterPerSuite({
    servers: 2,
    agents: 1,
    placement: () => 0,
    env: { JOBFLEET_CLUSTER_POLL_MS: '20' },
  });

  test('is not run again by the agent once it restarted', async () => {
    const c = cluster();
    // The outbox's rows go once their step is over; a copy of them is kept to put one back.
    await c.db('create table kept_command (like agent_command)');
    await c.db(`create function keep_command() returns trigger language plpgsql as
      'begin insert into kept_command select new.*; return new; end'`);
    await c.db(
      'create trigger keep_command after insert on agent_command for each row execute function keep_command()',
    );
    const hostId = c.hostIds.get('127.0.0.2') ?? 0;
    // Submitted to the server that does not hold the agent: the task goes through the outbox.
    const r = await runScript(c.via(1), {
      script_content: b64('echo ran >> "$TEST_MARKERS/stale-command"'),
      target_server: { host_id_list: [hostId] },
    });
    assert.equal(r.result, true, r.message);
    assert.equal((await waitJobFinished(c, r.data.job_instance_id)).job_instance.status, 3);
    assert.equal(markerLines(c, 'stale-command'), 1);
    const kept = await c.db<{ type: string; execute_count: number; payload: string }>(
      'select type, execute_count, payload from kept_command where step_instance_id = $1',
      [r.data.step_instance_id],
    );
    const run = kept.find((k) => k.type === 'task.run');
    assert.ok(run, `no task.run kept: ${JSON.stringify(kept)}`);

    const agent = c.agents[0];
    assert.ok(agent);
    await agent.kill('SIGKILL');
    c.agents[0] = await agent.restart();
    await c.db(
      `insert into agent_command (host_id, type, step_instance_id, execute_count, payload, sent_epoch, created_at)
       values ($1, $2, $3, $4, $5, null, $6)`,
      [hostId, run.type, r.data.step_instance_id, run.execute_count, run.payload, Date.now()],
    );
    // The holder claims it under the agent's new session and drops it, the task being over; a
    // command it sent would stay until the task ended.
    await eventually(
      async () => {
        const left = await c.db('select id from agent_command where step_instance_id = $1', [
          r.data.step_instance_id,
        ]);
        return left.length === 0 ? true : undefined;
      },
      10_000,
      'the stale command dropped',
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; the script ran ${markerLines(c, 'stale-command')} times`);
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(markerLines(c, 'stale-command'), 1);
  });
});
