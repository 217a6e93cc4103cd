/**
 * The job event log: every job, step and host status change and every output append, written
 * in the same transaction as the change itself, so the log can never say something the store
 * does not (nor miss something it does). Ids grow in commit order: on PostgreSQL, transactions
 * that append events take one advisory lock right before appending and hold it to commit, so a
 * reader that saw id N will never later see a new id below N. Streams resume from the log by
 * id (`Last-Event-ID`), across reconnects, server restarts and servers of a cluster.
 */
import { sql } from 'kysely';
import type { Insertable, Kysely, RawBuilder, Selectable, Transaction } from 'kysely';
import type { EngineCapabilities } from './engines.js';
import { deleteInPages } from './paged-delete.js';
import { insertRows } from './row-insert.js';
import type { Database, JobEventTable } from './schema.js';

export type JobEventKind = 'job' | 'step' | 'batch' | 'host' | 'log';
export const STATUS_EVENT_KINDS: readonly JobEventKind[] = ['job', 'step', 'batch'];

export type JobEventRow = Selectable<JobEventTable>;

export interface PendingEvent {
  jobInstanceId: number;
  kind: JobEventKind;
  data: Record<string, unknown>;
}

/**
 * PostgreSQL: the lock and the rows in one statement (one round trip). The lock is taken
 * before any row gets its id (the rows wait for the lock's one row), the ids follow the
 * events' order.
 */
async function appendLocked(tx: Transaction<Database>, rows: Insertable<JobEventTable>[]): Promise<void> {
  await sql`with ${lockedInsert(rows, rows.length, sql`true`)} select 1`.execute(tx);
}

/**
 * The CTEs `event_lock` and `appended` of appendLocked: rows from `from` on are appended only
 * where `condition` (SQL over the statement's other CTEs) holds.
 */
function lockedInsert(
  rows: Insertable<JobEventTable>[],
  from: number,
  condition: RawBuilder<unknown>,
): RawBuilder<unknown> {
  const column = <K extends keyof Insertable<JobEventTable>>(k: K) => rows.map((r) => r[k]);
  const onlyIf = rows.map((_, i) => i >= from);
  return sql`event_lock as (select pg_advisory_xact_lock(${EVENT_LOCK_KEY})),
    appended as (insert into job_event (job_instance_id, scope_type, scope_id, kind, data, at)
    select e.job_instance_id, e.scope_type, e.scope_id, e.kind, e.data, e.at
    from event_lock, unnest(
      ${column('job_instance_id')}::bigint[], ${column('scope_type')}::text[],
      ${column('scope_id')}::text[], ${column('kind')}::text[], ${column('data')}::text[],
      ${column('at')}::bigint[], ${onlyIf}::boolean[]
    ) with ordinality as e(job_instance_id, scope_type, scope_id, kind, data, at, only_if, n)
    where not e.only_if or (${condition})
    order by e.n)`;
}

/**
 * PostgreSQL: the CTEs `event_lock` and `appended` of a statement that is a whole write on its
 * own (no transaction around it). The lock waits for `after` (SQL naming the statement's last
 * change), so it is taken after every row lock of the statement, as in a transaction whose last
 * statement appends, and before any event gets its id, as in lockedInsert; the statement holds
 * it to its commit. `events` selects (n, job_instance_id, scope_type, scope_id, kind, data) over
 * the statement's other CTEs; they are appended in the order of n.
 */
function lockedInsertAfter(
  after: RawBuilder<unknown>,
  events: RawBuilder<unknown>,
  at: number,
): RawBuilder<unknown> {
  return sql`event_lock as (select pg_advisory_xact_lock(${EVENT_LOCK_KEY}) from (${after}) as after_changes),
    appended as (insert into job_event (job_instance_id, scope_type, scope_id, kind, data, at)
    select e.job_instance_id, e.scope_type, e.scope_id, e.kind, e.data, ${at}::bigint
    from event_lock, (${events}) as e
    order by e.n)`;
}

/**
 * PostgreSQL: the CTEs `event_lock` and `appended` for one event of a job that the same
 * statement stores: its job id and data are SQL over that statement's other CTEs (`from`), so
 * the job, its rows and its event cost one statement (see lockedInsertAfter).
 */
export function lockedInsertOfNewJob(e: {
  after: RawBuilder<unknown>;
  from: RawBuilder<unknown>;
  jobInstanceId: RawBuilder<unknown>;
  scope: { type: string; id: string };
  kind: JobEventKind;
  data: RawBuilder<unknown>;
  at: number;
}): RawBuilder<unknown> {
  return lockedInsertAfter(
    e.after,
    sql`select 0 as n, ${e.jobInstanceId} as job_instance_id, ${e.scope.type}::text as scope_type,
      ${e.scope.id}::text as scope_id, ${e.kind}::text as kind, (${e.data})::text as data from ${e.from}`,
    e.at,
  );
}

/** An event whose data (JSON text) and whether it is appended at all are SQL over a statement's CTEs. */
export interface EventInSql {
  jobInstanceId: number;
  kind: JobEventKind;
  data: RawBuilder<unknown>;
  when: RawBuilder<unknown>;
}

/** Arbitrary constant naming the event log's advisory lock. */
const EVENT_LOCK_KEY = 7_411_015;
const INSERT_CHUNK = 500;
const CACHE_MAX = 20_000;

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  // Job scopes and step owners never change; the caches only need a bound, not an order.
  if (map.size >= CACHE_MAX) map.clear();
  map.set(key, value);
}

export class JobEventLog {
  private readonly scopeOfJob = new Map<number, { type: string; id: string }>();
  private readonly jobOfStep = new Map<number, number>();
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: EngineCapabilities,
  ) {}

  /**
   * What a job's own transaction stores, known before it commits: its events and its first
   * results need not read it back. `forget` when that transaction fails (SQLite may hand the
   * ids out again).
   */
  storing(jobInstanceId: number, scope: { type: string; id: string }, stepIds: readonly number[]): void {
    remember(this.scopeOfJob, jobInstanceId, scope);
    for (const id of stepIds) remember(this.jobOfStep, id, jobInstanceId);
  }

  forget(jobInstanceId: number, stepIds: readonly number[]): void {
    this.scopeOfJob.delete(jobInstanceId);
    for (const id of stepIds) this.jobOfStep.delete(id);
  }

  /** The job each step belongs to (cached; a step never moves). */
  async jobsOfSteps(tx: Kysely<Database>, stepIds: Iterable<number>): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const missing: number[] = [];
    for (const id of new Set(stepIds)) {
      const job = this.jobOfStep.get(id);
      if (job === undefined) missing.push(id);
      else out.set(id, job);
    }
    for (let i = 0; i < missing.length; i += INSERT_CHUNK) {
      const rows = await tx
        .selectFrom('step_instance')
        .select(['id', 'job_instance_id'])
        .where('id', 'in', missing.slice(i, i + INSERT_CHUNK))
        .execute();
      for (const r of rows) {
        out.set(r.id, r.job_instance_id);
        remember(this.jobOfStep, r.id, r.job_instance_id);
      }
    }
    return out;
  }

  /** Appends events as the last statements of `tx`; call notify() once `tx` committed. */
  async append(tx: Transaction<Database>, events: readonly PendingEvent[], now = Date.now()): Promise<void> {
    if (events.length === 0) return;
    const rows = await this.rowsOf(tx, events, now);
    if (!this.caps.singleWriter) return appendLocked(tx, rows);
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await insertRows(tx, this.caps.name, 'job_event', rows.slice(i, i + INSERT_CHUNK), (r) =>
        tx.insertInto('job_event').values(r),
      );
    }
  }

  /**
   * PostgreSQL: the append as CTEs of a statement that changes something else, so both cost one
   * round trip; `conditional` events come last and only where `condition` holds (SQL over the
   * statement's other CTEs). The statement must be the transaction's last but its commit, as
   * an append is (the lock is held to the commit).
   */
  async appendingCtes(
    tx: Transaction<Database>,
    events: readonly PendingEvent[],
    conditional: readonly PendingEvent[],
    condition: RawBuilder<unknown>,
    now = Date.now(),
  ): Promise<RawBuilder<unknown>> {
    const rows = await this.rowsOf(tx, [...events, ...conditional], now);
    return lockedInsert(rows, events.length, condition);
  }

  /**
   * PostgreSQL: the CTEs `event_lock` and `appended` of a statement that is a whole write on
   * its own, for events decided by that statement (see EventInSql and lockedInsertAfter).
   */
  async appendingInSql(
    db: Kysely<Database>,
    events: readonly EventInSql[],
    after: RawBuilder<unknown>,
    now = Date.now(),
  ): Promise<RawBuilder<unknown>> {
    await this.cacheScopes(db, events);
    const values = events.map((e, n) => {
      const scope = this.scopeOf(e.jobInstanceId);
      return sql`(${n}::integer, ${e.jobInstanceId}::bigint, ${scope.type}::text, ${scope.id}::text, ${e.kind}::text, (${e.data})::text, (${e.when})::boolean)`;
    });
    return lockedInsertAfter(
      after,
      sql`select * from (values ${sql.join(values)}) as v(n, job_instance_id, scope_type, scope_id, kind, data, applies)
        where v.applies`,
      now,
    );
  }

  private async rowsOf(
    tx: Kysely<Database>,
    events: readonly PendingEvent[],
    now: number,
  ): Promise<Insertable<JobEventTable>[]> {
    await this.cacheScopes(tx, events);
    return events.map((e) => {
      const scope = this.scopeOf(e.jobInstanceId);
      return {
        job_instance_id: e.jobInstanceId,
        scope_type: scope.type,
        scope_id: scope.id,
        kind: e.kind,
        data: JSON.stringify(e.data),
        at: now,
      };
    });
  }

  /** Reads the scopes of the events' jobs that the cache lacks. */
  private async cacheScopes(
    db: Kysely<Database>,
    events: readonly { jobInstanceId: number }[],
  ): Promise<void> {
    const missing = [...new Set(events.map((e) => e.jobInstanceId))].filter((id) => !this.scopeOfJob.has(id));
    for (let i = 0; i < missing.length; i += INSERT_CHUNK) {
      const rows = await db
        .selectFrom('job_instance')
        .select(['id', 'scope_type', 'scope_id'])
        .where('id', 'in', missing.slice(i, i + INSERT_CHUNK))
        .execute();
      for (const r of rows) remember(this.scopeOfJob, r.id, { type: r.scope_type, id: r.scope_id });
    }
  }

  private scopeOf(jobInstanceId: number): { type: string; id: string } {
    return this.scopeOfJob.get(jobInstanceId) ?? { type: '', id: '' };
  }

  /** Wakes the streams of this server; streams of other servers find the events by polling. */
  notify(): void {
    for (const l of this.listeners) l();
  }

  onAppended(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async listOfJob(jobInstanceId: number, afterId: number, limit: number): Promise<JobEventRow[]> {
    return this.db
      .selectFrom('job_event')
      .selectAll()
      .where('job_instance_id', '=', jobInstanceId)
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /** Status events (job, step, batch) of every job of a scope, after `afterId` up to `upTo`. */
  async listOfScope(
    scopeType: string,
    scopeId: string,
    afterId: number,
    upTo: number,
    limit: number,
  ): Promise<JobEventRow[]> {
    return this.db
      .selectFrom('job_event')
      .selectAll()
      .where('scope_type', '=', scopeType)
      .where('scope_id', '=', scopeId)
      .where('id', '>', afterId)
      .where('id', '<=', upTo)
      .where('kind', 'in', STATUS_EVENT_KINDS)
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /**
   * Removes the events of jobs that ended before `before` (ms) in one of `finishedStatuses`,
   * in pages; events of unfinished jobs stay, however old, so their streams always resume, and
   * a job that ran or waited for weeks keeps its whole replay (its first events, which the
   * totals of later ones build on, included) for the retention after its end. Ids are never reused (SQLite AUTOINCREMENT, PostgreSQL
   * sequences), so Last-Event-ID stays exact after a prune.
   */
  async prune(before: number, finishedStatuses: readonly number[], page = 5000): Promise<number> {
    // Every event of a job that ended before `before` is older than that: the pages walk the
    // events up to the newest such one by id, each probing its job, where a join from the jobs
    // read every finished job ever run (and sorted what it found) for each page.
    const newest = await this.db
      .selectFrom('job_event')
      .select((eb) => eb.fn.max('id').as('id'))
      .where('at', '<', before)
      .executeTakeFirst();
    const upTo = Number(newest?.id ?? 0);
    if (upTo === 0) return 0;
    return deleteInPages(page, () =>
      this.db
        .deleteFrom('job_event')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('job_event as e')
            .select('e.id')
            .where('e.id', '<=', upTo)
            .where((w) =>
              w.exists(
                w
                  .selectFrom('job_instance as j')
                  .select('j.id')
                  .whereRef('j.id', '=', 'e.job_instance_id')
                  .where('j.end_time', '<', before)
                  .where('j.status', 'in', finishedStatuses),
              ),
            )
            .orderBy('e.id')
            .limit(page),
        )
        .executeTakeFirst(),
    );
  }

  /** The newest event id (0 when there is none): where a scope stream without Last-Event-ID starts. */
  async lastId(): Promise<number> {
    const r = await this.db
      .selectFrom('job_event')
      .select((eb) => eb.fn.max('id').as('id'))
      .executeTakeFirst();
    return Number(r?.id ?? 0);
  }
}
