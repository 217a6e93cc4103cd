/**
 * The audit log: who did what, to what, from where, and how it ended. Rows are appended and
 * only ever removed by age (retention), never edited.
 */
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import { onConnectionAround } from './connection-around.js';
import type { StatementsAround } from './connection-around.js';
import type { EngineCapabilities } from './engines.js';
import { deleteInPages } from './paged-delete.js';
import type { AuditLogTable, Database } from './schema.js';

export type AuditEntry = Selectable<AuditLogTable>;

export interface AuditRecord {
  actorKind: 'app' | 'user' | 'admin' | 'agent' | 'system';
  appCode?: string;
  username?: string;
  scopeType?: string;
  scopeId?: string;
  action: string;
  target?: string;
  outcome: 'ok' | 'refused' | 'error';
  code?: number;
  sourceIp?: string;
  /** Further facts. Callers must never put a secret here. */
  detail?: Record<string, unknown>;
}

export interface AuditQuery {
  fromTime?: number;
  toTime?: number;
  actorKind?: string;
  appCode?: string;
  username?: string;
  action?: string;
  outcome?: string;
  /** Entries with an id below this one (paging newest first). */
  beforeId?: number;
  limit: number;
}

export class AuditStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: EngineCapabilities['name'],
    /**
     * Where the engine allows it (SQLite, engines.ts relaxedTransaction) an entry's commit does
     * not wait for the disk. An entry acknowledges nothing (the call it describes has answered
     * already), and on SQLite a sync there stops the server's only thread while the job that call
     * started is running. A crash of the process keeps the entry; the next durable commit, or the
     * WAL checkpoint within a quarter second, syncs it.
     */
    private readonly around?: StatementsAround,
  ) {}

  async record(r: AuditRecord, at = Date.now()): Promise<void> {
    await this.recordMany([{ ...r, at }]);
  }

  /** Several entries in one statement (one commit), each with the time it happened. */
  async recordMany(entries: readonly (AuditRecord & { at: number })[]): Promise<void> {
    if (!this.around) return insertAuditEntries(this.db, entries);
    await onConnectionAround(this.db, this.around, (conn) => insertAuditEntries(conn, entries));
  }

  /** Newest first. */
  async list(q: AuditQuery): Promise<AuditEntry[]> {
    let query = this.db.selectFrom('audit_log').selectAll();
    if (q.fromTime !== undefined) query = query.where('at', '>=', q.fromTime);
    if (q.toTime !== undefined) query = query.where('at', '<=', q.toTime);
    if (q.actorKind !== undefined) query = query.where('actor_kind', '=', q.actorKind);
    if (q.appCode !== undefined) query = query.where('app_code', '=', q.appCode);
    if (q.username !== undefined) query = query.where('username', '=', q.username);
    if (q.action !== undefined) query = query.where('action', '=', q.action);
    if (q.outcome !== undefined) query = query.where('outcome', '=', q.outcome);
    if (q.beforeId !== undefined) query = query.where('id', '<', q.beforeId);
    return query.orderBy('id', 'desc').limit(q.limit).execute();
  }

  /** Removes entries older than `before` (retention), in pages; returns how many. */
  async prune(before: number, page = 5000): Promise<number> {
    return deleteInPages(page, () =>
      this.db
        .deleteFrom('audit_log')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('audit_log as a')
            .select('a.id')
            .where('a.at', '<', before)
            .orderBy('a.id')
            .limit(page),
        )
        .executeTakeFirst(),
    );
  }

  /**
   * Entries about one target made in its own scope, oldest first: the target is the whole value
   * (`job_instance:12`) or its first label (`job_instance:12 step_instance:34`). Both sort from
   * the target up to the target followed by `!` (the byte after the space) in byte order, a
   * range the target index (migration 0051) finds without walking the log since the job was
   * created; within it, the target itself and what starts with it and a space (LIKE's `_`
   * matched any character there). The scope is filtered before the limit: another scope's calls
   * naming the target (refused, but audited) could otherwise fill the limit and hide its own.
   */
  async listForTarget(
    target: string,
    scope: { type: string; id: string },
    fromTime: number,
    limit: number,
  ): Promise<AuditEntry[]> {
    // PostgreSQL compares text by the database's collation, which need not be byte order.
    const bytes = this.engine === 'postgres' ? sql`target collate "C"` : sql`target`;
    return this.db
      .selectFrom('audit_log')
      .selectAll()
      .where('at', '>=', fromTime)
      .where(sql<boolean>`${bytes} >= ${target} and ${bytes} < ${`${target}!`}`)
      .where(sql<boolean>`(target = ${target} or ${bytes} >= ${`${target} `})`)
      .where('scope_type', '=', scope.type)
      .where('scope_id', '=', scope.id)
      .orderBy('id', 'asc')
      .limit(limit)
      .execute();
  }
}

/**
 * Inserts audit entries with `db`, which may be a transaction: a write that records its own
 * entries (agent registration) stores them in its commit.
 */
export async function insertAuditEntries(
  db: Kysely<Database>,
  entries: readonly (AuditRecord & { at: number })[],
): Promise<void> {
  if (entries.length === 0) return;
  await db
    .insertInto('audit_log')
    .values(
      entries.map((r) => ({
        at: r.at,
        actor_kind: r.actorKind,
        app_code: noNul(r.appCode ?? ''),
        username: noNul(r.username ?? ''),
        scope_type: noNul(r.scopeType ?? ''),
        scope_id: noNul(r.scopeId ?? ''),
        action: noNul(r.action),
        target: noNul(r.target ?? ''),
        outcome: r.outcome,
        code: r.code ?? 0,
        source_ip: r.sourceIp ?? '',
        detail: JSON.stringify(r.detail ?? {}),
      })),
    )
    .execute();
}

/**
 * Names in an entry are what a caller claimed, refused or not; PostgreSQL takes no NUL in text,
 * and one entry holding one would lose every entry of its batch.
 */
function noNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\ufffd') : text;
}
