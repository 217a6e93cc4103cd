/**
 * Cluster mode, a fleet saying hello at once (PostgreSQL only): the hellos' sessions are opened
 * in shared commits (cluster/session-batch.ts). Every agent of a burst becomes ready with one
 * host and one session each; after a server is killed with SIGKILL its agents reconnect to the
 * other in a second burst and each session moves there exactly once, under a higher epoch.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ClusterStore } from '../src/cluster/cluster-store.js';
import { Store } from '../src/store/store.js';
import { serverIdOf, sessionsOf, startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { BIZ } from './helpers/fleet.js';
import { stopAll, tempDir } from './helpers/processes.js';
import { startSimulatedFleet } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const AGENTS = 120;

describe('cluster: sessions of many hellos opened together', { skip: !withPg }, () => {
  test('two servers opening overlapping sessions at once: every open counted, no deadlock', async () => {
    const databaseUrl = await freshDatabase('postgres');
    const ids = [randomUUID(), randomUUID()];
    const stores = await Promise.all(
      ids.map((serverId) => Store.open({ databaseUrl, dataDir: tempDir('sessions'), serverId })),
    );
    try {
      const clusters = stores.map((s) => new ClusterStore(s.db));
      // Hosts 1..400 from the first server in rising order, 400..1 from the second, in batches.
      const hosts = Array.from({ length: 400 }, (_, i) => i + 1);
      const batches = (list: number[]) =>
        Array.from({ length: 8 }, (_, k) => list.slice(k * 50, k * 50 + 50));
      const opened = await Promise.all([
        ...batches(hosts).map((b) => clusters[0]!.openSessions(b, ids[0]!)),
        ...batches([...hosts].reverse()).map((b) => clusters[1]!.openSessions(b, ids[1]!)),
      ]);
      for (const [i, m] of opened.entries()) assert.equal(m.size, 50, `batch ${i} answered every host`);
      const epochs = new Map<number, number[]>();
      for (const m of opened) for (const [h, e] of m) epochs.set(h, [...(epochs.get(h) ?? []), e]);
      for (const h of hosts) assert.deepEqual(epochs.get(h)?.sort(), [1, 2], `host ${h}`);
      // A host opened again later gets the next epoch.
      assert.deepEqual([...(await clusters[0]!.openSessions([7, 9], ids[0]!))].sort(), [
        [7, 3],
        [9, 3],
      ]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  describe('a burst of agents on two servers, then one killed', () => {
    let c: Cluster;
    let fleet: SimulatedFleet | undefined;
    before(async () => {
      c = await startCluster({ servers: 2, agents: 0 });
    });
    after(async () => {
      await fleet?.stop();
      await stopAll();
      await c?.close();
      await dropFreshDatabases();
    });

    test('every agent ready once; after SIGKILL of one server each moves once', async () => {
      const [s1, s2] = c.servers;
      assert.ok(s1 && s2);
      fleet = await startSimulatedFleet(
        { url: `${s1.url},${s2.url}`, bootstrapToken: s1.bootstrapToken },
        AGENTS,
        BIZ,
      );
      const hostIds = [...fleet.hostIds].sort((a, b) => a - b);
      assert.equal(new Set(hostIds).size, AGENTS, 'each agent its own host');
      const hosts = await c.db<{ n: string }>("select count(*) as n from host where ip like '10.%'");
      assert.equal(Number(hosts[0]?.n), AGENTS, 'each host stored once');
      const audits = await c.db<{ n: string; d: string }>(
        `select count(*) as n, count(distinct target) as d from audit_log where action = 'agent register'`,
      );
      assert.deepEqual([Number(audits[0]?.n), Number(audits[0]?.d)], [AGENTS, AGENTS]);

      const first = await sessionsOf(c);
      assert.deepEqual(
        [...first.keys()].sort((a, b) => a - b),
        hostIds,
      );
      for (const [h, s] of first) {
        assert.equal(s.state, 'connected', `host ${h}`);
        assert.equal(s.epoch, 1, `host ${h}: one hello, one session`);
      }
      const id1 = serverIdOf(s1);
      const id2 = serverIdOf(s2);
      const onFirst = [...first].filter(([, s]) => s.server_id === id1).map(([h]) => h);
      assert.ok(onFirst.length > 0, 'agents start at a random entry of their list: some on each server');

      await s1.kill('SIGKILL');
      const deadline = Date.now() + 120_000;
      let now = await sessionsOf(c);
      while ([...now.values()].some((s) => s.server_id !== id2 || s.state !== 'connected')) {
        if (Date.now() > deadline) throw new Error('agents of the killed server did not all move');
        await new Promise((r) => setTimeout(r, 200));
        now = await sessionsOf(c);
      }
      assert.equal(now.size, AGENTS);
      for (const [h, s] of now) {
        const before = first.get(h)?.epoch ?? 0;
        // Moved agents opened one new session; the others kept theirs (or reconnected, higher).
        if (onFirst.includes(h)) assert.ok(s.epoch > before, `host ${h} moved under a new epoch`);
        else assert.ok(s.epoch >= before, `host ${h}`);
      }
      const after = await c.db<{ n: string }>("select count(*) as n from host where ip like '10.%'");
      assert.equal(Number(after[0]?.n), AGENTS, 'no host registered twice by the reconnects');
    });
  });
});
