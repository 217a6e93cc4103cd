/**
 * The two storage engines and what sets them apart. Code branches on a capability, never on
 * the engine's name, so a third engine is a new row here rather than a hunt through callers.
 */
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteAdapter, SqliteDialect, sql } from 'kysely';
import type { RawBuilder, SqliteStatement } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { preparingPool } from './prepared-statements.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import type { Checkpointer } from './sqlite-checkpointer.js';

export interface EngineCapabilities {
  name: 'sqlite' | 'postgres';
  /** Auto-incrementing 64-bit key column type. */
  idType: 'integer' | 'bigserial';
  /** Binary column type. */
  binaryType: 'blob' | 'bytea';
  /** Several servers may share the database; rows are claimed with SKIP LOCKED. */
  supportsSkipLocked: boolean;
  /** Servers can wake each other through the database (LISTEN/NOTIFY). */
  supportsListenNotify: boolean;
  /** One writer at a time: writes are grouped into few transactions to stay fast. */
  singleWriter: boolean;
  /**
   * Statements around a write that need not wait for the disk (data whose loss in a power cut
   * is harmless, such as seen nonces), run on one connection: `before`, the write, `after`
   * (also when the write fails). Other writes stay fully durable.
   */
  relaxedCommit: { before: readonly string[]; after: readonly string[] };
  /**
   * Several server processes may use the database at once: what they must agree on (shared
   * secrets, the bytes of stored files) is kept in it rather than in a server's data directory.
   */
  sharedByServers: boolean;
  /**
   * Statements run on a transaction's connection before and after it so that its commit does
   * not wait for the disk; only where the database lives and dies with the server process
   * (undefined otherwise). There, a crash of the process keeps such a commit, and a power cut
   * that loses it also restarts the server, which then rebuilds its state from the store.
   * A database server of its own can crash and lose it while this server runs on, believing it
   * stored.
   */
  relaxedTransaction: { before: readonly string[]; after: readonly string[] } | undefined;
  /**
   * The database's clock (ms since the epoch) in SQL, where several servers share the database:
   * the times they compare are read from it, as the clocks of their machines may disagree.
   * Undefined where one server has the database: its own clock is the only one.
   */
  clockMs: RawBuilder<number> | undefined;
}

const SQLITE: EngineCapabilities = {
  name: 'sqlite',
  idType: 'integer',
  binaryType: 'blob',
  supportsSkipLocked: false,
  supportsListenNotify: false,
  singleWriter: true,
  // In WAL mode a NORMAL commit is not synced; the next FULL commit syncs it along.
  relaxedCommit: { before: ['pragma synchronous = NORMAL'], after: ['pragma synchronous = FULL'] },
  sharedByServers: false,
  relaxedTransaction: { before: ['pragma synchronous = NORMAL'], after: ['pragma synchronous = FULL'] },
  clockMs: undefined,
};

const POSTGRES: EngineCapabilities = {
  name: 'postgres',
  idType: 'bigserial',
  binaryType: 'bytea',
  supportsSkipLocked: true,
  supportsListenNotify: true,
  singleWriter: false,
  // One round trip (no parameters: the simple protocol takes two statements); COMMIT of a
  // transaction that failed rolls it back.
  relaxedCommit: { before: ['begin; set local synchronous_commit = off'], after: ['commit'] },
  sharedByServers: true,
  relaxedTransaction: undefined,
  // statement_timestamp(), not now(): the time of the statement even inside a transaction; and
  // not clock_timestamp(), which is volatile, so a comparison with it bounds no index scan.
  clockMs: sql<number>`(extract(epoch from statement_timestamp()) * 1000)::bigint`,
};

/**
 * SQLite's schema changes are transactional, though Kysely's adapter says not: told so, the
 * migrator runs the pending migrations and their records in one transaction, as on PostgreSQL.
 * Statement by statement, a server killed midway through an upgrade left a migration half
 * applied and unrecorded, and every start after failed on what it had already made.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class TransactionalDdlSqliteDialect extends SqliteDialect {
  override createAdapter(): SqliteAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

export interface OpenedEngine {
  db: Kysely<Database>;
  caps: EngineCapabilities;
  /** Human-readable location for logs, never containing a password. */
  location: string;
}

// int8 and numeric come back from pg as strings; every id and timestamp we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

/**
 * Kysely prepares every query anew; preparing is a large share of a small query's cost in
 * SQLite, so prepared statements are kept per SQL text (bounded, oldest dropped first).
 */
function withStatementCache(sqlite: SQLite.Database, checkpointer: Checkpointer | undefined, max = 512) {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: async () => {
      await checkpointer?.stop();
      sqlite.close();
    },
    prepare(sql: string): SqliteStatement {
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = objectRows(sqlite.prepare(sql));
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

/**
 * A reading statement whose row objects are made here from better-sqlite3's row arrays: it
 * builds each object property by property, which for wide rows cost more than the query (50,000
 * hosts: 600 ms of CPU, against 390 ms this way). Same keys, in column order, later duplicate
 * names winning, as better-sqlite3's own objects.
 */
function objectRows(stmt: SQLite.Statement): SqliteStatement {
  if (!stmt.reader) return stmt;
  const columns = stmt.columns().map((c) => c.name);
  stmt.raw(true);
  const toObject = (row: unknown[]): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) o[columns[i]!] = row[i];
    return o;
  };
  return {
    reader: true,
    all: (params) => (stmt.all(params) as unknown[][]).map(toObject),
    run: (params) => stmt.run(params),
    *iterate(params) {
      for (const row of stmt.iterate(params) as IterableIterator<unknown[]>) yield toObject(row);
    },
  };
}

export function openEngine(opts: {
  databaseUrl: string | undefined;
  dataDir: string;
  /** Cluster mode: every connection names its server, which the fence trigger checks. */
  serverId?: string | undefined;
  /**
   * Cluster mode: PostgreSQL ends a session left idle inside a transaction this long. A paused
   * server (SIGSTOP, a VM stall) would otherwise hold its row locks, and the share lock the
   * fence takes on its own liveness row, for as long as it sleeps: nobody could declare it dead.
   */
  idleInTransactionMs?: number | undefined;
  onPoolError?: (err: Error) => void;
}): OpenedEngine {
  const url = opts.databaseUrl;
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const settings = [
      // The application name lets a sweeper end the connections of a server it declares dead
      // (ClusterStore.markSilentDead).
      ...(opts.serverId
        ? [`-c jobfleet.server_id=${opts.serverId}`, `-c application_name=jobfleet:${opts.serverId}`]
        : []),
      ...(opts.idleInTransactionMs
        ? [`-c idle_in_transaction_session_timeout=${opts.idleInTransactionMs}`]
        : []),
    ];
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      // Idle connections stay open. pg-pool's default closed one after 10 s idle, so the calls
      // after a quiet spell, or beyond what the background work keeps busy, opened new backends
      // over and over: each a fork and a password exchange in PostgreSQL, its statements
      // prepared again (the first statement after 11 s idle: 30-44 ms, kept: 1.7-2.5 ms). Ten
      // backends per server are few; one PostgreSQL ends (a restart, a sweep) leaves the pool
      // on its error event.
      idleTimeoutMillis: 0,
      ...(settings.length > 0 ? { options: settings.join(' ') } : {}),
    });
    // An idle connection dropped by a PostgreSQL restart must not crash the server; the next
    // query opens a new one.
    pool.on('error', (err) => opts.onPoolError?.(err));
    // A connection lost while checked out (inside a transaction, between queries) emits on the
    // client itself; the transaction fails and the caller retries, the process lives on.
    pool.on('connect', (client) => client.on('error', (err) => opts.onPoolError?.(err)));
    const safe = new URL(url);
    safe.password = '';
    return {
      db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) }),
      caps: POSTGRES,
      location: safe.toString(),
    };
  }
  const file = url ? url.replace(/^sqlite:(\/\/)?/, '') : path.join(opts.dataDir, 'jobfleet.db');
  if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before we acknowledge it, so power loss loses nothing acknowledged.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // lower() for every script, not ASCII alone: the name filters (list-filters.ts) match lower(column)
  // against text lowered by JavaScript, as PostgreSQL's lower() does in a UTF-8 database.
  sqlite.function('lower', { deterministic: true }, (s: unknown) =>
    typeof s === 'string' ? s.toLowerCase() : s,
  );
  const checkpointer = file === ':memory:' ? undefined : startCheckpointer(sqlite, file);
  return {
    db: new Kysely<Database>({
      dialect: new TransactionalDdlSqliteDialect({ database: withStatementCache(sqlite, checkpointer) }),
    }),
    caps: SQLITE,
    location: file,
  };
}
