/**
 * Cluster mode: three servers on one PostgreSQL, agents held by different servers. Runs only
 * where PostgreSQL is given (JOBFLEET_TEST_PG_URL); the acceptance numbers refer to the cluster
 * design notes (§7).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import WebSocket from 'ws';
import { AGENT_LINK_PATH, PROTOCOL_VERSION } from '@jobfleet/protocol';
import { after, before, describe, test } from 'node:test';
import { admin, get } from './helpers/api-client.js';
import {
  checkInvariants,
  clusterScript,
  serverIdOf,
  sessionsOf,
  startCluster,
  startClusterServer,
  waitJobFinished,
} from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { operateJob } from './helpers/fleet.js';
import type { JobStatus } from './helpers/fleet.js';
import { privatePostgresAvailable, startPrivatePostgres } from './helpers/private-postgres.js';
import type { PrivatePostgres } from './helpers/private-postgres.js';
import { stopAll } from './helpers/processes.js';
import type { AgentProcess, ServerProcess } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

/** Polls the database until `fn` holds (a fault is injected at a point seen there, never after a bare sleep). */
async function until(
  c: Cluster,
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  void c;
}

const hostsRunning = (c: Cluster, jobId: number, n: number) => async () => {
  const rows = await c.db<{ n: string }>(
    `select count(*) as n from host_task t join step_instance s on s.id = t.step_instance_id
     where s.job_instance_id = $1 and t.status = 7`,
    [jobId],
  );
  return Number(rows[0]?.n) >= n;
};

/** Terminates a one-host job through server `via`: it ends 11, its host killed (403, behaviour notes). */
async function terminatedVia(c: Cluster, via: number, jobId: number): Promise<void> {
  const r = await operateJob(c.via(via), jobId, 1);
  assert.equal(r.result, true, r.message);
  const st = await waitJobFinished(c, jobId, 20_000);
  assert.equal(st.job_instance.status, 11);
  assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 403);
}

describe('cluster: three servers, agents spread over them', { skip: !withPg }, () => {
  let c: Cluster;
  before(async () => {
    // 127.0.0.2 on S2, 127.0.0.3 on S3, 127.0.0.4 on S2.
    c = await startCluster({ servers: 3, agents: 3, placement: (n) => (n === 1 ? 2 : 1) });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });

  test('1: every server is healthy and answers with the same data', async () => {
    for (const s of c.servers) {
      const res = await fetch(`${s.url}/healthz`);
      assert.equal(res.status, 200);
    }
    const view = await admin<{ cluster: boolean; servers: { state: string; agents_held: number }[] }>(
      c.servers[0]?.url ?? '',
      c.servers[0]?.adminToken ?? '',
      'GET',
      '/cluster',
    );
    assert.equal(view.data.cluster, true);
    assert.deepEqual(
      view.data.servers.map((s) => s.state),
      ['alive', 'alive', 'alive'],
    );
    assert.deepEqual(view.data.servers.map((s) => s.agents_held).sort(), [0, 1, 2]);
    const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 0 });
    await checkInvariants(c, [job]);
    const answers = await Promise.all(
      c.servers.map(async (_s, i) => {
        const f = c.via(i);
        const r = await get<JobStatus>(
          f.server.url,
          'get_job_instance_status',
          { ...f.scope, job_instance_id: job.jobId, return_ip_result: true },
          f.creds,
        );
        return r.data;
      }),
    );
    for (const a of answers.slice(1)) assert.deepEqual(a, answers[0]);
  });

  test('3: a job accepted by S1 runs on hosts held by S2 and S3; logs byte-exact', async () => {
    const sessions = await sessionsOf(c);
    assert.equal(sessions.size, 3);
    const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3', '127.0.0.4'], { lines: 200 });
    const failing = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { failOn: '127.0.0.3' });
    await checkInvariants(c, [job, failing]);
  });

  test('11: terminate through S3 a job owned by S1 whose agent is on S2', async () => {
    const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 30 });
    await until(c, 'the host running', hostsRunning(c, job.jobId, 1));
    await terminatedVia(c, 2, job.jobId);
  });

  test('15: a live owner that does not run its job (two operations raced) carries it on', async () => {
    // Two operations at once through S1 and S2 each take the job; S2's take lands last, but S1
    // ran the operation and drops the job at its next poll. Made here by giving the job to S2.
    const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 3 });
    await until(c, 'the host running', hostsRunning(c, job.jobId, 1));
    await c.db('update job_instance set owner_id = $1 where id = $2', [
      serverIdOf(c.servers[1] as ServerProcess),
      job.jobId,
    ]);
    await checkInvariants(c, [job]);
  });

  test('10: a newer session elsewhere closes the stale one; its host keeps working', async () => {
    const agent = c.agents[2] as AgentProcess; // 127.0.0.4, held by S2
    const hostId = c.hostIds.get(agent.ip) ?? 0;
    const before = (await sessionsOf(c)).get(hostId);
    const identity = JSON.parse(fs.readFileSync(path.join(agent.stateDir, 'identity.json'), 'utf8')) as {
      token: string;
    };
    // A second connection for the host, on S1: the session moves there and S2 drops the agent.
    const stale = new WebSocket(`${c.servers[0]?.url.replace('http', 'ws')}${AGENT_LINK_PATH}`, {
      headers: { authorization: `Bearer ${identity.token}` },
    });
    const closed = new Promise<number>((resolve) => stale.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => stale.once('open', resolve).once('error', reject));
    stale.send(
      JSON.stringify({
        v: PROTOCOL_VERSION,
        type: 'hello',
        agentVersion: 'test',
        host: { ip: agent.ip, ipv6: '', cloudId: 0, hostname: `host-${agent.ip}`, osType: 'linux' },
        held: [],
      }),
    );
    // The real agent comes back (to S2), which makes the connection on S1 the stale one.
    assert.equal(await closed, 4005);
    const after = (await sessionsOf(c)).get(hostId);
    assert.ok(after && before && after.epoch >= before.epoch + 2, 'epoch bumped twice');
    const job = await clusterScript(c, 0, [agent.ip], { sleep: 0 });
    await checkInvariants(c, [job]);
  });
  test('16: a server starting removes leftovers older than a day, and only those', async () => {
    const day = 24 * 3600_000;
    const old = Date.now() - 2 * day;
    const [finished] = await c.db<{ id: string }>(
      'select s.id from step_instance s join job_instance j on j.id = s.job_instance_id where j.status = 3 limit 1',
    );
    assert.ok(finished);
    await c.db(
      `insert into server_node (id, url, state, started_at, heartbeat_at, stopped_at) values
       ('gone-long-ago', 'http://127.0.1.9:1', 'dead', $1, $1, $1),
       ('gone-an-hour-ago', 'http://127.0.1.9:2', 'dead', $2, $2, $2)`,
      [old, Date.now() - 3600_000],
    );
    await c.db(
      `insert into agent_command (host_id, type, step_instance_id, execute_count, payload, created_at) values
       (999999, 'file.serve', null, null, 'x', $1), (999999, 'task.run', $2, 0, 'x', $1),
       (999998, 'file.serve', null, null, 'x', $3)`,
      [old, finished.id, Date.now()],
    );
    await c.db(
      `insert into file_offer (step_instance_id, execute_count, host_id, payload, created_at)
       values ($1, 0, 999999, 'x', $2)`,
      [finished.id, old],
    );
    const url = c.databaseUrl ?? '';
    const extra = await startClusterServer(url, 3);
    try {
      await until(c, 'old leftovers removed', async () => {
        const [n] = await c.db<{ n: string }>(
          `select (select count(*) from agent_command where host_id = 999999)
             + (select count(*) from file_offer where host_id = 999999)
             + (select count(*) from server_node where id = 'gone-long-ago') as n`,
        );
        return Number(n?.n) === 0;
      });
      assert.equal((await c.db('select 1 from agent_command where host_id = 999998')).length, 1);
      assert.equal((await c.db("select 1 from server_node where id = 'gone-an-hour-ago'")).length, 1);
    } finally {
      await extra.kill('SIGTERM');
    }
  });
});

describe('cluster: servers killed and paused mid-job', { skip: !withPg }, () => {
  after(async () => {
    await stopAll();
    await dropFreshDatabases();
  });

  test('4: SIGKILL of the owner of a running job: taken over, each host ran once', async () => {
    // Two servers are enough: S1 owns the job, S2 holds both agents.
    const c = await startCluster({ servers: 2, agents: 2, placement: () => 1 });
    try {
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { sleep: 2 });
      const owner = serverIdOf(c.servers[0] as ServerProcess);
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      await c.servers[0]?.kill('SIGKILL');
      await until(c, 'the job taken over', async () => {
        const rows = await c.db<{ owner_id: string }>('select owner_id from job_instance where id = $1', [
          job.jobId,
        ]);
        return rows[0]?.owner_id !== owner;
      });
      await checkInvariants(c, [job]);
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test('13: terminate of a job with no live owner: taken by the server asked, its running host killed', async () => {
    // S1 owns the job, S2 holds the agent. S1 is stopped and the job left without an owner (as
    // a retired server leaves its jobs); the terminate reaches S2 before any sweep takes the job.
    const c = await startCluster({ servers: 2, agents: 1, placement: () => 1 });
    try {
      const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 30 });
      await until(c, 'the host running', hostsRunning(c, job.jobId, 1));
      const stopped = c.servers[0] as ServerProcess;
      stopped.proc.kill('SIGSTOP');
      c.paused.add(stopped);
      await c.db('update job_instance set owner_id = null where id = $1', [job.jobId]);
      // Killed (403), not left running under a stopped job.
      await terminatedVia(c, 1, job.jobId);
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test('14: an operation refused by another server moves the job there; the result the old owner gets is kept', async () => {
    // S1 owns the job and holds the agent; a repeated start (a client's retry) reaches S2.
    const c = await startCluster({ servers: 2, agents: 1, placement: () => 0 });
    try {
      const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 3 });
      await until(c, 'the host running', hostsRunning(c, job.jobId, 1));
      const again = await operateJob(c.via(1), job.jobId, 2);
      assert.equal(again.result, false);
      const st = await waitJobFinished(c, job.jobId, 30_000);
      assert.equal(st.job_instance.status, 3);
      assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9);
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test('5: SIGKILL of the server holding the agents: no 310, results arrive through the others', async () => {
    // Agents list S2 and S3; the job is owned by S1.
    const c = await startCluster({ servers: 3, agents: 2, placement: () => [1, 2] });
    try {
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { sleep: 2, lines: 50 });
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      // Kill the server holding the first host's agent.
      const sessions = await sessionsOf(c);
      const held = sessions.get(c.hostIds.get('127.0.0.2') ?? 0)?.server_id;
      const victim = c.servers.findIndex((s) => serverIdOf(s) === held);
      assert.ok(victim > 0);
      await c.servers[victim]?.kill('SIGKILL');
      await checkInvariants(c, [job]);
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test('12: a paused owner reads a result its agent delivered elsewhere meanwhile: the step still succeeds', async () => {
    // The first agent lists S1 (the owner), then S2; the second is on S2 and finishes later.
    // S1 is paused inside a transaction that stores the first host's output or result (made
    // certain with a row lock, below), long enough for the first agent to give up on it and
    // hand its result to S2; not long enough to be declared dead. That transaction holds a share
    // lock on the host's agent session, which S2 must update to take the agent: PostgreSQL ends
    // the paused session after the self-fence time (F16), and only then can S2 welcome the
    // agent. On resume S1 finds its transaction gone and its retry fenced (the session moved),
    // while it recounts the result S2 stored: the task must stay counted as the store has it.
    // While PostgreSQL ended such a session only after the dead-after time, the agent could not
    // move before S1 was declared dead (a full suite once timed out waiting for the hand-over).
    const c = await startCluster({
      servers: 2,
      agents: 2,
      placement: (n) => (n === 0 ? [0, 1] : 1),
      // The self-fence time is how long PostgreSQL keeps the paused write's transaction (and its
      // lock) before ending it: 5 s was once too short for this test to see the lock held while a
      // full suite loaded the machine.
      env: { JOBFLEET_CLUSTER_DEAD_AFTER_MS: '40000', JOBFLEET_CLUSTER_SELF_FENCE_MS: '10000' },
    });
    const locker = new pg.Client({ connectionString: c.databaseUrl });
    await locker.connect();
    try {
      const first = c.hostIds.get('127.0.0.2') ?? 0;
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], {
        // The first host's result comes seconds after the lock below is taken, even when both
        // hosts are seen running late.
        sleep: 3,
        sleepOn: { '127.0.0.3': 8 },
      });
      const owner = c.servers[0] as ServerProcess;
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      const lockerPid = (await locker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;
      await locker.query('begin');
      await locker.query('select 1 from agent_session where host_id = $1 for update', [first]);
      // The session of S1's write that waits for the lock taken here (its pid): the fence's
      // share lock, not another statement on the row (a session opened or closed meanwhile is
      // a single statement that holds nothing once it ran, so pausing it proves nothing). Read
      // outside the locker's transaction, which would see pg_stat_activity as it first read it.
      let writer = 0;
      await until(c, "S1's write of the first host waiting for its session row", async () => {
        const rows = await c.db<{ pid: number }>(
          `select pid from pg_stat_activity
           where $1 = any(pg_blocking_pids(pid)) and query ilike '%agent_session%for share%'`,
          [lockerPid],
        );
        writer = rows[0]?.pid ?? 0;
        return writer !== 0;
      });
      owner.proc.kill('SIGSTOP');
      c.paused.add(owner);
      await locker.query('commit');
      await until(c, "the paused write holding the session row's share lock", async () => {
        const { rows } = await locker.query(
          `select 1 from pg_locks l join pg_class r on r.oid = l.relation
           where l.pid = $1 and l.granted and r.relname = 'agent_session' and l.mode = 'RowShareLock'`,
          [writer],
        );
        return rows.length > 0;
      });
      await until(
        c,
        'the first host recorded through S2',
        async () => {
          const rows = await c.db<{ status: number }>(
            'select status from host_task where step_instance_id = $1 and host_id = $2',
            [job.stepId, first],
          );
          return rows[0]?.status === 9;
        },
        35_000,
      );
      owner.proc.kill('SIGCONT');
      c.paused.delete(owner);
      await checkInvariants(c, [job]);
      assert.equal(owner.proc.exitCode, null, 'the owner was paused, never declared dead');
      const owners = await c.db<{ owner_id: string }>('select owner_id from job_instance where id = $1', [
        job.jobId,
      ]);
      assert.equal(owners[0]?.owner_id, serverIdOf(owner));
    } finally {
      await locker.end();
      await stopAll();
      await c.close();
    }
  });

  test('7: SIGSTOP of a job owner: taken over; on SIGCONT it exits and changes nothing', async () => {
    const c = await startCluster({ servers: 2, agents: 2, placement: () => 1 });
    try {
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { sleep: 1.5 });
      const paused = c.servers[0] as ServerProcess;
      const id = serverIdOf(paused);
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      paused.proc.kill('SIGSTOP');
      c.paused.add(paused);
      await until(c, 'the paused owner marked dead', async () => {
        const rows = await c.db<{ state: string }>('select state from server_node where id = $1', [id]);
        return rows[0]?.state === 'dead';
      });
      // Let the takeover finish the job while the old owner sleeps (2x dead-after in all).
      await checkInvariants(c, [job]);
      const before = await c.db('select status, end_time from job_instance where id = $1', [job.jobId]);
      const exited = new Promise<number | null>((resolve) =>
        paused.proc.once('exit', (code) => resolve(code)),
      );
      paused.proc.kill('SIGCONT');
      c.paused.delete(paused);
      assert.equal(await exited, 3);
      assert.match(paused.output(), /declared dead by the cluster/);
      assert.deepEqual(
        await c.db('select status, end_time from job_instance where id = $1', [job.jobId]),
        before,
      );
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test('a server declared dead exits though a part of its stop never finishes; its agent moves on', async () => {
    const c = await startCluster({ servers: 2, agents: 1, placement: () => [0, 1] });
    const held = new net.Socket();
    try {
      const hostId = c.hostIds.get('127.0.0.2') ?? 0;
      // The server that holds the agent is the one declared dead.
      let id = '';
      await until(c, 'the agent connected', async () => {
        const s = (await sessionsOf(c)).get(hostId);
        id = s?.state === 'connected' ? s.server_id : '';
        return id !== '';
      });
      const dead = c.servers.find((s) => serverIdOf(s) === id) as ServerProcess;
      const live = c.servers.find((s) => s !== dead) as ServerProcess;
      // A call whose body never comes: the HTTP listener's close waits for it (Node gives a
      // request five minutes).
      const { hostname, port } = new URL(dead.url);
      await new Promise<void>((resolve, reject) => {
        held.once('error', reject);
        held.connect(Number(port), hostname, () => resolve());
      });
      held.on('error', () => undefined);
      held.write(
        'POST /api/v3/get_job_instance_status HTTP/1.1\r\nHost: jobfleet\r\n' +
          'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"bk_scope_type":',
      );
      const exited = new Promise<number | null>((resolve) => dead.proc.once('exit', (code) => resolve(code)));
      await c.db(`update server_node set state = 'dead', stopped_at = $2 where id = $1`, [id, Date.now()]);
      const code = await Promise.race([
        exited,
        new Promise<string>((r) => setTimeout(() => r('still up'), 30_000).unref()),
      ]);
      assert.equal(code, 3, 'the dead server exited for its supervisor to start it anew');
      assert.match(dead.output(), /"waitingOn":"HTTP listener".*the stop did not finish in time/);
      await until(c, "the agent's session on the live server", async () => {
        const s = (await sessionsOf(c)).get(hostId);
        return s?.server_id === serverIdOf(live) && s.state === 'connected';
      });
    } finally {
      held.destroy();
      await stopAll();
      await c.close();
    }
  });
});

describe(
  'cluster: PostgreSQL restarted mid-job, then every server killed',
  { skip: !withPg || !privatePostgresAvailable() },
  () => {
    let pgs: PrivatePostgres | undefined;
    let c: Cluster | undefined;
    before(async () => {
      pgs = await startPrivatePostgres();
      // The agents' grace outlasts their backoff while no server runs (test 6).
      c = await startCluster({
        servers: 2,
        agents: 2,
        placement: (n) => 1 - n,
        databaseUrl: pgs.url,
        env: { JOBFLEET_CLUSTER_AGENT_GRACE_MS: '60000' },
      });
    });
    after(async () => {
      await stopAll();
      await c?.close();
      pgs?.stop();
    });

    test('9: no server crashes or is declared dead; jobs finish; new work dispatches', async () => {
      if (!c || !pgs) throw new Error('no cluster');
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { sleep: 2 });
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      pgs.restart('immediate');
      const next = await clusterScript(c, 1, ['127.0.0.2', '127.0.0.3'], { sleep: 0 });
      await checkInvariants(c, [job, next], 60_000);
      for (const s of c.servers) assert.equal(s.proc.exitCode, null);
      const states = await c.db<{ state: string }>('select state from server_node');
      assert.deepEqual(
        states.map((r) => r.state),
        ['alive', 'alive'],
      );
    });

    test('6: SIGKILL of every server mid-job, new ones started: the job finishes', async () => {
      if (!c) throw new Error('no cluster');
      const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { sleep: 2 });
      await until(c, 'both hosts running', hostsRunning(c, job.jobId, 2));
      await Promise.all(c.servers.map((s) => s.kill('SIGKILL')));
      const fresh: ServerProcess[] = [];
      for (const s of c.servers) fresh.push(await s.restart());
      c.servers = fresh;
      await checkInvariants(c, [job], 90_000);
    });
  },
);
