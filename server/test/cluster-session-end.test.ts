/**
 * An agent's session ends while its server cannot reach PostgreSQL: the end is written once the
 * database is back. Lost, the session would stay "connected" to that server for good, and the
 * agent would never be found lost (its host normal, its tasks waiting forever).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { sessionsOf, startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

describe('cluster: a session that ends while the store is out of reach', { skip: !withPg }, () => {
  let c: Cluster;
  let relay: FaultProxy;

  before(async () => {
    const databaseUrl = (await freshDatabase('postgres')) as string;
    relay = await startFaultProxy(databaseUrl);
    const viaRelay = new URL(databaseUrl);
    viaRelay.port = String(relay.port);
    // S1 reaches PostgreSQL through the relay; the agent is held by S1.
    c = await startCluster({
      servers: 2,
      agents: 1,
      databaseUrl,
      databaseUrlOf: (i) => (i === 0 ? viaRelay.toString() : databaseUrl),
      placement: () => 0,
    });
  });
  after(async () => {
    await stopAll();
    await relay?.close();
    await c?.close();
    await dropFreshDatabases();
  });

  test('the end is recorded once the database is back, and the host is found lost', async () => {
    const hostId = c.hostIds.get('127.0.0.2') ?? 0;
    const before = (await sessionsOf(c)).get(hostId);
    assert.equal(before?.state, 'connected');
    // Shorter than the self-fence (2 s): S1 stays a live member throughout.
    relay.cut(1_200);
    await c.agents[0]?.kill('SIGKILL');
    const after = await eventually(async () => {
      const s = (await sessionsOf(c)).get(hostId);
      return s?.state === 'gone' ? s : undefined;
    }, 15_000);
    assert.equal(after.epoch, before?.epoch);
    await eventually(async () => {
      const [h] = await c.db<{ agent_status: number }>('select agent_status from host where id = $1', [
        hostId,
      ]);
      return h?.agent_status === 0 ? true : undefined;
    }, 20_000);
  });
});
