/**
 * Task write batches without a result commit without a sync on SQLite (see commitTaskWrites);
 * every other commit stays synced. The connection's setting must come back to FULL after each
 * such batch, whether it committed or failed, or every later commit would be unsynced too.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { Store } from '../src/store/store.js';
import { tempDir } from './helpers/processes.js';

const FULL = 2;

describe('task write sync policy on SQLite', () => {
  let store: Store | undefined;
  after(async () => {
    await store?.close();
  });

  const synchronous = async (s: Store): Promise<number> => {
    const r = await sql<{ synchronous: number }>`pragma synchronous`.execute(s.db);
    return Number(r.rows[0]?.synchronous);
  };

  it('restores synchronous=FULL after a batch without results, committed or failed', async () => {
    store = await Store.open({ databaseUrl: undefined, dataDir: tempDir('task-write-sync') });
    assert.equal(store.caps.name, 'sqlite');
    assert.ok(store.caps.relaxedTransaction, 'SQLite relaxes result-free batches');
    assert.equal(await synchronous(store), FULL);

    // A start of a task that does not exist: nothing changes, the transaction commits.
    const applied = await store.executions.commitTaskWrites([
      { stepInstanceId: 999_999, executeCount: 0, hostId: 1, chunks: [], status: 7, startTime: Date.now() },
    ]);
    assert.equal(applied.size, 0);
    assert.equal(await synchronous(store), FULL);

    // Output without bytes breaks a NOT NULL column: the batch fails and is rolled back.
    await assert.rejects(
      store.executions.commitTaskWrites([
        {
          stepInstanceId: 999_999,
          executeCount: 0,
          hostId: 1,
          chunks: [{ offset: 0, data: null as unknown as Buffer }],
        },
      ]),
    );
    assert.equal(await synchronous(store), FULL);
  });
});
