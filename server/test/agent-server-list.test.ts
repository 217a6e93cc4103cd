/**
 * `jobfleet agent --server URL1,URL2`: real agents given a list of servers. An entry that does
 * not answer is skipped; a server that dies or falls silent (SIGSTOP) is left for the next
 * entry; a result produced while no server listened is delivered to the one reached next; an
 * agent that moved on goes back to the server it started at once that one is back and no task
 * of it runs.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { freePort } from './helpers/free-port.js';
import { b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { startAgent, startServer, stopAll } from './helpers/processes.js';
import type { AgentProcess, ServerProcess } from './helpers/processes.js';

/** A loopback URL nothing listens on. */
async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** The server an agent was last welcomed by, from its own log. */
function connectedTo(agent: AgentProcess): string | undefined {
  const lines = agent
    .output()
    .split('\n')
    .filter((l) => l.includes('"msg":"connected"'));
  const last = lines.at(-1);
  return last ? (JSON.parse(last) as { server: string }).server : undefined;
}

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`agent server list on ${engine}`, () => {
    test('skips a dead entry and delivers a result produced while its server was down', async () => {
      const fleet = await startFleet(engine, 0);
      const dead = await deadUrl();
      const agent = await startAgent({
        server: { url: `${dead},${fleet.server.url}`, bootstrapToken: fleet.server.bootstrapToken },
        ip: '127.0.0.2',
        biz: 2,
        env: { JOBFLEET_AGENT_RECONNECT_MAX_MS: '1000' },
      });
      assert.equal(connectedTo(agent), fleet.server.url);
      const hostId = await eventually(async () => (await hostIdOf(fleet, '127.0.0.2')) || undefined);
      const { jobId, stepId } = await runningJob(fleet, hostId, 2);
      await fleet.server.kill('SIGKILL');
      // The script ends while no server listens; the agent tries the dead entry in between.
      await eventually(async () =>
        agent.output().includes('"msg":"moving to the next server"') ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 2500));
      fleet.server = await fleet.server.restart();
      await agent.waitReady(2, 20_000);
      const st = await waitFinished(fleet, jobId, 30_000);
      assert.equal(st.job_instance.status, 3);
      assert.equal(await hostLog(fleet, jobId, stepId, hostId), 'begin\nend\n');
    });

    if (engine === 'postgres')
      test('leaves a paused server for the next one sharing its database', async () => {
        const { fleet, servers, agent } = await twoServers('127.0.0.3');
        const first = connectedTo(agent) as string;
        const paused = servers.get(first) as ServerProcess;
        paused.proc.kill('SIGSTOP');
        try {
          // Unanswered pings (4 x the 300 ms heartbeat of the test servers) make it move.
          await agent.waitReady(2, 20_000);
          const second = connectedTo(agent) as string;
          assert.notEqual(second, first);
          // The server it moved to runs jobs on it.
          const moved: Fleet = { ...fleet, server: servers.get(second) as ServerProcess };
          const hostId = await eventually(async () => (await hostIdOf(moved, '127.0.0.3')) || undefined);
          const r = await runScript(moved, {
            script_content: b64('echo moved'),
            target_server: { host_id_list: [hostId] },
          });
          assert.equal(r.result, true, r.message);
          const st = await waitFinished(moved, r.data.job_instance_id);
          assert.equal(st.job_instance.status, 3);
        } finally {
          paused.proc.kill('SIGCONT');
        }
      });

    if (engine === 'postgres')
      test('goes back to the server it started at once that one is back, not while its task runs', async () => {
        const { fleet, servers, agent } = await twoServers('127.0.0.4', {
          JOBFLEET_AGENT_RETURN_HOME_MS: '300',
        });
        const home = connectedTo(agent) as string;
        const stopped = servers.get(home) as ServerProcess;
        await stopped.kill('SIGTERM');
        await agent.waitReady(2, 20_000);
        const away = connectedTo(agent) as string;
        assert.notEqual(away, home);
        const moved: Fleet = { ...fleet, server: servers.get(away) as ServerProcess };
        const hostId = await eventually(async () => (await hostIdOf(moved, '127.0.0.4')) || undefined);
        // Long enough for the restart and the wait below on a loaded machine.
        const { jobId, stepId } = await runningJob(moved, hostId, 10);
        const back = await stopped.restart();
        // Its checks (every 150-450 ms) find home answering; the running task keeps the agent away.
        await new Promise((r) => setTimeout(r, 1500));
        assert.ok(!agent.output().includes('moving back to its home server'), 'moved while its task ran');
        const st = await waitFinished(moved, jobId, 30_000);
        assert.equal(st.job_instance.status, 3);
        assert.equal(await hostLog(moved, jobId, stepId, hostId), 'begin\nend\n');
        await eventually(async () => (connectedTo(agent) === home ? true : undefined), 20_000, 'back home');
        assert.ok(agent.output().includes('moving back to its home server'));
        // The server it is back on runs its jobs.
        const atHome: Fleet = { ...fleet, server: back };
        const again = await runScript(atHome, {
          script_content: b64('echo home'),
          target_server: { host_id_list: [hostId] },
        });
        assert.equal(again.result, true, again.message);
        assert.equal((await waitFinished(atHome, again.data.job_instance_id)).job_instance.status, 3);
      });
  });
}

/** Two servers on one PostgreSQL database, and an agent given both (it starts at either). */
async function twoServers(ip: string, env: Record<string, string> = {}) {
  const fleet = await startFleet('postgres', 0);
  const other = await startServer({ databaseUrl: fleet.databaseUrl as string });
  const servers = new Map<string, ServerProcess>([
    [fleet.server.url, fleet.server],
    [other.url, other],
  ]);
  const agent = await startAgent({
    server: { url: [...servers.keys()].join(','), bootstrapToken: fleet.server.bootstrapToken },
    ip,
    biz: 2,
    env: { JOBFLEET_AGENT_RECONNECT_MAX_MS: '1000', ...env },
  });
  return { fleet, servers, agent };
}

/** A job printing `begin`, sleeping `seconds` and printing `end` on the host, once `begin` is stored. */
async function runningJob(fleet: Fleet, hostId: number, seconds: number) {
  const r = await runScript(fleet, {
    script_content: b64(`echo begin; sleep ${seconds}; echo end`),
    target_server: { host_id_list: [hostId] },
  });
  assert.equal(r.result, true, r.message);
  const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
  await eventually(async () =>
    (await hostLog(fleet, jobId, stepId, hostId))?.startsWith('begin') ? true : undefined,
  );
  return { jobId, stepId };
}

async function hostIdOf(fleet: Fleet, ip: string): Promise<number> {
  const res = await fetch(`${fleet.server.url}/api/admin/hosts?bk_biz_id=2`, {
    headers: { authorization: `Bearer ${fleet.server.adminToken}` },
  });
  const body = (await res.json()) as { data: { hosts: { bk_host_id: number; ip: string }[] } };
  return body.data.hosts.find((h) => h.ip === ip)?.bk_host_id ?? 0;
}
