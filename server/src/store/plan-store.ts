/**
 * Storage operations for job templates and plans, and for what a plan's jobs keep about their
 * variables and confirmations.
 */
import type { Kysely, Selectable } from 'kysely';
import { CronStore } from './cron-store.js';
import type { CronCiter } from './cron-store.js';
import { holdCitations } from './library-references.js';
import type { Citation } from './library-references.js';
import { markStoredFilesUsed } from './file-store.js';
import { idChunks } from './id-chunks.js';
import { containsLike } from './list-filters.js';
import type { Database, JobPlanTable, JobTemplateTable, StepConfirmationTable } from './schema.js';

export type TemplateRow = Selectable<JobTemplateTable>;
export type PlanRow = Selectable<JobPlanTable>;
export type ConfirmationRow = Selectable<StepConfirmationTable>;

/** The parts of a stored step (plans/plan-shapes.ts) that cite library items. */
interface CitingStep {
  script_info?: { script_version_id?: number; account?: { id?: number } };
  file_info?: {
    file_destination: { account?: { id?: number } };
    file_source_list: { account?: { id?: number }; file_type?: number; file_list?: string[] }[];
  };
}

/** The script versions, accounts and uploaded files a template body (JSON) cites. */
function citedBy(body: string): { versionIds: number[]; accountIds: number[]; uploads: string[] } {
  const steps = (JSON.parse(body) as { steps: CitingStep[] }).steps;
  const numbers = (xs: unknown[]) => xs.filter((x): x is number => typeof x === 'number');
  return {
    versionIds: numbers(steps.map((s) => s.script_info?.script_version_id)),
    accountIds: numbers(steps.flatMap((s) => accountsOf(s).map((a) => a?.id))),
    uploads: steps.flatMap((s) =>
      (s.file_info?.file_source_list ?? []).flatMap((f) => (f.file_type === 2 ? (f.file_list ?? []) : [])),
    ),
  };
}

/** What a template about to be stored cites is held: see holdCitations and FileStore.useStoredFiles. */
async function holdCited(tx: Kysely<Database>, body: string): Promise<void> {
  const cited = citedBy(body);
  await holdCitations(tx, cited);
  await markStoredFilesUsed(tx, cited.uploads, Date.now());
}

/** Every account a step runs as or reads files as. */
function accountsOf(s: CitingStep): ({ id?: number } | undefined)[] {
  return [
    s.script_info?.account,
    s.file_info?.file_destination.account,
    ...(s.file_info?.file_source_list ?? []).map((f) => f.account),
  ];
}

export interface ListFilter {
  scopeType: string;
  scopeId: string;
  templateId?: number | undefined;
  creator?: string | undefined;
  name?: string | undefined;
  createTimeStart?: number | undefined;
  createTimeEnd?: number | undefined;
  lastModifyUser?: string | undefined;
  lastModifyTimeStart?: number | undefined;
  lastModifyTimeEnd?: number | undefined;
  start: number;
  length: number;
}

const AUDIT_COLUMNS = [
  'id',
  'scope_type',
  'scope_id',
  'name',
  'creator',
  'create_time',
  'last_modify_user',
  'last_modify_time',
] as const;
const LISTED_PLAN_COLUMNS = [...AUDIT_COLUMNS, 'template_id', 'template_version'] as const;
const LISTED_TEMPLATE_COLUMNS = [...AUDIT_COLUMNS, 'description', 'version'] as const;

export class PlanStore {
  constructor(private readonly db: Kysely<Database>) {}

  async getTemplate(id: number): Promise<TemplateRow | undefined> {
    return this.db.selectFrom('job_template').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findTemplateByName(
    scopeType: string,
    scopeId: string,
    name: string,
  ): Promise<TemplateRow | undefined> {
    return this.db
      .selectFrom('job_template')
      .selectAll()
      .where('scope_type', '=', scopeType)
      .where('scope_id', '=', scopeId)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  /** CitedItemsGone when a script version or account it cites was deleted meanwhile (holdCitations). */
  async insertTemplate(row: Omit<TemplateRow, 'id'>): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      await holdCited(tx, row.body);
      const { id } = await tx
        .insertInto('job_template')
        .values(row)
        .returning('id')
        .executeTakeFirstOrThrow();
      return id;
    });
  }

  /**
   * Saves a template if it still is what was read (`was`); false when somebody changed it
   * meanwhile (an edit, a key rotation's reseal), and nothing is written. CitedItemsGone as
   * insertTemplate.
   */
  async updateTemplate(
    id: number,
    was: Pick<TemplateRow, 'name' | 'description' | 'body'>,
    patch: Pick<
      TemplateRow,
      'name' | 'description' | 'last_modify_user' | 'last_modify_time' | 'version' | 'body'
    >,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      await holdCited(tx, patch.body);
      const r = await tx
        .updateTable('job_template')
        .set(patch)
        .where('id', '=', id)
        .where('name', '=', was.name)
        .where('description', '=', was.description)
        .where('body', '=', was.body)
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
    });
  }

  /**
   * Deletes a template with its plans, unless a cron runs one of them: then nothing is deleted
   * and those crons are answered. The template goes first: on PostgreSQL that locks its row,
   * which a plan being created waits on (see insertPlan).
   */
  async deleteTemplate(id: number): Promise<CronCiter[]> {
    return this.deleteUnlessCronRuns(async (tx) => {
      await tx.deleteFrom('job_template').where('id', '=', id).execute();
      const plans = await tx.deleteFrom('job_plan').where('template_id', '=', id).returning('id').execute();
      return plans.map((p) => p.id);
    });
  }

  /** Deletes a plan unless a cron runs it; as deleteTemplate. */
  async deletePlan(id: number): Promise<CronCiter[]> {
    return this.deleteUnlessCronRuns(async (tx) => {
      await tx.deleteFrom('job_plan').where('id', '=', id).execute();
      return [id];
    });
  }

  /**
   * Runs a delete of plans, then reads the crons citing them in the same transaction, undoing
   * the delete if there are any. The delete locks the plans' rows first, which a cron being
   * saved touches first (CronStore.save): every cron saved before is seen, none saved after.
   */
  private async deleteUnlessCronRuns(
    remove: (tx: Kysely<Database>) => Promise<number[]>,
  ): Promise<CronCiter[]> {
    const cited = new Error('cited by crons');
    let citing: CronCiter[] = [];
    return this.db
      .transaction()
      .execute(async (tx) => {
        citing = await new CronStore(tx).citingPlans(await remove(tx));
        if (citing.length > 0) throw cited;
        return citing;
      })
      .catch((err: unknown) => {
        if (err === cited) return citing;
        throw err;
      });
  }

  async getPlan(id: number): Promise<PlanRow | undefined> {
    return this.db.selectFrom('job_plan').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Creates a plan of a template that still exists; undefined when it was deleted meanwhile.
   * The template's row is touched first: on PostgreSQL that waits for a delete under way
   * (deleteTemplate), so no plan outlives its template.
   */
  async insertPlan(row: Omit<PlanRow, 'id'>): Promise<number | undefined> {
    const gone = new Error('template deleted');
    return this.db
      .transaction()
      .execute(async (tx) => {
        const t = await tx
          .updateTable('job_template')
          .set((eb) => ({ id: eb.ref('id') }))
          .where('id', '=', row.template_id)
          .executeTakeFirst();
        if (t.numUpdatedRows === 0n) throw gone;
        const { id } = await tx.insertInto('job_plan').values(row).returning('id').executeTakeFirstOrThrow();
        return id;
      })
      .catch((err: unknown) => {
        if (err === gone) return undefined;
        throw err;
      });
  }

  /** As updateTemplate: saves a plan if it still is what was read; false when it changed. */
  async updatePlan(
    id: number,
    was: Pick<PlanRow, 'name' | 'body'>,
    patch: Partial<
      Pick<PlanRow, 'name' | 'last_modify_user' | 'last_modify_time' | 'template_version' | 'body'>
    >,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('job_plan')
      .set(patch)
      .where('id', '=', id)
      .where('name', '=', was.name)
      .where('body', '=', was.body)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Plans (with a template id) or templates (without) of a scope, newest first; without their
   * bodies, which no list shows (a page may be every template of a scope).
   */
  async list<T extends 'job_plan' | 'job_template'>(
    table: T,
    f: ListFilter,
  ): Promise<{ total: number; rows: Omit<T extends 'job_plan' ? PlanRow : TemplateRow, 'body'>[] }> {
    let q = this.db
      .selectFrom(table as 'job_plan')
      .where('scope_type', '=', f.scopeType)
      .where('scope_id', '=', f.scopeId);
    if (f.templateId !== undefined && table === 'job_plan') q = q.where('template_id', '=', f.templateId);
    if (f.creator) q = q.where('creator', '=', f.creator);
    const name = f.name;
    if (name) q = q.where((eb) => eb(eb.fn('lower', ['name']), 'like', containsLike(name)));
    if (f.createTimeStart !== undefined) q = q.where('create_time', '>=', f.createTimeStart);
    if (f.createTimeEnd !== undefined) q = q.where('create_time', '<=', f.createTimeEnd);
    if (f.lastModifyUser) q = q.where('last_modify_user', '=', f.lastModifyUser);
    if (f.lastModifyTimeStart !== undefined) q = q.where('last_modify_time', '>=', f.lastModifyTimeStart);
    if (f.lastModifyTimeEnd !== undefined) q = q.where('last_modify_time', '<=', f.lastModifyTimeEnd);
    const { n } = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const columns = table === 'job_plan' ? LISTED_PLAN_COLUMNS : LISTED_TEMPLATE_COLUMNS;
    const rows = await q
      .select(columns as typeof LISTED_PLAN_COLUMNS)
      .orderBy('id', 'desc')
      .offset(f.start)
      .limit(f.length)
      .execute();
    return { total: Number(n), rows: rows as never };
  }

  /** The current version of each of these templates. */
  async templateVersions(ids: readonly number[]): Promise<Map<number, number>> {
    const versions = new Map<number, number>();
    for (const part of idChunks([...new Set(ids)])) {
      const rows = await this.db
        .selectFrom('job_template')
        .select(['id', 'version'])
        .where('id', 'in', part)
        .execute();
      for (const r of rows) versions.set(r.id, r.version);
    }
    return versions;
  }

  /** What cites library items, for messages refusing their deletion (the library's "still cited" check). */
  readonly citerName = 'job template';

  /** Templates (their plans run their steps) citing any of these script versions, as "template 3 (deploy)". */
  async citingScriptVersions(versionIds: readonly number[], db = this.db): Promise<Citation[]> {
    const ids = new Set(versionIds);
    return this.templatesWhere(
      '"script_version_id"',
      (s) => ids.has(s.script_info?.script_version_id ?? -1),
      db,
    );
  }

  /** Templates whose steps run as, or read files as, this execution account. */
  async citingAccount(accountId: number, db = this.db): Promise<Citation[]> {
    return this.templatesWhere('"account"', (s) => accountsOf(s).some((a) => a?.id === accountId), db);
  }

  /** Templates with a step matching `test`; `hint` narrows the rows read to those that can match. */
  private async templatesWhere(
    hint: string,
    test: (step: CitingStep) => boolean,
    db = this.db,
  ): Promise<Citation[]> {
    const rows = await db
      .selectFrom('job_template')
      .select(['id', 'name', 'body', 'scope_type', 'scope_id'])
      .where('body', 'like', `%${hint}%`)
      .orderBy('id')
      .execute();
    return rows
      .filter((r) => (JSON.parse(r.body) as { steps: CitingStep[] }).steps.some(test))
      .map((r) => ({ label: `template ${r.id} (${r.name})`, scopeType: r.scope_type, scopeId: r.scope_id }));
  }

  // ---------------------------------------------------------------- jobs of plans

  /** The job's variables after each step that ran (step 0: as it started), oldest first. */
  async varStates(
    jobInstanceId: number,
  ): Promise<{ stepInstanceId: number; executeCount: number; body: string }[]> {
    const rows = await this.db
      .selectFrom('job_instance_var')
      .select(['step_instance_id', 'execute_count', 'body'])
      .where('job_instance_id', '=', jobInstanceId)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      stepInstanceId: Number(r.step_instance_id),
      executeCount: r.execute_count,
      body: r.body,
    }));
  }

  async addVarState(
    jobInstanceId: number,
    stepInstanceId: number,
    executeCount: number,
    body: string,
  ): Promise<void> {
    await this.db
      .insertInto('job_instance_var')
      .values({
        job_instance_id: jobInstanceId,
        step_instance_id: stepInstanceId,
        execute_count: executeCount,
        body,
      })
      .execute();
  }

  /** Records what a host's script left in the variables (a resend overwrites it with the same). */
  async putHostVars(
    stepInstanceId: number,
    executeCount: number,
    hostId: number,
    body: string,
  ): Promise<void> {
    await this.db
      .insertInto('host_task_var')
      .values({ step_instance_id: stepInstanceId, execute_count: executeCount, host_id: hostId, body })
      .onConflict((oc) => oc.columns(['step_instance_id', 'execute_count', 'host_id']).doUpdateSet({ body }))
      .execute();
  }

  async hostVars(stepInstanceId: number, executeCount: number): Promise<{ hostId: number; body: string }[]> {
    const rows = await this.db
      .selectFrom('host_task_var')
      .select(['host_id', 'body'])
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .orderBy('host_id')
      .execute();
    return rows.map((r) => ({ hostId: Number(r.host_id), body: r.body }));
  }

  async addConfirmation(row: Omit<ConfirmationRow, 'id'>): Promise<void> {
    await this.db.insertInto('step_confirmation').values(row).execute();
  }

  async confirmations(stepInstanceId: number): Promise<ConfirmationRow[]> {
    return this.db
      .selectFrom('step_confirmation')
      .selectAll()
      .where('step_instance_id', '=', stepInstanceId)
      .orderBy('id')
      .execute();
  }
}
