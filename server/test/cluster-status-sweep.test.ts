/**
 * The cluster's agent status sweep (PostgreSQL only): the sweep every heartbeat interval marks
 * abnormal the hosts whose session passed the timeout and those on a dead server, from those
 * sessions alone; the full sweep, which a server runs when it joins, also catches hosts marked
 * normal without any session.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { AWAY_LOOKBACK_MS, ClusterStore } from '../src/cluster/cluster-store.js';
import { Store } from '../src/store/store.js';
import { eventually } from './helpers/api-client.js';
import { startClusterServer } from './helpers/cluster.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { stopAll, tempDir } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const TIMEOUT = 30_000;

describe('cluster agent status sweep', { skip: !withPg }, () => {
  const live = randomUUID();
  const doomed = randomUUID();
  let databaseUrl: string;
  let store: Store;
  let cluster: ClusterStore;

  before(async () => {
    databaseUrl = (await freshDatabase('postgres')) ?? '';
    store = await Store.open({ databaseUrl, dataDir: tempDir('sweep'), serverId: live });
    cluster = new ClusterStore(store.db);
    await cluster.register(live, 'http://127.0.1.1:1');
    await cluster.register(doomed, 'http://127.0.1.2:1');
  });
  after(async () => {
    await stopAll();
    await store?.close();
    await dropFreshDatabases();
  });

  let n = 0;
  /** A host whose agent is normal (agent_status 1), as after a stored heartbeat. */
  const normalHost = async (): Promise<number> => {
    const h = await store.inventory.addHost({ cloudId: 0, ip: `10.9.0.${++n}` });
    await store.inventory.recordHeartbeats([{ hostId: h.id, at: Date.now() }]);
    return h.id;
  };
  /** Moves a host's session end `ms` into the past (database clock). */
  const endedAgo = async (hostId: number, ms: number) => {
    const epoch = await cluster.openSession(hostId, live);
    await cluster.closeSessions([{ hostId, epoch }]);
    await sql`update agent_session set last_seen = last_seen - ${ms}::bigint where host_id = ${hostId}`.execute(
      store.db,
    );
  };
  const statusOf = async (hostId: number) =>
    (
      await store.db
        .selectFrom('host')
        .select('agent_status')
        .where('id', '=', hostId)
        .executeTakeFirstOrThrow()
    ).agent_status;
  const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

  test('each sweep marks sessions past the timeout and sessions on dead servers, and nothing else', async () => {
    const pastTimeout = await normalHost();
    await endedAgo(pastTimeout, TIMEOUT + 1_000);
    const withinTimeout = await normalHost();
    await endedAgo(withinTimeout, 5_000);
    const onDeadServer = await normalHost();
    await cluster.openSession(onDeadServer, doomed);
    const onLiveServer = await normalHost();
    await cluster.openSession(onLiveServer, live);
    const noSession = await normalHost();
    // Past the sweep's window: only a sweep that missed it for minutes would leave it normal.
    const longGone = await normalHost();
    await endedAgo(longGone, TIMEOUT + AWAY_LOOKBACK_MS + 60_000);
    await cluster.retire(doomed);

    assert.deepEqual(
      sorted(await cluster.markAwayAgentsAbnormal(TIMEOUT)),
      sorted([pastTimeout, onDeadServer]),
    );
    for (const h of [pastTimeout, onDeadServer]) assert.equal(await statusOf(h), 0);
    for (const h of [withinTimeout, onLiveServer, noSession, longGone]) assert.equal(await statusOf(h), 1);
    assert.deepEqual(await cluster.markAwayAgentsAbnormal(TIMEOUT), [], 'a second sweep finds nothing new');

    // The full sweep (a server joining, and every few minutes) takes the rest.
    assert.deepEqual(
      sorted(await cluster.markAwayAgentsAbnormal(TIMEOUT, { full: true })),
      sorted([noSession, longGone]),
    );
    for (const h of [withinTimeout, onLiveServer]) assert.equal(await statusOf(h), 1);

    // A reconnection anywhere makes a host normal again, and the sweep leaves it so.
    await cluster.openSession(onDeadServer, live);
    await store.inventory.recordHeartbeats([{ hostId: onDeadServer, at: Date.now() }]);
    assert.deepEqual(await cluster.markAwayAgentsAbnormal(TIMEOUT), []);
    assert.deepEqual(await cluster.markAwayAgentsAbnormal(TIMEOUT, { full: true }), []);
    assert.equal(await statusOf(onDeadServer), 1);
  });

  test('a server joining the cluster marks hosts that are normal without any session', async () => {
    const noSession = await normalHost();
    const server = await startClusterServer(databaseUrl, 0);
    await eventually(async () => ((await statusOf(noSession)) === 0 ? true : undefined), 30_000, 'the sweep');
    assert.ok(server.url);
  });
});
