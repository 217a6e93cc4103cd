/**
 * Storage operations for crons and their firings. A firing row (cron, due time) is unique: it
 * is how a due time is claimed, so each time is fired, skipped or failed once across servers.
 */
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import { changeConditions, containsLike } from './list-filters.js';
import { deleteInPages } from './paged-delete.js';
import type { ChangeFilter } from './list-filters.js';
import type { CronFiringTable, CronJobTable, Database } from './schema.js';

export type CronRow = Selectable<CronJobTable>;
export type FiringRow = Selectable<CronFiringTable>;

export interface CronListFilter extends ChangeFilter {
  scopeType: string;
  scopeId: string;
  name?: string | undefined;
  enabled?: boolean | undefined;
  start: number;
  length: number;
}

const CRON_CHANGE_COLUMNS = {
  creator: 'creator',
  createTime: 'create_time',
  lastModifyUser: 'last_modify_user',
  lastModifyTime: 'last_modify_time',
};

/**
 * What the scheduler reads of each enabled cron: what its due times follow from, not its
 * variable values (up to megabytes each; the firing reads its cron whole).
 */
const DUE_COLUMNS = [
  'id',
  'expression',
  'execute_time',
  'time_zone',
  'end_time',
  'enabled_at',
  'last_modify_time',
  'misfire_grace_seconds',
] as const satisfies readonly (keyof CronRow)[];
export type DueCron = Pick<CronRow, (typeof DUE_COLUMNS)[number]> & { last_time: number | null };

/** A cron without its variable values: what lists read. */
export type CronSchedule = Omit<CronRow, 'vars'>;

const SCHEDULE_COLUMNS = [
  'id',
  'scope_type',
  'scope_id',
  'job_plan_id',
  'name',
  'expression',
  'execute_time',
  'time_zone',
  'enabled',
  'enabled_at',
  'end_time',
  'misfire_grace_seconds',
  'app_code',
  'creator',
  'create_time',
  'last_modify_user',
  'last_modify_time',
] as const satisfies readonly Exclude<keyof CronRow, 'vars'>[];

/** A cron running a plan, as refusals to delete the plan name it. */
export type CronCiter = Pick<CronRow, 'id' | 'name' | 'job_plan_id'>;

/** What a cron's creation sets and its saves keep. */
export type CronCreation = Pick<
  CronRow,
  'scope_type' | 'scope_id' | 'enabled_at' | 'creator' | 'create_time'
>;
/** What a save of a cron writes. */
export type CronFields = Omit<CronRow, 'id' | keyof CronCreation>;

/** What a save keeps from the row it read when not given: another save of them since is a conflict. */
const SAVED_COLUMNS = [
  'job_plan_id',
  'name',
  'expression',
  'execute_time',
  'time_zone',
  'end_time',
  'misfire_grace_seconds',
  'vars',
] as const satisfies readonly (keyof CronRow)[];

export class CronStore {
  private changeCount = 0;
  /** Runs after each write of a cron made here: a cluster tells the other servers (changedElsewhere). */
  afterWrite: (() => void) | undefined;

  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Moves whenever crons may have changed: after each write made here, and when another server
   * says it wrote (changedElsewhere). The scheduler reads every cron again only when it moved.
   */
  get changes(): number {
    return this.changeCount;
  }

  changedElsewhere(): void {
    this.changeCount++;
  }

  private wrote(): void {
    this.changeCount++;
    this.afterWrite?.();
  }

  async get(id: number): Promise<CronRow | undefined> {
    return this.db.selectFrom('cron_job').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Creates a cron (no `was`) or saves one that is still as `was` read it, in one transaction
   * that touches the plan's row first: on PostgreSQL that waits for a delete of the plan under
   * way, which reads the crons citing it after taking its row (PlanStore.deletePlan), so no cron
   * cites a deleted plan. The cron's id; 'plan gone' or 'cron gone' when deleted meanwhile;
   * 'changed' when another save came first (read it again and redo the edit).
   */
  async save(
    was: CronRow | undefined,
    row: CronFields,
    creation: CronCreation,
  ): Promise<number | 'plan gone' | 'cron gone' | 'changed'> {
    const saved = await this.db.transaction().execute(async (tx) => {
      const plan = await tx
        .updateTable('job_plan')
        .set((eb) => ({ id: eb.ref('id') }))
        .where('id', '=', row.job_plan_id)
        .executeTakeFirst();
      if (plan.numUpdatedRows === 0n) return 'plan gone';
      if (!was) {
        const { id } = await tx
          .insertInto('cron_job')
          .values({ ...row, ...creation })
          .returning('id')
          .executeTakeFirstOrThrow();
        return id;
      }
      let q = tx.updateTable('cron_job').set(row).where('id', '=', was.id);
      for (const c of SAVED_COLUMNS) q = q.where(c, was[c] === null ? 'is' : '=', was[c]);
      if ((await q.executeTakeFirst()).numUpdatedRows > 0n) return was.id;
      const still = await tx.selectFrom('cron_job').select('id').where('id', '=', was.id).executeTakeFirst();
      return still ? 'changed' : 'cron gone';
    });
    if (typeof saved === 'number') this.wrote();
    return saved;
  }

  /** False when there is no such cron (deleted meanwhile). */
  async update(id: number, patch: Partial<Omit<CronRow, 'id'>>): Promise<boolean> {
    const r = await this.db.updateTable('cron_job').set(patch).where('id', '=', id).executeTakeFirst();
    if (r.numUpdatedRows === 0n) return false;
    this.wrote();
    return true;
  }

  /**
   * Disables a cron that is still as the scheduler read it (same enable and save): one saved or
   * enabled again since has a schedule the scheduler has not looked at.
   */
  async disableIfUnchanged(cron: Pick<CronRow, 'id' | 'enabled_at' | 'last_modify_time'>): Promise<boolean> {
    const r = await this.db
      .updateTable('cron_job')
      .set({ enabled: 0 })
      .where('id', '=', cron.id)
      .where('enabled_at', '=', cron.enabled_at)
      .where('last_modify_time', '=', cron.last_modify_time)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) return false;
    this.wrote();
    return true;
  }

  /**
   * Removes each cron's firings due before `beforeSeconds`, except its latest: the scheduler finds
   * a cron's next due time after its latest firing, so that one stays however old. Resolves with
   * how many went.
   */
  async pruneFiringsBefore(beforeSeconds: number, page = 5000): Promise<number> {
    let removed = 0;
    // Firings go with their cron (on delete cascade): the crons name every cron with firings.
    for (const { id: cronId } of await this.db.selectFrom('cron_job').select('id').execute()) {
      const latest = await this.db
        .selectFrom('cron_firing')
        .select((eb) => eb.fn.max('scheduled_time').as('t'))
        .where('cron_id', '=', cronId)
        .executeTakeFirst();
      if (latest?.t === null || latest?.t === undefined) continue;
      const upTo = Math.min(beforeSeconds, Number(latest.t));
      removed += await deleteInPages(page, () =>
        this.db
          .deleteFrom('cron_firing')
          .where('id', 'in', (eb) =>
            eb
              .selectFrom('cron_firing')
              .select('id')
              .where('cron_id', '=', cronId)
              .where('scheduled_time', '<', upTo)
              .limit(page),
          )
          .executeTakeFirst(),
      );
    }
    return removed;
  }

  async delete(id: number): Promise<void> {
    await this.db.deleteFrom('cron_job').where('id', '=', id).execute();
    this.wrote();
  }

  async list(f: CronListFilter): Promise<{ total: number; rows: CronSchedule[] }> {
    let q = this.db
      .selectFrom('cron_job')
      .where('scope_type', '=', f.scopeType)
      .where('scope_id', '=', f.scopeId);
    const { name } = f;
    if (name) q = q.where((eb) => eb(eb.fn('lower', ['name']), 'like', containsLike(name)));
    if (f.enabled !== undefined) q = q.where('enabled', '=', f.enabled ? 1 : 0);
    for (const [column, op, value] of changeConditions(f, CRON_CHANGE_COLUMNS))
      q = q.where(sql.ref(column), op, value);
    const { n } = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const rows = await q
      .select(SCHEDULE_COLUMNS)
      .orderBy('id', 'desc')
      .offset(f.start)
      .limit(f.length)
      .execute();
    return { total: Number(n), rows };
  }

  /** Every cron of every scope (the admin API). */
  async all(): Promise<CronSchedule[]> {
    return this.db.selectFrom('cron_job').select(SCHEDULE_COLUMNS).orderBy('id').execute();
  }

  /** The enabled crons (or the one of `id`, if enabled) as the scheduler reads them. */
  async enabledWithLastTime(id?: number): Promise<DueCron[]> {
    let q = this.db
      .selectFrom('cron_job')
      .select(DUE_COLUMNS.map((c) => `cron_job.${c}` as const))
      .select((eb) =>
        eb
          .selectFrom('cron_firing')
          .whereRef('cron_firing.cron_id', '=', 'cron_job.id')
          .select((e) => e.fn.max('cron_firing.scheduled_time').as('t'))
          .as('last_time'),
      )
      .where('enabled', '=', 1);
    if (id !== undefined) q = q.where('id', '=', id);
    const rows = await q.execute();
    return rows.map((r) => ({ ...r, last_time: r.last_time === null ? null : Number(r.last_time) }));
  }

  async hasFiring(cronId: number, scheduledTime: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('cron_firing')
      .select('id')
      .where('cron_id', '=', cronId)
      .where('scheduled_time', '=', scheduledTime)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Records a time that was not fired; a time already recorded (by any server) stays as it is. */
  async recordNotFired(
    cronId: number,
    scheduledTime: number,
    outcome: 'skipped' | 'failed',
    reason: string,
  ): Promise<void> {
    await this.db
      .insertInto('cron_firing')
      .values({
        cron_id: cronId,
        scheduled_time: scheduledTime,
        outcome,
        job_instance_id: null,
        reason,
        recorded_at: Date.now(),
      })
      .onConflict((oc) => oc.columns(['cron_id', 'scheduled_time']).doNothing())
      .execute();
  }

  /** The latest firings of a cron with the status of the job each started, newest first. */
  async lastFirings(cronId: number, limit: number): Promise<(FiringRow & { job_status: number | null })[]> {
    return this.db
      .selectFrom('cron_firing')
      .leftJoin('job_instance', 'job_instance.id', 'cron_firing.job_instance_id')
      .selectAll('cron_firing')
      .select('job_instance.status as job_status')
      .where('cron_firing.cron_id', '=', cronId)
      .orderBy('cron_firing.scheduled_time', 'desc')
      .limit(limit)
      .execute();
  }

  /** Crons that run one of these plans: such plans (and their templates) cannot be deleted. */
  async citingPlans(planIds: number[]): Promise<CronCiter[]> {
    if (planIds.length === 0) return [];
    return this.db
      .selectFrom('cron_job')
      .select(['id', 'name', 'job_plan_id'])
      .where('job_plan_id', 'in', planIds)
      .orderBy('id')
      .execute();
  }
}
