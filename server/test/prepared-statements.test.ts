/**
 * On PostgreSQL each statement text with parameters is prepared once per connection: the
 * backend holds it, the rows are those of an unnamed run, texts without parameters (several
 * statements in one) still run, a read marked to be planned each call never is prepared, and a
 * schema change under a prepared statement (a newer server
 * migrating while this one runs) does not fail a query outside a transaction.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openEngine } from '../src/store/engines.js';
import { planEachCall } from '../src/store/prepared-statements.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

after(async () => {
  await dropFreshDatabases();
});

describe('prepared statements on postgres', { skip: !engines().includes('postgres') }, () => {
  it('are prepared once per connection and give the rows of an unnamed run', async () => {
    const databaseUrl = await freshDatabase('postgres');
    const { db } = openEngine({ databaseUrl, dataDir: tempDir('prepared') });
    try {
      await sql`create table thing (id bigint primary key, name text not null)`.execute(db);
      await sql`insert into thing values (1, 'one'), (2, 'two')`.execute(db);
      const byId = (id: number) =>
        sql<{ id: number; name: string }>`select id, name from thing where id = ${id}`;
      await db.connection().execute(async (conn) => {
        for (let i = 0; i < 3; i++)
          assert.deepEqual((await byId(2).execute(conn)).rows, [{ id: 2, name: 'two' }]);
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements
          where statement = ${byId(0).compile(db).sql}`.execute(conn);
        assert.deepEqual(rows, [{ n: 1 }]);
      });
      // Parameterless text goes through the simple protocol, where several statements may run.
      await sql`begin; set local synchronous_commit = off`.execute(db);
      await sql`commit`.execute(db);
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements
        where statement like 'begin%'`.execute(db);
      assert.deepEqual(rows, [{ n: 0 }]);
    } finally {
      await db.destroy();
    }
  });

  it("stay prepared while the connection idles past pg-pool's default idle timeout", async () => {
    const databaseUrl = await freshDatabase('postgres');
    const { db } = openEngine({ databaseUrl, dataDir: tempDir('prepared') });
    try {
      const backend = sql<{ pid: number; since: Date }>`select pg_backend_pid() as pid,
        (select backend_start from pg_stat_activity where pid = pg_backend_pid()) as since
        where ${1} = 1`;
      const before = (await backend.execute(db)).rows;
      // pg-pool closes a connection idle for 10 s unless told otherwise.
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      const afterIdle = (await backend.execute(db)).rows;
      assert.deepEqual(afterIdle, before);
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements
        where statement = ${backend.compile(db).sql}`.execute(db);
      assert.deepEqual(rows, [{ n: 1 }]);
    } finally {
      await db.destroy();
    }
  });

  it('leave a read planned each call unnamed, planned with its values every time', async () => {
    const databaseUrl = await freshDatabase('postgres');
    const { db } = openEngine({ databaseUrl, dataDir: tempDir('prepared') });
    try {
      await sql`create table thing (id bigint primary key, name text not null)`.execute(db);
      await sql`insert into thing values (1, 'one'), (2, 'two'), (3, 'three')`.execute(db);
      const from = (id: number) =>
        db
          .withoutPlugins()
          .selectFrom(sql<{ id: number; name: string }>`thing`.as('t'))
          .select(['t.id', 't.name'])
          .where('t.id', '>=', id)
          .orderBy('t.id');
      await db.connection().execute(async (conn) => {
        // PostgreSQL would take a prepared statement's generic plan from its sixth run.
        for (let i = 0; i < 8; i++)
          assert.deepEqual(
            (await planEachCall(conn, from(2))).map((r) => [Number(r.id), r.name]),
            [
              [2, 'two'],
              [3, 'three'],
            ],
          );
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements
          where statement like '%thing%'`.execute(conn);
        assert.deepEqual(rows, [{ n: 0 }]);
      });
    } finally {
      await db.destroy();
    }
  });

  it('survive a schema change under them', async () => {
    const databaseUrl = await freshDatabase('postgres');
    const { db } = openEngine({ databaseUrl, dataDir: tempDir('prepared') });
    const other = new pg.Client({ connectionString: databaseUrl });
    await other.connect();
    try {
      await sql`create table thing (id bigint primary key, name text not null)`.execute(db);
      await sql`insert into thing values (1, 'one')`.execute(db);
      const all = (id: number) => sql<Record<string, unknown>>`select * from thing where id = ${id}`;
      const backend = sql<{ pid: number }>`select pg_backend_pid() as pid where 1 = ${1}`;
      const pids: number[] = [];

      // Inside a transaction the statement fails, as any statement may; the next one runs.
      await db.connection().execute(async (conn) => {
        pids.push((await backend.execute(conn)).rows[0]?.pid ?? 0);
        assert.deepEqual((await all(1).execute(conn)).rows, [{ id: 1, name: 'one' }]);
      });
      await other.query('alter table thing add column tag text');
      await db.connection().execute(async (conn) => {
        pids.push((await backend.execute(conn)).rows[0]?.pid ?? 0);
        await sql`begin`.execute(conn);
        await assert.rejects(all(1).execute(conn), /cached plan must not change result type/);
        await sql`rollback`.execute(conn);
        assert.deepEqual((await all(1).execute(conn)).rows, [{ id: 1, name: 'one', tag: null }]);
      });
      assert.equal(pids[0], pids[1], 'both ran on one connection');
      // That connection was closed on its release: no statement of the old schema is left.
      assert.notEqual((await backend.execute(db)).rows[0]?.pid, pids[0]);

      // Outside a transaction the change is not seen at all: the statement runs again, unnamed.
      const before = (await backend.execute(db)).rows[0]?.pid;
      assert.deepEqual((await all(1).execute(db)).rows, [{ id: 1, name: 'one', tag: null }]);
      await other.query('alter table thing add column size int');
      assert.equal((await backend.execute(db)).rows[0]?.pid, before);
      assert.deepEqual((await all(1).execute(db)).rows, [{ id: 1, name: 'one', tag: null, size: null }]);
    } finally {
      await other.end();
      await db.destroy();
    }
  });
});
