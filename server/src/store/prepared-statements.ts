/**
 * PostgreSQL connections for kysely that prepare each statement text once per connection.
 * Kysely sends every query unnamed, so PostgreSQL parses and plans it on every call: for the
 * statements a job runs through (submit, result, status) that is about half of their time in
 * the database. A named statement is parsed once per connection and, where PostgreSQL finds
 * its generic plan no worse than the custom ones, planned once too.
 */
import type {
  Compilable,
  Kysely,
  PostgresCursor,
  PostgresPool,
  PostgresPoolClient,
  PostgresQueryResult,
} from 'kysely';
import type pg from 'pg';

/** Above this, a statement is a bulk write whose text changes with its row count. */
const MAX_PARAMETERS = 100;
/**
 * Distinct texts named per pool. Each costs memory in every connection's backend; texts beyond
 * it (an IN list of every length, say) run unnamed as before.
 */
const MAX_NAMES = 500;

/**
 * A statement whose text begins with this runs unnamed: planned with its values at every call.
 * For reads whose best plan turns on the values, where a generic plan can cost a hundred times
 * the custom one. PostgreSQL takes the generic plan after five calls when its estimate is no
 * worse, and it estimates a parameter's time range at a few hundred rows: a job list filtered
 * by ip then looked up the steps of each job of its range one by one (200,000 jobs: 0.45 s),
 * where planned with its range it joins them by hash (0.13 s).
 */
export const PLAN_EACH_CALL = '/* planned each call */ ';

/** Runs `query` planned with its values (PLAN_EACH_CALL); on SQLite as any other. */
export async function planEachCall<DB, R>(db: Kysely<DB>, query: Compilable<R>): Promise<R[]> {
  const compiled = query.compile();
  return (await db.executeQuery<R>({ ...compiled, sql: PLAN_EACH_CALL + compiled.sql })).rows;
}

export function preparingPool(pool: pg.Pool): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string, parameters: readonly unknown[]): string | undefined => {
    // Without parameters the simple protocol runs the text, which may hold several statements.
    if (parameters.length === 0 || parameters.length > MAX_PARAMETERS) return undefined;
    if (text.startsWith(PLAN_EACH_CALL)) return undefined;
    let name = names.get(text);
    if (name === undefined && names.size < MAX_NAMES) names.set(text, (name = `jobfleet_${names.size}`));
    return name;
  };
  return {
    connect: async () => new PreparingClient(await pool.connect(), nameOf),
    end: () => pool.end(),
  };
}

class PreparingClient implements PostgresPoolClient {
  /** A statement's result columns changed under it (a newer server migrated the schema). */
  private stale = false;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly nameOf: (text: string, parameters: readonly unknown[]) => string | undefined,
  ) {}

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(
    sqlOrCursor: string | PostgresCursor<R>,
    parameters?: ReadonlyArray<unknown>,
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sqlOrCursor !== 'string') throw new Error('streaming queries are not used');
    return this.run<R>(sqlOrCursor, parameters ?? []);
  }

  release(destroy?: boolean): void {
    // A connection holding a statement prepared for an older schema is closed, not reused.
    this.client.release(destroy === true || this.stale);
  }

  private async run<R>(text: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    const values = [...parameters];
    const name = this.stale ? undefined : this.nameOf(text, parameters);
    if (name === undefined) return asResult<R>(await this.client.query(text, values));
    try {
      return asResult<R>(await this.client.query({ name, text, values }));
    } catch (err) {
      if (!isStalePlan(err)) throw err;
      this.stale = true;
      // Outside a transaction nothing was done: the same statement runs again, unnamed. Inside
      // one, the transaction has failed and its caller sees the error, as for any other.
      if (this.client.getTransactionStatus() !== 'I') throw err;
      return asResult<R>(await this.client.query(text, values));
    }
  }
}

function asResult<R>(result: pg.QueryResult): PostgresQueryResult<R> {
  return result as unknown as PostgresQueryResult<R>;
}

/** PostgreSQL refuses to run a prepared statement whose result columns a DDL changed. */
function isStalePlan(err: unknown): boolean {
  return (
    err instanceof Error &&
    'code' in err &&
    err.code === '0A000' &&
    err.message.includes('cached plan must not change result type')
  );
}
