/**
 * The log reads look up only the tasks of the hosts they are asked for, on every engine: by id
 * (each once, in host id order, a host without a task left out) and by address, where the
 * cloud area and the IPv4 address must both match.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob, waitingStep } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`host task reads on ${engine}`, () => {
    it('by id and by address, the asked hosts only', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        // One address in two cloud areas, among many hosts.
        const twins = agentRegistrations(2, '10.7', null).map((r, i) => ({
          ...r,
          cloudId: i,
          ip: '10.7.0.1',
          agentId: `twin-${i}`,
        }));
        const hosts = await store.inventory.registerAgentHosts([
          ...twins,
          ...agentRegistrations(1234, '10.8', null),
        ]);
        const outside = (
          await store.inventory.registerAgentHosts(
            agentRegistrations(1, '10.9', null).map((r) => ({ ...r, agentId: 'outside' })),
          )
        )[0];
        assert.ok(outside);
        const { stepInstanceIds } = await store.executions.createJobInstance(
          newJob('1', 'many', [waitingStep('step', hosts)]),
          true,
        );
        const step = stepInstanceIds[0]!;
        const ex = store.executions;
        const ids = (tasks: { host_id: number }[]) => tasks.map((t) => t.host_id);
        const [a, b] = hosts;
        assert.ok(a && b);

        const all = hosts.map((h) => h.id).sort((x, y) => x - y);
        assert.deepEqual(ids(await ex.hostTasksOf(step, 0, [...all].reverse())), all);
        assert.deepEqual(ids(await ex.hostTasksOf(step, 0, [b.id, a.id, b.id, outside.id])), [a.id, b.id]);
        assert.deepEqual(await ex.hostTasksOf(step, 1, [a.id]), [], 'no such attempt');
        assert.deepEqual(
          await ex.hostTasksOf(step, 0, [a.id]),
          [await ex.getHostTask(step, 0, a.id)],
          'the whole row',
        );

        assert.deepEqual(ids(await ex.hostTasksAt(step, 0, [{ cloudId: 1, ip: '10.7.0.1' }])), [b.id]);
        assert.deepEqual(
          ids(
            await ex.hostTasksAt(step, 0, [
              { cloudId: 1, ip: '10.7.0.1' },
              { cloudId: 0, ip: '10.7.0.1' },
            ]),
          ),
          [a.id, b.id],
        );
        assert.deepEqual(await ex.hostTasksAt(step, 0, [{ cloudId: 2, ip: '10.7.0.1' }]), []);
        assert.deepEqual(await ex.hostTasksAt(step, 0, [{ cloudId: 0, ip: outside.ip }]), []);
        const far = hosts.at(-1);
        assert.ok(far);
        assert.deepEqual(
          ids(await ex.hostTasksAt(step, 0, [{ cloudId: Number(far.cloud_id), ip: far.ip }])),
          [far.id],
        );
      } finally {
        await store.close();
      }
    });
  });
}
