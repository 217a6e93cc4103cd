/**
 * The figures /metrics reads from the store: one read at a time, shared by every scrape that
 * comes while it runs, its queries one after another. Scrapes at once (a client sending many,
 * or many Prometheus servers) would otherwise each scan the execution tables with a query per
 * gauge at once, taking the pool the server's own writes and its cluster heartbeat wait on.
 *
 * On SQLite the counts are read on a thread of their own (sqlite-count-thread.ts): they scan
 * every job, step and host task ever kept, and SQLite's reads run on the thread that makes them,
 * so at 5 million host tasks each scrape held the server's thread for about a second.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { ClusterServerView } from '../cluster/cluster-store.js';
import type { Database } from '../store/schema.js';
import { SqliteCountThread } from './sqlite-count-thread.js';

type Counted = { key: string; n: number }[];

/** What the store's tables count, whoever reads them. */
export interface StoreCounts {
  jobs: Counted;
  steps: Counted;
  hostTasks: Counted;
  agents: Counted;
  callbacks: Counted;
  failedAttempts: number;
}

export interface StoreFigures extends StoreCounts {
  cluster?: { now: number; servers: ClusterServerView[] };
}

export async function readStoreCounts(db: Kysely<Database>): Promise<StoreCounts> {
  const byStatus = async (table: 'job_instance' | 'step_instance' | 'host_task'): Promise<Counted> =>
    (
      await db
        .selectFrom(table)
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy('status')
        .execute()
    ).map((r) => ({ key: String(r.status), n: Number(r.n) }));
  const jobs = await byStatus('job_instance');
  const steps = await byStatus('step_instance');
  const hostTasks = await byStatus('host_task');
  const agents = (
    await db
      .selectFrom('host')
      .select(['agent_status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('agent_id', 'is not', null)
      .groupBy('agent_status')
      .execute()
  ).map((r) => ({ key: r.agent_status === 1 ? 'normal' : 'abnormal', n: Number(r.n) }));
  const callbacks = (
    await db
      .selectFrom('callback')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('state')
      .execute()
  ).map((r) => ({ key: r.state, n: Number(r.n) }));
  const failed = await db
    .selectFrom('callback_attempt')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(sql<boolean>`not (coalesce(http_status, 0) between 200 and 299)`)
    .executeTakeFirst();
  return { jobs, steps, hostTasks, agents, callbacks, failedAttempts: Number(failed?.n ?? 0) };
}

export class StoreFigureReader {
  private inFlight: Promise<StoreFigures | undefined> | undefined;
  private up = true;

  private readonly thread: SqliteCountThread | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly log: Pick<Logger, 'warn' | 'info'>,
    private readonly clusterView?: () => Promise<{ now: number; servers: ClusterServerView[] }>,
    /** The SQLite database file, whose counts are read on a thread of their own. */
    sqliteFile?: string,
  ) {
    this.thread = sqliteFile === undefined ? undefined : new SqliteCountThread(sqliteFile);
  }

  close(): Promise<void> {
    return this.thread?.close() ?? Promise.resolve();
  }

  /** The figures, or undefined while the store cannot be read (the other metrics are still served). */
  figures(): Promise<StoreFigures | undefined> {
    this.inFlight ??= this.read()
      .then(
        (f) => {
          if (!this.up) this.log.info('metrics: the store can be read again');
          this.up = true;
          return f;
        },
        (err: unknown) => {
          if (this.up) this.log.warn({ err: (err as Error).message }, 'metrics: the store cannot be read');
          this.up = false;
          return undefined;
        },
      )
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private async read(): Promise<StoreFigures> {
    const counts = await (this.thread ? this.thread.read() : readStoreCounts(this.db));
    const cluster = this.clusterView ? await this.clusterView() : undefined;
    return { ...counts, ...(cluster ? { cluster } : {}) };
  }
}
