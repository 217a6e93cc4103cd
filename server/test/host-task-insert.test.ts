/**
 * A job's host tasks are inserted in chunks, full ones through a statement compiled once per
 * engine: a step of several full chunks and a remainder stores every host once, with the
 * fields it was given (nulls, and text special inside PostgreSQL's array literals, included), on
 * every engine.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { distinctAscending, TargetsChanged } from '../src/store/host-tasks-by-id.js';
import type { HostsById } from '../src/store/host-tasks-by-id.js';
import type { RunnableTask } from '../src/store/execution-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

/** Nulls, and text that means something inside a PostgreSQL array literal. */
function agentIdOf(i: number, registered: string | null): string | null {
  if (i % 5 === 0) return null;
  if (i % 11 === 0) return 'NULL';
  if (i % 13 === 0) return `a"b\\c,{d} e'f`;
  return registered;
}

interface Addressed {
  ip: string;
  ipv6: string;
  cloud_id: number | string;
}

/** The task exists and carries its host's address as the host had it when the step was made. */
function assertAddressOf<T extends Addressed>(
  t: T | undefined,
  h: Addressed & { id: number },
): asserts t is T {
  assert.ok(t, `task of host ${h.id}`);
  assert.equal(t.ip, h.ip);
  assert.equal(t.ipv6, h.ipv6);
  assert.equal(Number(t.cloud_id), Number(h.cloud_id));
}

for (const engine of engines()) {
  describe(`host task insert on ${engine}`, () => {
    it('stores every host of a 1,234-host step, twice over, with its own fields', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const hosts = await store.inventory.registerAgentHosts(agentRegistrations(1234, '10.8', null));
        for (const round of [0, 1]) {
          const { stepInstanceIds } = await store.executions.createJobInstance(
            newJob('1', `job ${round}`, [
              {
                name: 'step',
                type: 1,
                spec: { kind: 'script' },
                hosts: hosts.map((h, i) => ({
                  hostId: h.id,
                  cloudId: Number(h.cloud_id),
                  ip: h.ip,
                  ipv6: h.ipv6,
                  agentId: agentIdOf(i, h.agent_id),
                  status: i % 7 === 0 ? 2 : 5,
                  batch: i % 4,
                })),
              },
            ]),
            true,
          );
          const tasks = await store.executions.listHostTasks(stepInstanceIds[0]!, 0);
          assert.equal(tasks.length, hosts.length);
          const byHost = new Map(tasks.map((t) => [t.host_id, t]));
          for (const [i, h] of hosts.entries()) {
            const t = byHost.get(h.id);
            assertAddressOf(t, h);
            assert.equal(t.agent_id, agentIdOf(i, h.agent_id));
            assert.equal(t.status, i % 7 === 0 ? 2 : 5);
            assert.equal(t.batch, i % 4);
            assert.equal(t.exit_code, null);
            assert.equal(t.error_code, 0);
            assert.equal(t.tag, '');
            assert.equal(Number(t.dropped_bytes), 0);
            assert.equal(t.start_time, null);
            assert.equal(t.log_bytes, 0);
          }
        }
      } finally {
        await store.close();
      }
    });

    it('a step named by host ids: the insert reads each host, in the scope, or stores nothing', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const inv = store.inventory;
        await inv.createBiz(2, 'two');
        await inv.createBiz(3, 'three');
        const registered = await inv.registerAgentHosts(agentRegistrations(1234, '10.9', 2));
        // Hosts without an agent start as "agent not installed", as target resolution makes them.
        const bare = await inv.addHost({
          cloudId: 0,
          ip: '10.10.0.1',
          hostname: 'bare',
          osType: 'linux',
          bizId: 2,
        });
        const elsewhere = await inv.addHost({
          cloudId: 0,
          ip: '10.10.0.2',
          hostname: 'b3',
          osType: 'linux',
          bizId: 3,
        });
        const hosts = [...registered, bare].reverse();
        const job = (targets: HostsById) =>
          store.executions.createJobInstance(
            newJob('2', 'by id', [
              { name: 'step', type: 1, spec: { kind: 'script' }, hosts: [], hostsById: targets },
            ]),
            true,
          );
        const ids = hosts.map((h) => h.id);
        for (const batches of [null, ids.map((_, i) => 1 + Math.floor(i / 500))]) {
          const { stepInstanceIds } = await job({ ids, bizIds: [2], batches });
          const step = await store.executions.getStep(stepInstanceIds[0]!);
          assert.ok(step);
          assert.equal(step.current_batch, batches ? 1 : 0);
          const byHost = new Map(
            (await store.executions.listHostTasks(step.id, 0)).map((t) => [t.host_id, t]),
          );
          assert.equal(byHost.size, hosts.length);
          for (const [i, h] of hosts.entries()) {
            const t = byHost.get(h.id);
            assertAddressOf(t, h);
            assert.equal(t.agent_id, h.agent_id);
            assert.equal(t.status, h.agent_id ? 5 : 18);
            assert.equal(t.batch, batches ? 1 + Math.floor(i / 500) : 0);
            assert.equal(t.exit_code, null);
            assert.equal(t.error_code, 0);
            assert.equal(t.log_bytes, 0);
          }
        }
        // A small step hands its tasks back with the job, as stored: the engine starts from them.
        const few = hosts.slice(0, 5).map((h) => h.id);
        for (const batches of [null, [1, 1, 2, 2, 3]]) {
          const { running } = await job({ ids: few, bizIds: [2], batches });
          assert.ok(running?.tasks);
          const stored = await store.executions.listHostTasks(running.step.id, 0);
          const shape = (ts: readonly RunnableTask[]) =>
            ts
              .map(({ host_id, status, log_bytes, batch, version }) => ({
                host_id,
                status,
                log_bytes,
                batch,
                version,
              }))
              .sort((a, b) => a.host_id - b.host_id);
          assert.deepEqual(shape(running.tasks), shape(stored));
          assert.equal(stored.length, few.length);
        }
        // A host that does not exist, or is in another business: nothing of the job is stored.
        const jobsBefore = (await store.db.selectFrom('job_instance').select('id').execute()).length;
        const tasksBefore = (await store.db.selectFrom('host_task').select('host_id').execute()).length;
        for (const extra of [987_654, elsewhere.id]) {
          await assert.rejects(job({ ids: [...ids, extra], bizIds: [2], batches: null }), TargetsChanged);
          await assert.rejects(job({ ids: [...few, extra], bizIds: [2], batches: null }), TargetsChanged);
        }
        assert.equal((await store.db.selectFrom('job_instance').select('id').execute()).length, jobsBefore);
        assert.equal(
          (await store.db.selectFrom('host_task').select('host_id').execute()).length,
          tasksBefore,
        );
      } finally {
        await store.close();
      }
    });

    it(
      "a step's spec naming 50,000 hosts is stored lz4-compressed, where PostgreSQL has lz4",
      { skip: engine === 'sqlite' && 'SQLite does not compress values' },
      async () => {
        const store = await Store.open({
          databaseUrl: await freshDatabase(engine),
          dataDir: tempDir('store'),
        });
        try {
          const ids = Array.from({ length: 50_000 }, (_, i) => 1001 + i);
          const spec = { kind: 'script', targetServer: { host_id_list: ids } };
          const { stepInstanceIds } = await store.executions.createJobInstance(
            newJob('1', 'wide', [{ name: 'step', type: 1, spec, hosts: [] }]),
            false,
          );
          const { rows } = await sql<{ lz4: boolean; used: string | null; spec: string }>`select
              (select 'lz4' = any(enumvals) from pg_settings where name = 'default_toast_compression') as lz4,
              pg_column_compression(spec) as used, spec
            from step_instance where id = ${stepInstanceIds[0]}`.execute(store.db);
          const [row] = rows;
          assert.ok(row);
          assert.deepEqual(JSON.parse(row.spec), spec);
          assert.equal(row.used, row.lz4 ? 'lz4' : 'pglz');
        } finally {
          await store.close();
        }
      },
    );
  });
}

describe('host ids of a step that does not roll', () => {
  it('are distinct and ascending, whatever the order and repeats named', () => {
    assert.deepEqual(distinctAscending([9, 3, 3, 2 ** 40, 1, 9, 7, 1]), [1, 3, 7, 9, 2 ** 40]);
    assert.deepEqual(distinctAscending([5]), [5]);
    const named = Array.from({ length: 5000 }, (_, i) => ((i * 7919) % 4001) + 1);
    assert.deepEqual(
      distinctAscending(named),
      [...new Set(named)].sort((a, b) => a - b),
    );
  });
});
