/**
 * The cluster's outbox takes a whole step's dispatch at once: the commands for 12,000 hosts
 * (84,000 values, more than PostgreSQL binds in one statement) are stored, each once; a claim
 * leaves out hosts not ready; sessions, and hosts gone from the inventory, are read for more hosts
 * than a statement binds.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ClusterStore } from '../src/cluster/cluster-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

after(async () => {
  await dropFreshDatabases();
});

describe('agent command outbox on postgres', { skip: !process.env.JOBFLEET_TEST_PG_URL }, () => {
  it('stores the commands of a 12,000-host dispatch in one call', async () => {
    const store = await Store.open({
      databaseUrl: await freshDatabase('postgres'),
      dataDir: tempDir('store'),
    });
    try {
      const hosts = 12_000;
      await new ClusterStore(store.db).enqueue(
        Array.from({ length: hosts }, (_, i) => ({
          hostId: i + 1,
          type: 'task.run',
          stepInstanceId: 7,
          executeCount: 0,
          payload: `sealed-${i + 1}`,
          sentEpoch: i % 3 === 0 ? 1 : null,
        })),
      );
      const rows = await store.db
        .selectFrom('agent_command')
        .select(['host_id', 'payload', 'sent_epoch'])
        .orderBy('host_id')
        .execute();
      assert.equal(rows.length, hosts);
      for (const [i, r] of rows.entries()) {
        assert.equal(Number(r.host_id), i + 1);
        assert.equal(r.payload, `sealed-${i + 1}`);
        assert.equal(r.sent_epoch === null ? null : Number(r.sent_epoch), i % 3 === 0 ? 1 : null);
      }
    } finally {
      await store.close();
    }
  });

  it('claims leave out the hosts asked; sessions are read for 70,000 hosts at once', async () => {
    const store = await Store.open({
      databaseUrl: await freshDatabase('postgres'),
      dataDir: tempDir('store'),
    });
    try {
      const cluster = new ClusterStore(store.db);
      const me = 'server-under-test';
      await cluster.register(me, 'http://127.0.1.1:1');
      await cluster.openSessions([1, 2, 3], me);
      await cluster.enqueue(
        [1, 2, 3].map((hostId) => ({
          hostId,
          type: 'file.offer',
          stepInstanceId: null,
          executeCount: null,
          payload: `sealed-${hostId}`,
          sentEpoch: null,
        })),
      );
      const claimed = await cluster.claimCommands(me, 10, [2]);
      assert.deepEqual(
        claimed.map((c) => c.hostId),
        [1, 3],
      );
      assert.deepEqual(
        (await cluster.claimCommands(me, 10)).map((c) => c.hostId),
        [2],
      );
      const sessions = await cluster.sessions(Array.from({ length: 70_000 }, (_, i) => i + 1));
      assert.deepEqual([...sessions.keys()].sort(), [1, 2, 3]);
      // Hosts no longer in the inventory, 70,000 asked at once: all but the one registered.
      const [kept] = await store.inventory.registerAgentHosts([
        {
          cloudId: 0,
          ip: '127.0.0.9',
          ipv6: '',
          hostname: 'kept',
          osType: 'linux',
          agentId: 'agent-kept',
          agentTokenHash: 'x',
          bizId: null,
        },
      ]);
      const asked = Array.from({ length: 70_000 }, (_, i) => i + 1);
      assert.ok(kept && kept.id <= 70_000);
      assert.deepEqual(
        await cluster.removedAmong(asked),
        asked.filter((id) => id !== kept.id),
      );
    } finally {
      await store.close();
    }
  });
});
