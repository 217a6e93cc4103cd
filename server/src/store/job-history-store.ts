/**
 * Removal of finished jobs past the history retention, with everything recorded for them: steps,
 * host tasks, logs, variables, file logs, output fingerprints, confirmations, callbacks and their
 * attempts, events. Without it the execution tables grow with every job ever run.
 *
 * The per-host tables (and a job's events) go a page of rows per statement, as retention deletes
 * elsewhere do (paged-delete.ts): one statement over a 50,000-host job's rows would hold SQLite's
 * only writer, and the server's thread with it, for all of them. The job row goes last, in one
 * transaction with its remaining rows, so a job is found again until nothing of it is left: a
 * crash (or a cluster server that stopped) midway leaves it to the next pass, never an orphan.
 * While a large job is being removed, a reader can see it with part of its hosts gone.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DeleteResult, sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';
import { deleteInPages } from './paged-delete.js';
import type { Database } from './schema.js';

/** Tables with rows per host (or per file) of a step: large, removed in pages. */
const PER_HOST_TABLES = [
  'log_chunk',
  'file_log',
  'output_fingerprint',
  'host_task_var',
  'host_task',
] as const;
/** Tables with a few rows per step. */
const PER_STEP_TABLES = ['step_confirmation', 'file_offer', 'agent_command', 'step_ip_set'] as const;

export class JobHistoryStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: 'sqlite' | 'postgres',
  ) {}

  /**
   * Removes every job in one of `finishedStatuses` that ended before `before` (ms); resolves
   * with how many jobs went. Jobs still running, waiting or stopping stay however old they are.
   */
  async pruneFinishedBefore(
    before: number,
    finishedStatuses: readonly number[],
    page = 5000,
  ): Promise<number> {
    let removed = 0;
    // By id, a page of jobs at a time: each query starts where the last one ended, so a pass
    // reads the job table once however much history it removes.
    for (let after = 0; ;) {
      const jobs = await this.db
        .selectFrom('job_instance')
        .select('id')
        .where('id', '>', after)
        .where('status', 'in', finishedStatuses)
        .where('end_time', '<', before)
        .orderBy('id')
        .limit(500)
        .execute();
      for (const { id } of jobs) {
        if (await this.removeJob(id, before, finishedStatuses, page)) removed++;
        await nextTurn();
      }
      if (jobs.length < 500) return removed;
      after = jobs[jobs.length - 1]!.id;
    }
  }

  private async removeJob(
    jobId: number,
    before: number,
    finishedStatuses: readonly number[],
    page: number,
  ): Promise<boolean> {
    const steps = (
      await this.db.selectFrom('step_instance').select('id').where('job_instance_id', '=', jobId).execute()
    ).map((s) => s.id);
    const stepList = steps.length ? sql.join(steps) : undefined;
    for (const table of PER_HOST_TABLES) {
      if (stepList)
        await deleteInPages(page, () => this.deletePage(table, sql`step_instance_id in (${stepList})`, page));
    }
    await deleteInPages(page, () => this.deletePage('job_event', sql`job_instance_id = ${jobId}`, page));
    return this.db.transaction().execute(async (tx) => {
      // The job may have been retried since it was chosen (a step of a failed job can be run
      // again however old it is): then it is left as it is.
      const job = await tx
        .selectFrom('job_instance')
        .select('id')
        .where('id', '=', jobId)
        .where('status', 'in', finishedStatuses)
        .where('end_time', '<', before)
        .executeTakeFirst();
      if (!job) return false;
      if (stepList) {
        for (const table of [...PER_STEP_TABLES, ...PER_HOST_TABLES]) {
          await sql`delete from ${sql.table(table)} where step_instance_id in (${stepList})`.execute(tx);
        }
      }
      await removeJobRows(tx, jobId);
      return true;
    });
  }

  /** Deletes at most `page` rows of `table` matching `where`, by the engine's row address. */
  private async deletePage(table: string, where: RawBuilder<unknown>, page: number): Promise<DeleteResult> {
    const t = sql.table(table);
    const result =
      this.engine === 'postgres'
        ? await sql`delete from ${t} where ctid = any(array(select ctid from ${t} where ${where} limit ${page}))`.execute(
            this.db,
          )
        : await sql`delete from ${t} where rowid in (select rowid from ${t} where ${where} limit ${page})`.execute(
            this.db,
          );
    return new DeleteResult(result.numAffectedRows ?? 0n);
  }
}

/** The job's own rows (after its steps' rows): variables, callbacks, events, steps, the job. */
async function removeJobRows(tx: Transaction<Database>, jobId: number): Promise<void> {
  await tx.deleteFrom('job_instance_var').where('job_instance_id', '=', jobId).execute();
  await tx
    .deleteFrom('callback_attempt')
    .where('callback_id', 'in', (eb) =>
      eb.selectFrom('callback').select('id').where('job_instance_id', '=', jobId),
    )
    .execute();
  await tx.deleteFrom('callback').where('job_instance_id', '=', jobId).execute();
  await tx.deleteFrom('job_event').where('job_instance_id', '=', jobId).execute();
  await tx.deleteFrom('step_instance').where('job_instance_id', '=', jobId).execute();
  await tx.deleteFrom('job_instance').where('id', '=', jobId).execute();
}
