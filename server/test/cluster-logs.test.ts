/**
 * Cluster mode: a task's log stays byte-exact while its agent is handed from server to server
 * mid-output. Each handover is what a hello on another server does (the session epoch goes up
 * and the holder is told to drop its socket), made at a point seen in the database: after some
 * output is stored, and, for the fenced write, while the holder's commit waits on the session
 * row. Runs only where PostgreSQL is given (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import {
  checkInvariants,
  clusterScript,
  serverErrors,
  serverIdOf,
  sessionsOf,
  startCluster,
} from './helpers/cluster.js';
import type { AcknowledgedJob, Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const IP = '127.0.0.2';

/** Polls until `fn` holds; a timeout says what the cluster looked like then (`explain`). */
async function until(
  what: string,
  fn: () => Promise<boolean>,
  explain: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await explain()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('cluster: logs byte-exact across session handovers', { skip: !withPg }, () => {
  let c: Cluster;
  let own: pg.Pool;
  let hostId: number;
  let ids: string[];

  const session = async () => (await sessionsOf(c)).get(hostId);
  const explain = async () =>
    [
      `session: ${JSON.stringify(await session())}`,
      `tasks: ${JSON.stringify(
        await c.db(
          'select step_instance_id, execute_count, status, log_bytes from host_task where host_id = $1',
          [hostId],
        ),
      )}`,
      serverErrors(c),
    ].join('\n');
  const wait = (what: string, fn: () => Promise<boolean>) => until(what, fn, explain);
  const storedBytes = async (job: AcknowledgedJob) => {
    const rows = await c.db<{ log_bytes: number }>(
      'select log_bytes from host_task where step_instance_id = $1 and host_id = $2',
      [job.stepId, hostId],
    );
    return Number(rows[0]?.log_bytes ?? 0);
  };
  /** The agent is on server `i` with a session that is up. */
  const onServer = (i: number) => async () => {
    const s = await session();
    return s?.server_id === ids[i] && s?.state === 'connected';
  };
  /** Ends the agent's session where it is, as a newer one elsewhere would: the agent moves to its next server. */
  const handOver = async (client: pg.Pool | pg.PoolClient = own) => {
    const r = await client.query<{ epoch: string }>(
      'update agent_session set epoch = epoch + 1 where host_id = $1 returning epoch',
      [hostId],
    );
    return Number(r.rows[0]?.epoch);
  };
  const announce = (epoch: number) =>
    c.db('select pg_notify($1, $2)', ['jobfleet_cluster', `s:${hostId}:${epoch}`]);
  /** Moves the agent until it is held by server `i`. */
  const bringTo = async (i: number) => {
    while (!(await onServer(i)())) {
      await wait('the agent connected', async () => (await session())?.state === 'connected');
      if (await onServer(i)()) break;
      const handed = await handOver();
      await announce(handed);
      // A session opened after the handover (the row alone still names the old holder a while).
      await wait('the agent to move', async () => {
        const s = await session();
        return s?.state === 'connected' && s.epoch > handed;
      });
    }
  };

  before(async () => {
    // One agent given both servers; dead-after wide, so no server is declared dead here.
    c = await startCluster({
      servers: 2,
      agents: 1,
      placement: () => [0, 1],
      env: { JOBFLEET_CLUSTER_DEAD_AFTER_MS: '20000', JOBFLEET_CLUSTER_SELF_FENCE_MS: '15000' },
    });
    hostId = c.hostIds.get(IP) ?? 0;
    ids = c.servers.map((s) => serverIdOf(s));
    own = new pg.Pool({ connectionString: c.databaseUrl, max: 2 });
    own.on('error', () => undefined);
  });
  after(async () => {
    await stopAll();
    await own?.end();
    await c?.close();
    await dropFreshDatabases();
  });

  test('owner -> other server -> owner: the owner resumes from the stored length, not its own count', async () => {
    await bringTo(0);
    // Owned by S1, which holds the agent first and stores the start of the output.
    const job = await clusterScript(c, 0, [IP], { sleep: 0, lines: 40, every: 0.15 });
    await wait('output stored by S1', async () => (await storedBytes(job)) > 60);
    const atFirst = await storedBytes(job);
    await announce(await handOver());
    await wait('the agent on S2', onServer(1));
    // S2 stores more of the output: S1's own count is now behind the store.
    await wait('output stored by S2', async () => (await storedBytes(job)) > atFirst + 150);
    await announce(await handOver());
    await wait('the agent back on S1', onServer(0));
    await checkInvariants(c, [job], 60_000);
  });

  for (const [via, how] of [
    [0, 'its first fenced write drops the agent, which resumes'],
    [1, 'a command for the newer session drops the agent'],
  ] as const)
    test(`a session moved on without its holder hearing: ${how}`, async () => {
      await bringTo(0);
      // As when the holder misses the word (its listening connection down, or the word coming
      // while the session was being opened): the session moves on, and S1 keeps the socket. A
      // job owned by S1 goes to the agent straight away (its writes are then refused); one owned
      // by S2 through the outbox, claimed by S1 for the session the database names.
      const epoch = await handOver();
      const job = await clusterScript(c, via, [IP], { sleep: 0, lines: 40, every: 0.15 });
      await wait('output stored', async () => (await storedBytes(job)) > 60);
      assert.ok(((await session())?.epoch ?? 0) > epoch, 'stored under a session opened after the move');
      await checkInvariants(c, [job], 60_000);
    });

  test('a holder write fenced by a handover: the next server resumes from what was stored', async () => {
    await bringTo(1);
    // Owned by S1, held by S2 (which records the output for S1).
    const job = await clusterScript(c, 0, [IP], { sleep: 0, lines: 40, every: 0.15 });
    await wait('output stored by S2', async () => (await storedBytes(job)) > 60);
    // Hold S2's next output commit on the session row, then move the session on under it: the
    // held commit is refused (fenced) once it goes on, and the bytes it carried are S2's only.
    const client = await own.connect();
    try {
      await client.query('begin');
      await client.query('select epoch from agent_session where host_id = $1 for update', [hostId]);
      await wait('a commit of S2 waiting on the session row', async () => {
        const rows = await c.db<{ n: string }>('select count(*) as n from pg_locks where not granted');
        return Number(rows[0]?.n) > 0;
      });
      const epoch = await handOver(client);
      await client.query('commit');
      await announce(epoch);
    } finally {
      client.release();
    }
    await wait('the agent on S1', onServer(0));
    await checkInvariants(c, [job], 60_000);
    assert.ok((await storedBytes(job)) > 0);
  });
});
