/**
 * Storage operations for executions: job instances, their steps, one task per target host,
 * and the tasks' output. Writes from agents arrive in bursts (thousands of hosts finishing at
 * once), so they are applied as grouped commits: one transaction per batch.
 */
import { CompiledQuery, sql } from 'kysely';
import { JOB_CALLBACK_PAYLOAD_START } from '../engine/callback-payload.js';
import { CALLBACK_STATUSES, IN_FLIGHT_JOB_STATUSES, countByStatus } from '../engine/statuses.js';
import { sealedKeyOf } from '../engine/step-secrets.js';
import type { StepSpec } from '../engine/step-spec.js';
import type {
  Expression,
  ExpressionBuilder,
  Kysely,
  RawBuilder,
  Selectable,
  SelectQueryBuilder,
  SqlBool,
  Transaction,
} from 'kysely';
import { taskKey } from '@jobfleet/protocol';
import { onConnectionAround } from './connection-around.js';
import type { EngineCapabilities } from './engines.js';
import { updateHostTasks } from './host-task-update.js';
import { idChunks } from './id-chunks.js';
import { containsLike } from './list-filters.js';
import {
  inIdOrder,
  insertHostTasksById,
  insertNamedOnPostgres,
  namedHostsOnPostgres,
  TargetsChanged,
  TASKS_RETURNED_UP_TO,
} from './host-tasks-by-id.js';
import type { HostsById } from './host-tasks-by-id.js';
import type { HostTaskChange } from './host-task-update.js';
import { JobEventLog, lockedInsertOfNewJob } from './job-event-log.js';
import type { EventInSql } from './job-event-log.js';
import { planEachCall } from './prepared-statements.js';
import { compiledInsert, insertRows } from './row-insert.js';
import { IP_SETS_CONFIRMED_KEY, ipSetAggregate, ipSetOf, jobHasTaskOn, storeIpSet } from './step-ip-sets.js';
import { bufferOf, byteRange, decodeChunks, encodeOutput, storedAsIs } from './log-chunk-codec.js';
import { InflatedRows } from './inflated-rows.js';
import type { StoredChunk } from './log-chunk-codec.js';
import { forEachLogChunk } from './log-pages.js';
import { hostsWithLogContaining } from './log-search.js';
import { alignOutput, joinChunks } from './output-alignment.js';
import type { AlignedOutput } from './output-alignment.js';
import type { PendingEvent } from './job-event-log.js';
import type {
  CallbackTable,
  Database,
  HostTaskTable,
  JobInstanceTable,
  StepInstanceTable,
} from './schema.js';

export type JobInstance = Selectable<JobInstanceTable>;
export type StepInstance = Selectable<StepInstanceTable>;
export type HostTask = Selectable<HostTaskTable>;
/** A step without its definition, which holds its whole script: what a poll shows of it. */
export type StepHead = Omit<StepInstance, 'spec'>;
const STEP_HEAD_COLUMNS = [
  'id',
  'job_instance_id',
  'step_order',
  'name',
  'type',
  'status',
  'execute_count',
  'create_time',
  'start_time',
  'end_time',
  'current_batch',
  'sealed_key',
  'hosts_version',
] as const satisfies readonly (keyof StepHead)[];

/** What the engine needs of a step to run it, and of its host tasks. */
export type RunnableStep = Pick<
  StepInstance,
  'id' | 'job_instance_id' | 'step_order' | 'execute_count' | 'spec' | 'status' | 'current_batch'
>;
export type RunnableTask = Pick<HostTask, 'host_id' | 'status' | 'log_bytes' | 'batch' | 'version'>;

export interface CreatedJob {
  jobInstanceId: number;
  stepInstanceIds: number[];
  /** A job stored running: its first step and host tasks as stored (none for a job without steps). */
  running?: { step: RunnableStep; tasks: RunnableTask[] | undefined };
}
export type Callback = Selectable<CallbackTable>;

export interface NewHostTask {
  hostId: number;
  cloudId: number;
  ip: string;
  ipv6: string;
  agentId: string | null;
  status: number;
  /** Rolling batch (1-based), 0 when the step is not rolling. */
  batch: number;
}

export interface NewStep {
  name: string;
  type: number;
  spec: unknown;
  hosts: NewHostTask[];
  /** Or the hosts named by id, read by the insert of their tasks (`hosts` then empty). */
  hostsById?: HostsById;
}

export interface NewJob {
  scopeType: string;
  scopeId: string;
  name: string;
  type: number;
  launchMode: number;
  operator: string;
  appCode: string;
  /** Sealed (engine/callback-url.ts): a webhook URL often carries its credential. */
  callbackUrl: string | null;
  clientRequestId: string | null;
  steps: NewStep[];
  /** A job that runs a plan: its ids, and its variables as they start (JSON, ciphers sealed). */
  plan?: { planId: number; templateId: number; vars: string };
  /**
   * A job a cron starts: the firing (cron, due time in seconds) is recorded in the job's own
   * transaction, and its uniqueness makes a second start of the same time fail as a whole.
   */
  cron?: { cronId: number; scheduledTime: number };
}

/** One task's changes within a batch; applied with a single UPDATE. */
export interface TaskWrite {
  stepInstanceId: number;
  executeCount: number;
  hostId: number;
  /** Output appended in this batch, in order, contiguous from the stored length. */
  chunks: { offset: number; data: Buffer }[];
  /** Stored output length after this batch. */
  logBytes?: number;
  droppedBytes?: number;
  startTime?: number;
  /** Set when the task moves to a new status. */
  status?: number;
  exitCode?: number | null;
  errorCode?: number;
  endTime?: number;
  /**
   * Cluster mode: the agent session (epoch) this write comes from, or was decided under; it is
   * applied only while the host's session still has that epoch (0: while it has none).
   */
  sessionEpoch?: number;
  /** Set by the commit when the write was refused because its session is no longer current. */
  fenced?: boolean;
  /**
   * Cluster mode: an agent's result, applied only once this many output bytes are stored (the
   * agent keeps a result until told it is recorded, and resends its output from what is stored).
   */
  needBytes?: number;
  /** Cluster mode, set by the commit: the stored output length after it. */
  storedBytes?: number;
  /**
   * Cluster mode, set by the commit: output starting past the stored length was not written, or
   * the result was held back (see `needBytes`); the agent must resend from `storedBytes`.
   */
  outOfStep?: boolean;
  /** Cluster mode, set by the commit: the result (status) was held back, see `needBytes`. */
  resultHeld?: boolean;
  /**
   * Set by the commit when the status change did not apply because the task was already
   * finished: the status stored (in a cluster, another server may have recorded it first).
   */
  storedStatus?: number;
}

export interface JobListFilter {
  scopeType: string;
  scopeId: string;
  createTimeStart?: number;
  createTimeEnd?: number;
  jobInstanceId?: number;
  operator?: string;
  name?: string;
  launchMode?: number;
  cronId?: number;
  type?: number;
  status?: number;
  ip?: string;
  start: number;
  length: number;
}

const UNFINISHED = [5, 7];
/** Jobs whose lost callbacks one look queues; a later look takes the rest. */
const MISSED_CALLBACKS_AT_ONCE = 1000;
const INSERT_CHUNK = 500;

/** Thrown inside casStepAndJob's transaction to undo the job's move when the step did not move. */
class StepNotMoved extends Error {}

/**
 * A step (and its job) that ends with the results of a task-write batch, stored in the same
 * transaction: the last result and "finished" cost one synced commit, not two. It applies only
 * when every result named in `keys` applied and the job is still running (and, with
 * `unlessPendingAfter`, has no pending step after this one); otherwise nothing of it is written
 * and the engine ends the step the ordinary way. The commit sets `applied`.
 */
export interface StepEnd {
  jobInstanceId: number;
  stepInstanceId: number;
  /** Results (task keys `step:count:host`) in the batch the end depends on. */
  keys: string[];
  stepStatus: number;
  jobStatus: number;
  endTime: number;
  /** The step's order: with it, the end applies only if no later step is pending (1). */
  unlessPendingAfter?: number;
  applied?: boolean;
}

type JobPatch = Partial<Pick<JobInstance, 'status' | 'start_time' | 'end_time'>>;
type StepPatch = Partial<
  Pick<StepInstance, 'status' | 'start_time' | 'end_time' | 'execute_count' | 'current_batch'>
>;

function jobEvent(jobInstanceId: number, patch: JobPatch): PendingEvent {
  return { jobInstanceId, kind: 'job', data: { job_instance_id: jobInstanceId, ...patch } };
}

/** The updates of a StepEnd: the job's is conditional and decides; true when they applied. */
async function endStepAndJob(
  tx: Transaction<Database>,
  end: StepEnd,
  engine: EngineCapabilities['name'],
): Promise<boolean> {
  if (engine === 'postgres') return endStepAndJobAtOnce(tx, end);
  let job = tx
    .updateTable('job_instance')
    .set({ status: end.jobStatus, end_time: end.endTime })
    .where('id', '=', end.jobInstanceId)
    .where('status', '=', 2);
  const after = end.unlessPendingAfter;
  if (after !== undefined) {
    job = job.where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('step_instance')
            .select('id')
            .where('job_instance_id', '=', end.jobInstanceId)
            .where('step_order', '>', after)
            .where('status', '=', 1),
        ),
      ),
    );
  }
  if ((await job.executeTakeFirst()).numUpdatedRows === 0n) return false;
  // A running job's active step is running: the engine plans no end for a stopping or waiting one.
  await tx
    .updateTable('step_instance')
    .set({ status: end.stepStatus, end_time: end.endTime })
    .where('id', '=', end.stepInstanceId)
    .execute();
  return true;
}

/**
 * endStepAndJob in one statement (PostgreSQL: one round trip fewer in the commit that answers a
 * poller "finished"): the step's update runs only if the job's did, and the count is the job's.
 */
async function endStepAndJobAtOnce(
  tx: Transaction<Database>,
  end: StepEnd,
  more: RawBuilder<unknown> = sql``,
): Promise<boolean> {
  const after = end.unlessPendingAfter;
  const noLaterPending =
    after === undefined
      ? sql``
      : sql` and not exists (select 1 from step_instance where job_instance_id = ${end.jobInstanceId} and step_order > ${after} and status = 1)`;
  const { rows } = await sql<{ n: number | string }>`with ended_job as (
      update job_instance set status = ${end.jobStatus}, end_time = ${end.endTime}
      where id = ${end.jobInstanceId} and status = 2${noLaterPending} returning id
    ), ended_step as (
      update step_instance set status = ${end.stepStatus}, end_time = ${end.endTime}
      where id = ${end.stepInstanceId} and exists (select 1 from ended_job) returning id
    )${more}
    select count(*) as n from ended_job`.execute(tx);
  return Number(rows[0]?.n ?? 0) > 0;
}

/** A step patch as events: its status change, or its move to another rolling batch. */
function stepEvents(
  jobInstanceId: number,
  stepInstanceId: number,
  patch: StepPatch,
  batchCount?: number,
): PendingEvent[] {
  const base = { job_instance_id: jobInstanceId, step_instance_id: stepInstanceId };
  const out: PendingEvent[] = [];
  if (patch.status !== undefined) out.push({ jobInstanceId, kind: 'step', data: { ...base, ...patch } });
  if (patch.current_batch !== undefined)
    out.push({
      jobInstanceId,
      kind: 'batch',
      data: { ...base, batch: patch.current_batch, batch_count: batchCount ?? patch.current_batch },
    });
  return out;
}

function stepRowsOf(job: NewJob, running: boolean, now: number) {
  return job.steps.map((step, order) => ({
    step_order: order,
    name: step.name,
    type: step.type,
    status: running && order === 0 ? 2 : 1,
    execute_count: 0,
    create_time: now,
    start_time: running && order === 0 ? now : null,
    end_time: null,
    spec: JSON.stringify(step.spec),
    sealed_key: sealedKeyOf(step.spec as StepSpec),
    current_batch: (step.hostsById ? step.hostsById.batches : step.hosts.some((h) => h.batch > 0)) ? 1 : 0,
  }));
}

/** The fields of an object as JSON text without its braces, to be spliced into JSON built in SQL. */
function jsonFields(o: object): string {
  return JSON.stringify(o).slice(1, -1);
}

/** The fields every log and host event of a task starts with. */
function taskEventFields(jobInstanceId: number, w: TaskWrite) {
  return {
    job_instance_id: jobInstanceId,
    step_instance_id: w.stepInstanceId,
    execute_count: w.executeCount,
    bk_host_id: w.hostId,
  };
}

/** A host event's fields after its from_status: where the write moves the task. */
function hostMoveFields(w: TaskWrite) {
  return {
    status: w.status,
    exit_code: w.exitCode ?? null,
    error_code: w.errorCode ?? 0,
    ...(w.startTime !== undefined ? { start_time: w.startTime } : {}),
    ...(w.endTime !== undefined ? { end_time: w.endTime } : {}),
  };
}

/** The events of a step's end and its job's. */
function endEvents(end: StepEnd): PendingEvent[] {
  return [
    ...stepEvents(end.jobInstanceId, end.stepInstanceId, { status: end.stepStatus, end_time: end.endTime }),
    jobEvent(end.jobInstanceId, { status: end.jobStatus, end_time: end.endTime }),
  ];
}

/** The first step of a job created running, as the engine starts it. */
function runningFirstStep(id: number, jobInstanceId: number, row: { spec: string; current_batch: number }) {
  return {
    id,
    job_instance_id: jobInstanceId,
    step_order: 0,
    execute_count: 0,
    spec: row.spec,
    status: 2,
    current_batch: row.current_batch,
  };
}

/** The created event's fields of the job, after its id and before its steps. */
function createdFields(job: NewJob, running: boolean, now: number) {
  return {
    created: true,
    name: job.name,
    status: running ? 2 : 1,
    create_time: now,
    start_time: running ? now : null,
    operator: job.operator,
  };
}

/** The created event's fields of a step, after its id and before its tasks' counts. */
function createdStepFields(step: NewStep, started: boolean) {
  return { name: step.name, type: step.type, status: started ? 2 : 1, execute_count: 0 };
}

export class ExecutionStore {
  /** Every status change and output append, written with the change (see job-event-log.ts). */
  readonly events: JobEventLog;

  private readonly rowLocks: boolean;
  private readonly relaxed: EngineCapabilities['relaxedTransaction'];
  private readonly engine: EngineCapabilities['name'];
  private readonly clockMs: EngineCapabilities['clockMs'];
  /** Cluster mode: this server's id, recorded as the owner of the jobs it accepts. */
  ownerId: string | undefined;
  /** For reads of a log in windows: each window of a row would inflate the whole row again. */
  private readonly inflatedRows = new InflatedRows();

  constructor(
    private readonly db: Kysely<Database>,
    caps: EngineCapabilities,
  ) {
    this.events = new JobEventLog(db, caps);
    this.rowLocks = !caps.singleWriter;
    this.relaxed = caps.relaxedTransaction;
    this.engine = caps.name;
    this.clockMs = caps.clockMs;
  }

  private transactionObserver: (op: string, seconds: number) => void = () => undefined;
  private readonly taskWriteListeners = new Set<
    (writes: readonly TaskWrite[], applied: Set<string>) => void
  >();

  /** Tells `fn` about each committed batch of task writes (output and results), in commit order. */
  onTaskWrites(fn: (writes: readonly TaskWrite[], applied: Set<string>) => void): void {
    this.taskWriteListeners.add(fn);
  }

  /** Tells `fn` how long each transaction that changes executions took (for metrics). */
  observeTransactions(fn: (op: string, seconds: number) => void): void {
    this.transactionObserver = fn;
  }

  /**
   * Runs `fn` in a transaction that appends the events it returns, then wakes the streams.
   * A `relaxed` transaction does not wait for the disk where the engine allows that (see
   * relaxedTransaction in engines.ts; commitTaskWrites says when it is asked for): the next
   * durable commit makes it durable along with itself.
   */
  private async withEvents<T>(
    what: string | { op: string; relaxed: boolean },
    /** `appended`: fn appended its events itself (in its last statement). */
    fn: (tx: Transaction<Database>) => Promise<{ result: T; events: PendingEvent[]; appended?: boolean }>,
  ): Promise<T> {
    const { op, relaxed } = typeof what === 'string' ? { op: what, relaxed: false } : what;
    const started = performance.now();
    const run = (db: Kysely<Database>) =>
      db.transaction().execute(async (tx) => {
        const r = await fn(tx);
        if (!r.appended) await this.events.append(tx, r.events);
        return r;
      });
    const around = relaxed ? this.relaxed : undefined;
    const { result, events } = around ? await onConnectionAround(this.db, around, run) : await run(this.db);
    this.transactionObserver(op, (performance.now() - started) / 1000);
    if (events.length > 0) this.events.notify();
    return result;
  }

  /**
   * Records a job with its steps and host tasks in one transaction: acknowledged means stored.
   * With `running`, the job and its first step are stored as started, so a crash right after
   * the acknowledgement leaves a job that recovery carries on, never one stuck as pending.
   */
  async createJobInstance(job: NewJob, running: boolean, now = Date.now()): Promise<CreatedJob> {
    const [only] = job.steps;
    if (
      this.engine === 'postgres' &&
      job.steps.length === 1 &&
      only?.hostsById &&
      only.hostsById.ids.length <= TASKS_RETURNED_UP_TO &&
      !job.plan &&
      !job.cron
    )
      return this.createByIdAtOnce(job, only, only.hostsById, running, now);
    const storing = { jobInstanceId: 0, stepInstanceIds: [] as number[] };
    try {
      return await this.createJobInstanceOnce(job, running, now, storing);
    } catch (err) {
      this.events.forget(storing.jobInstanceId, storing.stepInstanceIds);
      throw err;
    }
  }

  /**
   * PostgreSQL, a one-step job of hosts named by id (what fast_execute_script submits), of at
   * most TASKS_RETURNED_UP_TO hosts: the job, its step, its host tasks (with the set of their
   * addresses, step-ip-sets.ts) and its created event stored by one statement, sent outside a
   * transaction (a statement is atomic and commits on its own, as durably as a transaction).
   * One round trip instead of five (begin, job and step, tasks, event, commit), on the path
   * that answers every submit. The statement reads the named hosts first; the job is inserted
   * only if all of them are found in the scope (and with it nothing else), so fewer found
   * throws TargetsChanged with nothing stored, as the step-by-step insert does. Larger steps
   * take that path: their counts come from a read (insertHostTasksById says why).
   */
  private async createByIdAtOnce(
    job: NewJob,
    step: NewStep,
    byId: HostsById,
    running: boolean,
    now: number,
  ): Promise<CreatedJob> {
    const started = performance.now();
    const jobRow = this.jobRowOf(job, running, now);
    const [stepRow] = stepRowsOf(job, running, now);
    if (!stepRow) throw new Error('a job of one step has one step row');
    const named = byId.ids.length;
    const columns = (row: object) => sql.join(Object.keys(row).map((k) => sql.ref(k)));
    const values = (row: object) => sql.join(Object.values(row));
    // The created event's data as the step-by-step path writes it (JSON.stringify of
    // createdFields and createdStepFields), with the ids and counts the statement makes put in.
    const data = sql`'{"job_instance_id":' || new_job.id || ${`,${jsonFields(createdFields(job, running, now))}`}::text
      || ',"steps":[{"step_instance_id":' || new_step.id || ${`,${jsonFields(createdStepFields(step, running))}`}::text
      || ',"host_counts":{' || (select coalesce(string_agg('"' || c.status || '":' || c.n, ',' order by c.status), '')
          from (select status, count(*) as n from new_tasks group by status) c) || '}}]}'`;
    const scope = { type: job.scopeType, id: job.scopeId };
    const append = lockedInsertOfNewJob({
      after: sql`select count(*) from new_tasks`,
      from: sql`new_job, new_step`,
      jobInstanceId: sql`new_job.id`,
      scope,
      kind: 'job',
      data,
      at: now,
    });
    const { rows } = await sql<{
      found: number | string;
      job_id: number | null;
      step_id: number | null;
      tasks: [number, number, number][] | null;
    }>`with named as (${namedHostsOnPostgres(inIdOrder(byId))}),
      new_job as (insert into job_instance (${columns(jobRow)}) select ${values(jobRow)}
        where (select count(*) from named) = ${named}::bigint returning id),
      new_step as (insert into step_instance (job_instance_id, ${columns(stepRow)})
        select new_job.id, ${values(stepRow)} from new_job returning id),
      new_tasks as (${insertNamedOnPostgres(sql`new_step.id`, sql`new_step, named n`)} returning host_id, status, batch, ip),
      new_ip_set as (insert into step_ip_set (step_instance_id, ips)
        select new_step.id, ${ipSetAggregate(sql`t.ip`, 'postgres')} from new_step, new_tasks t group by new_step.id),
      ${append}
      select (select count(*) from named) as found, (select id from new_job) as job_id,
        (select id from new_step) as step_id,
        (select json_agg(json_build_array(host_id, status, batch)) from new_tasks) as tasks`.execute(this.db);
    const row = rows[0];
    if (!row || row.job_id === null || row.step_id === null)
      throw new TargetsChanged(named, Number(row?.found ?? 0));
    const jobInstanceId = Number(row.job_id);
    const stepId = Number(row.step_id);
    this.events.storing(jobInstanceId, scope, [stepId]);
    this.transactionObserver('create_job', (performance.now() - started) / 1000);
    this.events.notify();
    const tasks = (row.tasks ?? []).map(([host_id, status, batch]) => ({
      host_id,
      status,
      batch,
      log_bytes: 0,
      version: 0,
    }));
    return {
      jobInstanceId,
      stepInstanceIds: [stepId],
      ...(running
        ? {
            running: { step: runningFirstStep(stepId, jobInstanceId, stepRow), tasks },
          }
        : {}),
    };
  }

  private jobRowOf(job: NewJob, running: boolean, now: number) {
    return {
      scope_type: job.scopeType,
      scope_id: job.scopeId,
      name: job.name,
      type: job.type,
      launch_mode: job.launchMode,
      operator: job.operator,
      app_code: job.appCode,
      status: running ? 2 : 1,
      create_time: now,
      start_time: running ? now : null,
      end_time: null,
      callback_url: job.callbackUrl,
      client_request_id: job.clientRequestId,
      job_plan_id: job.plan?.planId ?? null,
      job_template_id: job.plan?.templateId ?? null,
      cron_id: job.cron?.cronId ?? null,
      ...(this.ownerId ? { owner_id: this.ownerId } : {}),
    };
  }

  private createJobInstanceOnce(
    job: NewJob,
    running: boolean,
    now: number,
    storing: { jobInstanceId: number; stepInstanceIds: number[] },
  ): Promise<CreatedJob> {
    return this.withEvents('create_job', async (tx) => {
      // The claim first: a server racing for the same firing waits here, then fails, before any work.
      const firing =
        job.cron &&
        (await tx
          .insertInto('cron_firing')
          .values({
            cron_id: job.cron.cronId,
            scheduled_time: job.cron.scheduledTime,
            outcome: 'fired',
            job_instance_id: null,
            reason: null,
            recorded_at: now,
          })
          .returning('id')
          .executeTakeFirstOrThrow());
      const jobRow = this.jobRowOf(job, running, now);
      const stepRows = stepRowsOf(job, running, now);
      const firstRow = stepRows[0];
      // On PostgreSQL the job and its first step are stored by one statement (the job's insert
      // as a WITH of the step's): one round trip fewer for every job.
      const together =
        this.engine === 'postgres' && firstRow
          ? await tx
              .with('new_job', (db) => db.insertInto('job_instance').values(jobRow).returning('id'))
              .insertInto('step_instance')
              .values((eb) => ({ ...firstRow, job_instance_id: eb.selectFrom('new_job').select('id') }))
              .returning(['id', 'job_instance_id'])
              .executeTakeFirstOrThrow()
          : undefined;
      const jobInstanceId =
        together?.job_instance_id ??
        (await tx.insertInto('job_instance').values(jobRow).returning('id').executeTakeFirstOrThrow()).id;
      const stepInstanceIds = storing.stepInstanceIds;
      storing.jobInstanceId = jobInstanceId;
      const steps: Record<string, unknown>[] = [];
      let first: CreatedJob['running'];
      for (const [order, step] of job.steps.entries()) {
        const row = stepRows[order] as (typeof stepRows)[number];
        const id =
          order === 0 && together
            ? together.id
            : (
                await tx
                  .insertInto('step_instance')
                  .values({ ...row, job_instance_id: jobInstanceId })
                  .returning('id')
                  .executeTakeFirstOrThrow()
              ).id;
        stepInstanceIds.push(id);
        this.events.storing(jobInstanceId, { type: job.scopeType, id: job.scopeId }, [id]);
        const byId = step.hostsById && (await insertHostTasksById(tx, id, step.hostsById, this.engine));
        const hostCounts = byId
          ? byId.counts
          : await insertHostTasks(tx, id, 0, step.hosts, this.engine).then(() =>
              countByStatus(step.hosts.map((h) => h.status)),
            );
        if (running && order === 0) {
          first = {
            step: runningFirstStep(id, jobInstanceId, row),
            // Tasks made by the database from many host ids are read when the step starts.
            tasks: byId
              ? byId.tasks?.map((t) => ({ ...t, log_bytes: 0, version: 0 }))
              : step.hosts.map((h) => ({
                  host_id: h.hostId,
                  status: h.status,
                  log_bytes: 0,
                  batch: h.batch,
                  version: 0,
                })),
          };
        }
        steps.push({
          step_instance_id: id,
          ...createdStepFields(step, running && order === 0),
          host_counts: hostCounts,
        });
      }
      if (job.plan) {
        await tx
          .insertInto('job_instance_var')
          .values({ job_instance_id: jobInstanceId, step_instance_id: 0, body: job.plan.vars })
          .execute();
      }
      if (firing) {
        await tx
          .updateTable('cron_firing')
          .set({ job_instance_id: jobInstanceId })
          .where('id', '=', firing.id)
          .execute();
      }
      const created: PendingEvent = {
        jobInstanceId,
        kind: 'job',
        data: { job_instance_id: jobInstanceId, ...createdFields(job, running, now), steps },
      };
      return {
        result: { jobInstanceId, stepInstanceIds, ...(first ? { running: first } : {}) },
        events: [created],
      };
    });
  }

  async getJob(id: number): Promise<JobInstance | undefined> {
    return this.db.selectFrom('job_instance').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async findJobByClientRequestId(
    appCode: string,
    scope: { type: string; id: string },
    clientRequestId: string,
    since: number,
  ): Promise<JobInstance | undefined> {
    return this.db
      .selectFrom('job_instance')
      .selectAll()
      .where('app_code', '=', appCode)
      .where('client_request_id', '=', clientRequestId)
      .where('scope_type', '=', scope.type)
      .where('scope_id', '=', scope.id)
      .where('create_time', '>=', since)
      .executeTakeFirst();
  }

  /** A job's steps in order, without their definitions (see StepHead). */
  getStepHeadsOfJob(jobInstanceId: number): Promise<StepHead[]> {
    return this.stepsOfJob<StepHead>(jobInstanceId, STEP_HEAD_COLUMNS);
  }

  private async stepsOfJob<S extends StepHead>(
    jobInstanceId: number,
    /** S's columns. */
    columns: readonly (keyof StepInstance)[],
  ): Promise<S[]> {
    const steps = await this.db
      .selectFrom('step_instance')
      .select(columns)
      .where('job_instance_id', '=', jobInstanceId)
      .orderBy('step_order')
      .execute();
    return steps as unknown as S[];
  }

  /** A job and its steps (in order) as one statement saw them; see jobWithSteps. */
  getJobWithSteps(id: number): Promise<{ job: JobInstance; steps: StepInstance[] } | undefined> {
    return this.jobWithSteps<StepInstance>(id, [...STEP_HEAD_COLUMNS, 'spec']);
  }

  /**
   * A job and its steps without their definitions: what a status poll reads. A step's spec
   * holds its whole script, so with a script of 20 KB each poll on PostgreSQL read, sent and
   * parsed it again, and took three times the server's CPU of a poll of an `echo`.
   */
  getJobWithStepHeads(id: number): Promise<{ job: JobInstance; steps: StepHead[] } | undefined> {
    return this.jobWithSteps<StepHead>(id, STEP_HEAD_COLUMNS);
  }

  /**
   * A job and its steps (in order) as one statement saw them: a status poll costs one round
   * trip on PostgreSQL, and never pairs a job with steps from another moment. SQLite reads
   * in process, so the two plain reads cost no more there.
   */
  private async jobWithSteps<S extends StepHead>(
    id: number,
    /** S's columns. */
    columns: readonly (keyof StepInstance)[],
  ): Promise<{ job: JobInstance; steps: S[] } | undefined> {
    if (this.engine === 'sqlite') {
      const job = await this.getJob(id);
      return job && { job, steps: await this.stepsOfJob<S>(id, columns) };
    }
    // Every step column is a number, a string or null, so its JSON form decodes to the values
    // the row itself would (bigints are read as numbers, engines.ts).
    const { rows } = await sql<JobInstance & { steps_of_job: S[] }>`
      select j.*, coalesce(
        (select json_agg(s order by s.step_order)
          from (select ${sql.join(columns.map((c) => sql.ref(c)))} from step_instance
            where job_instance_id = j.id) s),
        '[]'
      ) as steps_of_job
      from job_instance j where j.id = ${id}`.execute(this.db);
    const row = rows[0];
    if (!row) return undefined;
    const { steps_of_job: steps, ...job } = row;
    return { job, steps };
  }

  async getStep(id: number): Promise<StepInstance | undefined> {
    return this.db.selectFrom('step_instance').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A step without its definition (see StepHead). */
  async getStepHead(id: number): Promise<StepHead | undefined> {
    return this.db
      .selectFrom('step_instance')
      .select(STEP_HEAD_COLUMNS)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  async updateJob(id: number, patch: JobPatch): Promise<void> {
    await this.casJob(id, undefined, patch);
  }

  async updateStep(id: number, patch: StepPatch): Promise<void> {
    await this.casStep(id, undefined, patch);
  }

  /**
   * Ends a step and its job in one transaction (with their events): one commit on the way to
   * "finished", not two. With `fromJob`, only while the job is in one of those statuses; false
   * (nothing written) when it is not.
   */
  finishStepAndJob(
    stepId: number,
    stepPatch: StepPatch,
    jobId: number,
    jobPatch: JobPatch,
    fromJob?: readonly number[],
  ): Promise<boolean> {
    return this.casStepAndJob(stepId, undefined, stepPatch, jobId, fromJob, jobPatch);
  }

  /**
   * Moves a step and its job together, each only from one of its `from` statuses: both or
   * neither (false). An operation that moved the step alone, cut off before the job, left a
   * job that every later operation refused (its step no longer in the state they start from).
   */
  async casStepAndJob(
    stepId: number,
    stepFrom: readonly number[] | undefined,
    stepPatch: StepPatch,
    jobId: number,
    jobFrom: readonly number[] | undefined,
    jobPatch: JobPatch,
  ): Promise<boolean> {
    try {
      return await this.withEvents('update_step_and_job', async (tx) => {
        let job = tx.updateTable('job_instance').set(jobPatch).where('id', '=', jobId);
        if (jobFrom) job = job.where('status', 'in', jobFrom);
        if ((await job.executeTakeFirst()).numUpdatedRows === 0n) return { result: false, events: [] };
        let step = tx.updateTable('step_instance').set(stepPatch).where('id', '=', stepId);
        if (stepFrom) step = step.where('status', 'in', stepFrom);
        // Rolls the job's update back.
        if ((await step.executeTakeFirst()).numUpdatedRows === 0n) throw new StepNotMoved();
        return {
          result: true,
          events: [
            ...stepEvents(jobId, stepId, stepPatch, await this.batchCountOf(tx, stepId, stepPatch)),
            jobEvent(jobId, jobPatch),
          ],
        };
      });
    } catch (err) {
      if (err instanceof StepNotMoved) return false;
      throw err;
    }
  }

  /** A step and its running job wait for a person (7) together: a confirmation, a rolling pause. */
  waitForPerson(stepId: number, jobId: number): Promise<boolean> {
    return this.casStepAndJob(stepId, undefined, { status: 7 }, jobId, [2], { status: 7 });
  }

  /**
   * Changes a job's status only if it is still in one of `from`: operations decided on a status
   * read earlier cannot apply twice, even when two servers receive them at once.
   */
  async casJob(id: number, from: readonly number[] | undefined, patch: JobPatch): Promise<boolean> {
    return this.withEvents('update_job', async (tx) => {
      let q = tx.updateTable('job_instance').set(patch).where('id', '=', id);
      if (from) q = q.where('status', 'in', from);
      const moved = (await q.executeTakeFirst()).numUpdatedRows > 0n;
      return { result: moved, events: moved && patch.status !== undefined ? [jobEvent(id, patch)] : [] };
    });
  }

  async casStep(id: number, from: readonly number[] | undefined, patch: StepPatch): Promise<boolean> {
    return this.withEvents('update_step', async (tx) => {
      let q = tx.updateTable('step_instance').set(patch).where('id', '=', id);
      if (from) q = q.where('status', 'in', from);
      const moved = (await q.executeTakeFirst()).numUpdatedRows > 0n;
      if (!moved) return { result: false, events: [] };
      const jobId = (await this.events.jobsOfSteps(tx, [id])).get(id);
      if (jobId === undefined) return { result: true, events: [] };
      return { result: true, events: stepEvents(jobId, id, patch, await this.batchCountOf(tx, id, patch)) };
    });
  }

  /** A client following the step shows "batch N of M": M is the step's last batch. */
  private async batchCountOf(
    tx: Transaction<Database>,
    stepId: number,
    patch: StepPatch,
  ): Promise<number | undefined> {
    if (patch.current_batch === undefined) return undefined;
    const row = await tx
      .selectFrom('host_task')
      .select((eb) => eb.fn.max('batch').as('n'))
      .where('step_instance_id', '=', stepId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /**
   * Starts execution `fromCount + 1` of a finished step: every host gets a new task; with
   * 'failed', hosts that succeeded keep their result as 3 "last success" and only the others
   * run again. The job runs again too. All in one transaction; false if the step moved meanwhile.
   * The step keeps its first start time, as BK-JOB's resetStepExecuteInfoForRetry does; only its
   * end is cleared.
   */
  async beginRetry(stepId: number, fromCount: number, mode: 'failed' | 'all'): Promise<boolean> {
    return this.withEvents('begin_retry', async (tx) => {
      const moved = await tx
        .updateTable('step_instance')
        .set({ execute_count: fromCount + 1, status: 2, end_time: null })
        .where('id', '=', stepId)
        .where('execute_count', '=', fromCount)
        .where('status', 'in', [4, 9, 11])
        .executeTakeFirst();
      if (moved.numUpdatedRows === 0n) return { result: false, events: [] };
      const step = await tx
        .selectFrom('step_instance')
        .select(['job_instance_id', 'current_batch', 'start_time'])
        .where('id', '=', stepId)
        .executeTakeFirstOrThrow();
      const old = await tx
        .selectFrom('host_task')
        .selectAll()
        .where('step_instance_id', '=', stepId)
        .where('execute_count', '=', fromCount)
        .execute();
      // Retrying all hosts of a rolling step runs its current batch again, not the batches before
      // it (as BK-JOB's retry-all): their hosts keep what they came to.
      const before = (t: { batch: number }) => step.current_batch > 0 && t.batch < step.current_batch;
      const rows = old.map((t) => {
        const succeeded = t.status === 9 || t.status === 3;
        if (mode === 'all' && before(t) && !succeeded) return { ...t, execute_count: fromCount + 1 };
        const keep = (mode === 'failed' || before(t)) && succeeded;
        return keep
          ? { ...t, execute_count: fromCount + 1, status: 3 }
          : {
              ...t,
              execute_count: fromCount + 1,
              // A host marked missing (2) stays missing; one without an agent is not sent again.
              status: t.status === 2 ? 2 : t.agent_id ? 5 : 18,
              exit_code: null,
              error_code: 0,
              start_time: null,
              end_time: null,
              log_bytes: 0,
              dropped_bytes: 0,
            };
      });
      // The same hosts as the execution before, at the same addresses: the step's set of
      // addresses (step-ip-sets.ts) already holds them.
      for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
        await tx
          .insertInto('host_task')
          .values(rows.slice(i, i + INSERT_CHUNK))
          .execute();
      }
      // A rolling step starts again from its first batch that has work.
      let currentBatch = step.current_batch;
      if (step.current_batch > 0) {
        const pending = rows.filter((r) => r.status === 5).map((r) => r.batch);
        currentBatch = pending.length > 0 ? Math.min(...pending) : 1;
        await tx
          .updateTable('step_instance')
          .set({ current_batch: currentBatch })
          .where('id', '=', stepId)
          .execute();
      }
      await tx
        .updateTable('job_instance')
        .set({ status: 2, end_time: null })
        .where('id', '=', step.job_instance_id)
        .execute();
      const jobId = step.job_instance_id;
      const stepEvent: PendingEvent = {
        jobInstanceId: jobId,
        kind: 'step',
        data: {
          job_instance_id: jobId,
          step_instance_id: stepId,
          status: 2,
          execute_count: fromCount + 1,
          start_time: step.start_time === null ? null : Number(step.start_time),
          end_time: null,
          current_batch: currentBatch,
          host_counts: countByStatus(rows.map((r) => r.status)),
        },
      };
      return { result: true, events: [stepEvent, jobEvent(jobId, { status: 2, end_time: null })] };
    });
  }

  /** The execution in which a host kept as "last success" actually ran, for its log. */
  async lastSuccessfulRun(stepId: number, hostId: number, before: number): Promise<number | undefined> {
    return (await this.lastSuccessfulRuns(stepId, [hostId], before)).get(hostId);
  }

  /** lastSuccessfulRun of many hosts of a step, by host id (those that never succeeded before are left out). */
  async lastSuccessfulRuns(
    stepId: number,
    hostIds: readonly number[],
    before: number,
  ): Promise<Map<number, number>> {
    const runs = new Map<number, number>();
    for (const ids of idChunks(hostIds)) {
      const rows = await this.db
        .selectFrom('host_task')
        .select((eb) => ['host_id', eb.fn.max('execute_count').as('execute_count')])
        .where('step_instance_id', '=', stepId)
        .where('host_id', 'in', ids)
        .where('execute_count', '<', before)
        .where('status', '=', 9)
        .groupBy('host_id')
        .execute();
      for (const r of rows) runs.set(r.host_id, Number(r.execute_count));
    }
    return runs;
  }

  async listHostTasks(stepInstanceId: number, executeCount: number): Promise<HostTask[]> {
    return this.listHostTasksChangedSince(stepInstanceId, executeCount, -1);
  }

  /**
   * What the engine runs a step from, by host id: the five columns it keeps per task, not the
   * whole rows (a 50,000-host step's addresses and agent ids were read, decoded and dropped
   * right after its accept).
   */
  async listRunnableTasks(stepInstanceId: number, executeCount: number): Promise<RunnableTask[]> {
    return this.db
      .selectFrom('host_task')
      .select(['host_id', 'status', 'log_bytes', 'batch', 'version'])
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .orderBy('host_id')
      .execute();
  }

  async getHostTask(
    stepInstanceId: number,
    executeCount: number,
    hostId: number,
  ): Promise<HostTask | undefined> {
    return this.db
      .selectFrom('host_task')
      .selectAll()
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .where('host_id', '=', hostId)
      .executeTakeFirst();
  }

  /**
   * The tasks of one step execution of these hosts, by host id; a host without one is left out.
   * A log read names a few hosts of a step that may have 50,000: reading them alone costs what
   * the few cost.
   */
  async hostTasksOf(
    stepInstanceId: number,
    executeCount: number,
    hostIds: readonly number[],
  ): Promise<HostTask[]> {
    return this.someHostTasks(stepInstanceId, executeCount, [...new Set(hostIds)], (eb, part) =>
      eb('host_id', 'in', part),
    );
  }

  /** The tasks of one step execution at these addresses (cloud area and IPv4), by host id. */
  async hostTasksAt(
    stepInstanceId: number,
    executeCount: number,
    addresses: readonly { cloudId: number; ip: string }[],
  ): Promise<HostTask[]> {
    const wanted = new Set(addresses.map((a) => `${a.cloudId}:${a.ip}`));
    const ips = [...new Set(addresses.map((a) => a.ip))];
    const tasks = await this.someHostTasks(stepInstanceId, executeCount, ips, (eb, part) =>
      eb('ip', 'in', part),
    );
    return tasks.filter((t) => wanted.has(`${t.cloud_id}:${t.ip}`));
  }

  private async someHostTasks<V>(
    stepInstanceId: number,
    executeCount: number,
    values: readonly V[],
    among: (eb: ExpressionBuilder<Database, 'host_task'>, part: readonly V[]) => Expression<SqlBool>,
  ): Promise<HostTask[]> {
    const out: HostTask[] = [];
    for (const part of idChunks(values))
      out.push(
        ...(await this.db
          .selectFrom('host_task')
          .selectAll()
          .where('step_instance_id', '=', stepInstanceId)
          .where('execute_count', '=', executeCount)
          .where((eb) => among(eb, part))
          .execute()),
      );
    return out.sort((a, b) => a.host_id - b.host_id);
  }

  /** Jobs the engine must carry on with after a restart (a job waiting for a person included). */
  async listActiveJobs(): Promise<JobInstance[]> {
    return this.db
      .selectFrom('job_instance')
      .selectAll()
      .where('status', 'in', IN_FLIGHT_JOB_STATUSES)
      .orderBy('id')
      .execute();
  }

  /**
   * Applies a batch of task writes in one transaction. A status change applies only while the
   * task is unfinished, so a result that arrives twice (an agent resending after a reconnect)
   * is recorded once. Returns the keys whose status change was applied.
   */
  async commitTaskWrites(all: readonly TaskWrite[], ends: readonly StepEnd[] = []): Promise<Set<string>> {
    const applied = new Set<string>();
    if (all.length === 0) return applied;
    let writes = all;
    let aligned = new Map<TaskWrite, AlignedWrite>();
    // Starts and output only: nothing in such a batch is acknowledged to anyone. The agent keeps
    // a task's output and result until it is told the result is recorded, and a result's commit
    // is durable, which makes everything committed before it durable too. A power cut may lose
    // such a batch; the restarted server resumes from what the store holds and the agent
    // resends the rest.
    const relaxed = all.every((w) => w.status === undefined || UNFINISHED.includes(w.status));
    // Outside the transaction: a large output is deflated on the thread pool (log-chunk-codec.ts).
    // A cluster's writes are cut to the stored length inside it, and stored as they are.
    const encoded = this.ownerId === undefined ? await encodeOutput(all) : undefined;
    const [one] = all;
    const [oneEnd] = ends;
    if (
      encoded &&
      one &&
      this.engine === 'postgres' &&
      all.length === 1 &&
      one.sessionEpoch === undefined &&
      one.status !== undefined &&
      !UNFINISHED.includes(one.status) &&
      ends.length <= 1 &&
      (!oneEnd ||
        (oneEnd.stepInstanceId === one.stepInstanceId &&
          oneEnd.keys.every((k) => k === taskKey(one.stepInstanceId, one.executeCount, one.hostId))))
    ) {
      const stored = encoded.get(one) ?? storedAsIs(joinChunks(one.chunks));
      if (stored.length <= INSERT_CHUNK) {
        if (await this.commitResultAtOnce(one, stored, oneEnd))
          applied.add(taskKey(one.stepInstanceId, one.executeCount, one.hostId));
        for (const l of this.taskWriteListeners) l(all, applied);
        return applied;
      }
    }
    await this.withEvents({ op: 'commit_task_writes', relaxed }, async (tx) => {
      for (const w of all) w.storedStatus = undefined;
      writes = await fenceBySession(tx, all);
      // In a cluster other servers may have written these logs: append at the stored length.
      aligned = this.ownerId === undefined ? new Map() : await alignWrites(tx, writes, this.rowLocks);
      const chunksOf = (w: TaskWrite) => aligned.get(w)?.chunks ?? w.chunks;
      const jobs = await this.events.jobsOfSteps(
        tx,
        writes.map((w) => w.stepInstanceId),
      );
      // On PostgreSQL the statuses of one attempt's results (the common batch) are read and
      // locked by the first version bump's statement instead of one of their own.
      const groups = statusGroups(writes);
      const [oneGroup] = groups;
      const locked = this.engine === 'postgres' && groups.length === 1 ? oneGroup : undefined;
      const before = locked ? new Map<string, number>() : await this.statusesBefore(tx, groups);
      const events: PendingEvent[] = [];
      const chunks = writes.flatMap((w) =>
        (encoded?.get(w) ?? storedAsIs(joinChunks(chunksOf(w)))).map((c) => ({
          step_instance_id: w.stepInstanceId,
          execute_count: w.executeCount,
          host_id: w.hostId,
          offset: c.offset,
          data: c.data,
          encoding: c.encoding,
        })),
      );
      const chunkInserts: CompiledQuery[] = [];
      for (let i = 0; i < chunks.length; i += INSERT_CHUNK) {
        const insert = compiledInsert(this.engine, 'log_chunk', chunks.slice(i, i + INSERT_CHUNK), (rows) =>
          tx
            .insertInto('log_chunk')
            .values(rows)
            .onConflict((oc) =>
              oc.columns(['step_instance_id', 'execute_count', 'host_id', 'offset']).doNothing(),
            ),
        );
        if (insert) chunkInserts.push(insert);
      }
      // On PostgreSQL the last output insert runs inside the first version bump's statement:
      // one round trip fewer for every batch that stores output and results.
      const carried =
        this.engine === 'postgres' && writes.some(changesResult) ? chunkInserts.pop() : undefined;
      for (const insert of chunkInserts) await tx.executeQuery(insert);
      const versions = await bumpHostsVersions(tx, writes, carried, locked && { ...locked, into: before });
      // A result held back changes nothing but the output: the agent sends it again.
      const resultOf = (w: TaskWrite): Partial<TaskWrite> => (aligned.get(w)?.resultHeld ? {} : w);
      const changes = new Map<TaskWrite, HostTaskChange>();
      for (const w of writes) {
        const a = aligned.get(w);
        const result = resultOf(w);
        const set: HostTaskChange['set'] = {};
        const version = versions.get(w.stepInstanceId);
        if (version !== undefined && changesResult(result)) set.version = version;
        const logBytes = a ? a.logBytes : w.logBytes;
        if (logBytes !== undefined) set.log_bytes = logBytes;
        if (result.droppedBytes !== undefined) set.dropped_bytes = result.droppedBytes;
        if (result.startTime !== undefined) set.start_time = result.startTime;
        if (result.status !== undefined) set.status = result.status;
        if (result.exitCode !== undefined) set.exit_code = result.exitCode;
        if (result.errorCode !== undefined) set.error_code = result.errorCode;
        if (result.endTime !== undefined) set.end_time = result.endTime;
        if (Object.keys(set).length === 0) continue;
        changes.set(w, {
          stepInstanceId: w.stepInstanceId,
          executeCount: w.executeCount,
          hostId: w.hostId,
          set,
          ...(result.status !== undefined ? { onlyFrom: UNFINISHED } : {}),
        });
      }
      const changed = await updateHostTasks(tx, [...changes.values()]);
      for (const w of writes) {
        const jobInstanceId = jobs.get(w.stepInstanceId) ?? 0;
        const task = taskEventFields(jobInstanceId, w);
        const written = chunksOf(w);
        const first = written[0];
        if (first) {
          const length = written.reduce((n, c) => n + c.data.length, 0);
          events.push({ jobInstanceId, kind: 'log', data: { ...task, offset: first.offset, length } });
        }
        const change = changes.get(w);
        if (!change) continue;
        const result = resultOf(w);
        const updated = changed.has(change);
        const key = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
        if (result.status !== undefined && !updated) w.storedStatus = before.get(key);
        if (result.status === undefined || w.status === undefined || !updated) continue;
        applied.add(key);
        const from = before.get(key);
        if (from === w.status) continue;
        events.push({
          jobInstanceId,
          kind: 'host',
          data: { ...task, from_status: from ?? null, ...hostMoveFields(w) },
        });
      }
      const [oneEnd] = ends;
      if (this.engine === 'postgres' && ends.length === 1 && oneEnd?.keys.every((k) => applied.has(k))) {
        // The end and the events (its own only if it applied) in one statement: the commit
        // that answers a poller "finished" is a round trip shorter.
        const mine = endEvents(oneEnd);
        const append = await this.events.appendingCtes(
          tx,
          events,
          mine,
          sql`exists (select 1 from ended_job)`,
        );
        oneEnd.applied = await endStepAndJobAtOnce(tx, oneEnd, sql`, ${append}`);
        if (oneEnd.applied) events.push(...mine);
        return { result: undefined, events, appended: true };
      }
      for (const end of ends) {
        end.applied = end.keys.every((k) => applied.has(k)) && (await endStepAndJob(tx, end, this.engine));
        if (end.applied) events.push(...endEvents(end));
      }
      return { result: undefined, events };
    });
    for (const [w, a] of aligned) {
      w.chunks = a.chunks;
      w.logBytes = w.storedBytes = a.logBytes;
      w.outOfStep = a.gap || a.resultHeld;
      w.resultHeld = a.resultHeld;
    }
    for (const l of this.taskWriteListeners) l(writes, applied);
    return applied;
  }

  /**
   * PostgreSQL, one host's result (the batch of a one-host job, and the last result of any
   * step): commitTaskWrites as one statement sent outside a transaction, a round trip instead
   * of five (begin, output and version bump, task update, step and job end with the events,
   * commit) on the path that answers a poller "finished". Same rules, same locks in the same
   * order: the task's row (its status before, for the host event), the step's row (its hosts
   * version), the task's update only while unfinished, the job's end only if that applied and
   * the job still runs, then the step's row once (version and, with the job, its end: a row is
   * changed once per statement), and the event lock last. Returns whether the result applied.
   */
  private async commitResultAtOnce(
    w: TaskWrite,
    stored: readonly StoredChunk[],
    end: StepEnd | undefined,
  ): Promise<boolean> {
    const started = performance.now();
    const key = sql`step_instance_id = ${w.stepInstanceId} and execute_count = ${w.executeCount} and host_id = ${w.hostId}`;
    const chunkRows = stored.map(
      (c) =>
        sql`(${w.stepInstanceId}::bigint, ${w.executeCount}::integer, ${w.hostId}::bigint, ${c.offset}::bigint, ${c.data}, ${c.encoding})`,
    );
    const carried =
      chunkRows.length > 0
        ? sql`carried as (insert into log_chunk (step_instance_id, execute_count, host_id, "offset", data, encoding)
            values ${sql.join(chunkRows)}
            on conflict (step_instance_id, execute_count, host_id, "offset") do nothing returning 1),`
        : sql``;
    // The output goes in first (the task's row is read after it), as in a batch of several statements.
    const afterOutput = chunkRows.length > 0 ? sql` and (select count(*) from carried) >= 0` : sql``;
    const set: Record<string, number | null> = {};
    if (w.logBytes !== undefined) set.log_bytes = w.logBytes;
    if (w.droppedBytes !== undefined) set.dropped_bytes = w.droppedBytes;
    if (w.startTime !== undefined) set.start_time = w.startTime;
    set.status = w.status ?? null;
    if (w.exitCode !== undefined) set.exit_code = w.exitCode;
    if (w.errorCode !== undefined) set.error_code = w.errorCode;
    if (w.endTime !== undefined) set.end_time = w.endTime;
    // The task's version is the step's hosts version after this statement's bump (stepped).
    const assignments = sql.join([
      sql`version = (select hosts_version + 1 from step_row)`,
      ...Object.entries(set).map(([col, v]) => sql`${sql.ref(col)} = ${v}`),
    ]);
    const after = end?.unlessPendingAfter;
    const noLaterPending =
      end === undefined || after === undefined
        ? sql``
        : sql` and not exists (select 1 from step_instance where job_instance_id = ${end.jobInstanceId} and step_order > ${after} and status = 1)`;
    const endsJob = end
      ? sql`update job_instance set status = ${end.jobStatus}, end_time = ${end.endTime}
          where id = ${end.jobInstanceId} and status = 2${noLaterPending}
            and exists (select 1 from updated) returning id`
      : sql`select id from job_instance where false`;
    const stepEnd = end
      ? sql`, status = case when exists (select 1 from ended_job) then ${end.stepStatus} else status end,
          end_time = case when exists (select 1 from ended_job) then ${end.endTime} else end_time end`
      : sql``;
    // Events as commitTaskWrites appends them: output, the host's move (only if it applied and
    // changed the status), then the step's and the job's end (only if the job ended).
    const jobInstanceId =
      (await this.events.jobsOfSteps(this.db, [w.stepInstanceId])).get(w.stepInstanceId) ?? 0;
    const task = taskEventFields(jobInstanceId, w);
    const text = (data: Record<string, unknown>) => sql`${JSON.stringify(data)}::text`;
    const events: EventInSql[] = [];
    const [first] = w.chunks;
    if (first) {
      const length = w.chunks.reduce((n, c) => n + c.data.length, 0);
      events.push({
        jobInstanceId,
        kind: 'log',
        data: text({ ...task, offset: first.offset, length }),
        when: sql`true`,
      });
    }
    // The host event's from_status is the status read (and locked) by the statement itself.
    events.push({
      jobInstanceId,
      kind: 'host',
      data: sql`${`{${jsonFields(task)},"from_status":`}::text || coalesce((select status from task_row)::text, 'null')
        || ${`,${jsonFields(hostMoveFields(w))}}`}::text`,
      when: sql`exists (select 1 from updated) and (select status from task_row) is distinct from ${w.status}::integer`,
    });
    if (end) {
      for (const e of endEvents(end))
        events.push({
          jobInstanceId: e.jobInstanceId,
          kind: e.kind,
          data: text(e.data),
          when: sql`exists (select 1 from ended_job)`,
        });
    }
    const append = await this.events.appendingInSql(
      this.db,
      events,
      sql`select (select count(*) from updated) + (select count(*) from ended_job) + (select count(*) from stepped)`,
    );
    const { rows } = await sql<{ applied: boolean; ended: boolean; before: number | null }>`with ${carried}
      task_row as (select status from host_task where ${key}${afterOutput} for update),
      step_row as (select hosts_version from step_instance
        where id = ${w.stepInstanceId} and (select count(*) from task_row) >= 0 for update),
      updated as (update host_task set ${assignments}
        where ${key} and status in (${sql.join(UNFINISHED)}) returning 1),
      ended_job as (${endsJob}),
      stepped as (update step_instance set hosts_version = (select hosts_version + 1 from step_row)${stepEnd}
        where id = ${w.stepInstanceId} returning 1),
      ${append}
      select exists (select 1 from updated) as applied, exists (select 1 from ended_job) as ended,
        (select status from task_row) as before`.execute(this.db);
    const row = rows[0];
    const applied = row?.applied === true;
    if (!applied) w.storedStatus = row?.before ?? undefined;
    if (end) end.applied = row?.ended === true;
    this.transactionObserver('commit_task_writes', (performance.now() - started) / 1000);
    this.events.notify();
    return applied;
  }

  /**
   * The status of each task a batch moves, read (and on PostgreSQL locked) before the move, so
   * host events name the status they leave and stream counters stay exact.
   */
  private async statusesBefore(
    tx: Transaction<Database>,
    groups: readonly StatusGroup[],
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const g of groups) {
      for (let i = 0; i < g.hosts.length; i += INSERT_CHUNK) {
        let q = tx
          .selectFrom('host_task')
          .select(['host_id', 'status'])
          .where('step_instance_id', '=', g.step)
          .where('execute_count', '=', g.count)
          .where('host_id', 'in', g.hosts.slice(i, i + INSERT_CHUNK));
        if (this.rowLocks) q = q.forUpdate();
        for (const r of await q.execute()) out.set(`${g.step}:${g.count}:${r.host_id}`, r.status);
      }
    }
    return out;
  }

  /** Host tasks of a step execution whose result changed after `version` (all of them for -1), by host id. */
  async listHostTasksChangedSince(
    stepInstanceId: number,
    executeCount: number,
    version: number,
  ): Promise<HostTask[]> {
    return this.db
      .selectFrom('host_task')
      .selectAll()
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .where('version', '>', version)
      .orderBy('host_id')
      .execute();
  }

  /**
   * get_job_instance_status's step_ip_result_list of a step execution as JSON text, by host id,
   * built by the database: one value crosses to the server instead of a row object per host
   * (50,000 of them for a large step, whose garbage the next allocation-heavy request paid for).
   * The fields, their order and total_time are those of stepIpResult (host-results-cache.ts);
   * row_to_json and json_object write JSON as compactly as JSON.stringify.
   */
  async hostResultsJson(stepInstanceId: number, executeCount: number): Promise<string> {
    const { rows } =
      this.engine === 'postgres'
        ? await sql<{ list: string }>`
            select '[' || coalesce(string_agg(row_to_json(r)::text, ',' order by r.bk_host_id), '') || ']' as list
            from (select host_id as bk_host_id, ip, cloud_id as bk_cloud_id, status, tag,
                coalesce(exit_code, 0) as exit_code, error_code, start_time, end_time,
                end_time - start_time as total_time
              from host_task where step_instance_id = ${stepInstanceId} and execute_count = ${executeCount}) r`.execute(
            this.db,
          )
        : await sql<{ list: string }>`
            select '[' || coalesce(group_concat(json_object('bk_host_id', host_id, 'ip', ip,
                'bk_cloud_id', cloud_id, 'status', status, 'tag', tag,
                'exit_code', coalesce(exit_code, 0), 'error_code', error_code,
                'start_time', start_time, 'end_time', end_time,
                'total_time', end_time - start_time), ',' order by host_id), '') || ']' as list
            from host_task where step_instance_id = ${stepInstanceId} and execute_count = ${executeCount}`.execute(
            this.db,
          );
    return rows[0]?.list ?? '[]';
  }

  /** The stored output of one host task, in order. */
  async readLog(stepInstanceId: number, executeCount: number, hostId: number): Promise<Buffer> {
    const rows = await this.db
      .selectFrom('log_chunk')
      .select(['offset', 'data', 'encoding'])
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .where('host_id', '=', hostId)
      .orderBy('offset')
      .execute();
    return Buffer.concat(
      await decodeChunks(rows.map((r) => ({ data: bufferOf(r.data), encoding: r.encoding }))),
    );
  }

  /**
   * readLog of many hosts of an attempt, many hosts a statement (log-pages.ts), each log in the
   * chunks it was read in (joined, they are what readLog gives); hosts without output are left
   * out. Undefined once more than `maxBytes` were read: the read stops there.
   */
  async readLogs(
    stepInstanceId: number,
    executeCount: number,
    hostIds: readonly number[],
    maxBytes: number,
  ): Promise<Map<number, Buffer[]> | undefined> {
    const parts = new Map<number, Buffer[]>();
    let bytes = 0;
    const tooMuch = new Error('more than maxBytes of logs');
    try {
      await forEachLogChunk(this.db, stepInstanceId, executeCount, hostIds, (hostId, chunk) => {
        bytes += chunk.length;
        if (bytes > maxBytes) throw tooMuch;
        const list = parts.get(hostId);
        if (list) list.push(chunk);
        else parts.set(hostId, [chunk]);
        return false;
      });
    } catch (err) {
      if (err === tooMuch) return undefined;
      throw err;
    }
    return parts;
  }

  /**
   * The hosts among `hostIds` whose stored output of an attempt contains `keyword`, read as
   * readLog reads it, many hosts a statement and a bounded page of chunks at a time (log-pages.ts).
   */
  hostsWithLogContaining(
    stepInstanceId: number,
    executeCount: number,
    hostIds: readonly number[],
    keyword: string,
  ): Promise<Set<number>> {
    return hostsWithLogContaining(this.db, stepInstanceId, executeCount, hostIds, keyword);
  }

  /**
   * `length` bytes (at most) of a host task's stored output from byte `offset`: the chunk that
   * holds `offset` and those after it up to the end, never the whole log. The bytes come as the
   * views of the chunks they lie in, not joined: a reply encodes them from there (windows of 16
   * MiB are joined, decoded and encoded again for nothing otherwise).
   */
  async readLogRange(
    stepInstanceId: number,
    executeCount: number,
    hostId: number,
    offset: number,
    length: number,
  ): Promise<Buffer[]> {
    const chunks = this.db
      .selectFrom('log_chunk')
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .where('host_id', '=', hostId);
    const first = await chunks
      .select('offset')
      .where('offset', '<=', offset)
      .orderBy('offset', 'desc')
      .limit(1)
      .executeTakeFirst();
    const rows = await chunks
      .select(['offset', 'data', 'encoding'])
      .where('offset', '>=', first?.offset ?? 0)
      .where('offset', '<', offset + length)
      .orderBy('offset')
      .execute();
    const decoded = await this.inflatedRows.decode(
      rows.map((r) => ({
        key: `${stepInstanceId}:${executeCount}:${hostId}:${r.offset}`,
        data: bufferOf(r.data),
        encoding: r.encoding,
      })),
    );
    return byteRange(decoded, Math.max(0, offset - (rows[0]?.offset ?? offset)), length);
  }

  /** Set once: only migration 0052 writes the setting, before any store opens. */
  private ipSetMatchesConfirmed: boolean | undefined;

  private async readIpSetMatchesConfirmed(): Promise<boolean> {
    const row = await this.db
      .selectFrom('server_setting')
      .select('key')
      .where('key', '=', IP_SETS_CONFIRMED_KEY)
      .executeTakeFirst();
    return row !== undefined;
  }

  async listJobs(f: JobListFilter): Promise<{ total: number; jobs: JobInstance[] }> {
    let q = this.db
      .selectFrom('job_instance')
      .where('scope_type', '=', f.scopeType)
      .where('scope_id', '=', f.scopeId);
    if (f.createTimeStart !== undefined) q = q.where('create_time', '>=', f.createTimeStart);
    if (f.createTimeEnd !== undefined) q = q.where('create_time', '<=', f.createTimeEnd);
    if (f.jobInstanceId !== undefined) q = q.where('id', '=', f.jobInstanceId);
    if (f.operator !== undefined) q = q.where('operator', '=', f.operator);
    const name = f.name;
    if (name !== undefined) q = q.where((eb) => eb(eb.fn('lower', ['name']), 'like', containsLike(name)));
    if (f.launchMode !== undefined) q = q.where('launch_mode', '=', f.launchMode);
    if (f.cronId !== undefined) q = q.where('cron_id', '=', f.cronId);
    if (f.type !== undefined) q = q.where('type', '=', f.type);
    if (f.status !== undefined) q = q.where('status', '=', f.status);
    if (f.ip !== undefined) {
      const confirm = (this.ipSetMatchesConfirmed ??= await this.readIpSetMatchesConfirmed());
      return this.listJobsMatched(
        q.where(jobHasTaskOn(sql.ref('job_instance.id'), f.ip, this.engine, confirm)),
        f,
      );
    }
    const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
    const jobs = await q
      .selectAll()
      .orderBy('create_time', 'desc')
      .orderBy('id', 'desc')
      .offset(f.start)
      .limit(f.length)
      .execute();
    return { total: Number(total), jobs };
  }

  /**
   * A list whose filter looks into each job's steps (the ip filter), its total and page from one
   * evaluation of it, planned with its values. Asked as a count and then a page, the page's
   * LIMIT (and on PostgreSQL a generic plan for both) walked the range newest first, looking each
   * job's steps up one by one until the page filled: through every job of the range when few
   * match (200,000 one-host jobs, an ip in none: 0.93 s on PostgreSQL, 0.21 s on SQLite).
   * Gathered whole first (on PostgreSQL by a hash join), the matches are counted and paged
   * together (0.12 s and 0.10 s).
   */
  private async listJobsMatched(
    filtered: SelectQueryBuilder<Database, 'job_instance', object>,
    f: JobListFilter,
  ): Promise<{ total: number; jobs: JobInstance[] }> {
    const matched = this.db.with(
      (cte) => cte('m').materialized(),
      () => filtered.select(['id', 'create_time']),
    );
    // The count and the page read the matches once gathered: no window over them all, and the
    // page a bounded sort (LIMIT). The count's row comes with a page past the last match too.
    const rows = await planEachCall(
      this.db,
      matched
        .selectFrom((eb) =>
          eb
            .selectFrom('m')
            .select((e) => e.fn.countAll<number>().as('total'))
            .as('t'),
        )
        .leftJoin(
          (eb) =>
            eb
              .selectFrom('m')
              .select(['m.id', 'm.create_time'])
              .orderBy('m.create_time', 'desc')
              .orderBy('m.id', 'desc')
              .offset(f.start)
              .limit(f.length)
              .as('p'),
          (join) => join.onTrue(),
        )
        .select(['t.total', 'p.id']),
    );
    const ids = rows.flatMap((r) => (r.id === null ? [] : [r.id]));
    const jobs =
      ids.length === 0
        ? []
        : await this.db
            .selectFrom('job_instance')
            .selectAll()
            .where('id', 'in', ids)
            .orderBy('create_time', 'desc')
            .orderBy('id', 'desc')
            .execute();
    const total = rows[0]?.total ?? 0;
    return { total: Number(total), jobs };
  }

  // ------------------------------------------------------------ callbacks

  /**
   * Now for the callback queue's times (due, lease, next attempt), read by the statement: the
   * servers sharing a database send from one queue, so it is timed by the database's clock. By
   * their own, a server whose clock runs ahead would take callbacks another still holds under
   * its lease, and one whose clock runs behind would see retries due late.
   */
  private callbackNow(): RawBuilder<number> {
    return this.clockMs ?? sql<number>`${Date.now()}`;
  }

  /**
   * `queuedAt`: the time of the finish it announces (the job's end_time, on the clock of the
   * server that ended it), which finishedWithoutCallback compares; the callback is due at once.
   */
  async enqueueCallback(c: {
    jobInstanceId: number;
    url: string;
    payload: string;
    queuedAt: number;
  }): Promise<void> {
    await this.db
      .insertInto('callback')
      .values({
        job_instance_id: c.jobInstanceId,
        url: c.url,
        payload: c.payload,
        state: 'pending',
        attempts: 0,
        next_attempt_at: this.callbackNow(),
        created_at: c.queuedAt,
      })
      .execute();
  }

  /**
   * Due callbacks, soonest first: their ids and URLs only (payloads are read for those sent).
   * URLs as stored: sealed, or plain in rows from before they were (engine/callback-url.ts).
   */
  async dueCallbacks(limit: number): Promise<{ id: number; url: string }[]> {
    return this.db
      .selectFrom('callback')
      .select(['id', 'url'])
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', this.callbackNow())
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
  }

  /**
   * The callbacks of these ids still due, to send. With a lease (cluster mode) they are claimed
   * for one sender by moving their next attempt past it, so no other server sends them
   * meanwhile; a sender that dies before recording the attempt leaves them due again when the
   * lease ends (delivered at least once, never lost).
   */
  async takeDueCallbacks(ids: readonly number[], leaseMs?: number): Promise<Callback[]> {
    if (ids.length === 0) return [];
    if (leaseMs === undefined)
      return this.db
        .selectFrom('callback')
        .selectAll()
        .where('id', 'in', ids)
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', this.callbackNow())
        .execute();
    return this.db
      .updateTable('callback')
      .set({ next_attempt_at: sql<number>`${this.callbackNow()} + ${leaseMs}` })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('callback')
          .select('id')
          .where('id', 'in', ids)
          .where('state', '=', 'pending')
          .where('next_attempt_at', '<=', this.callbackNow())
          .forUpdate()
          .skipLocked(),
      )
      .returningAll()
      .execute();
  }

  /** How long until the soonest pending callback is due (0 or less: due now); undefined: none. */
  async nextCallbackDueInMs(): Promise<number | undefined> {
    const r = await this.db
      .selectFrom('callback')
      .select(sql<number>`next_attempt_at - ${this.callbackNow()}`.as('wait'))
      .where('state', '=', 'pending')
      .orderBy('next_attempt_at')
      .limit(1)
      .executeTakeFirst();
    return r === undefined ? undefined : Number(r.wait);
  }

  /**
   * Records an attempt, made now, its callback due again `retryInMs` later; false when another
   * attempt was recorded first (and this one is not).
   */
  async recordCallbackAttempt(a: {
    callbackId: number;
    attempt: number;
    httpStatus: number | null;
    error: string;
    state: 'pending' | 'delivered' | 'failed';
    retryInMs: number;
  }): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      // Only onto the callback as the attempt found it: in a cluster an attempt recorded after
      // its lease ran out must not undo another server's delivery, nor cut its lease short.
      const r = await tx
        .updateTable('callback')
        .set({
          state: a.state,
          attempts: a.attempt,
          next_attempt_at: sql<number>`${this.callbackNow()} + ${a.retryInMs}`,
        })
        .where('id', '=', a.callbackId)
        .where('state', '=', 'pending')
        .where('attempts', '=', a.attempt - 1)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      await tx
        .insertInto('callback_attempt')
        .values({
          callback_id: a.callbackId,
          attempt: a.attempt,
          at: this.callbackNow(),
          http_status: a.httpStatus,
          error: a.error,
        })
        .onConflict((oc) => oc.columns(['callback_id', 'attempt']).doNothing())
        .execute();
      return true;
    });
  }

  /**
   * Finished jobs with a callback URL whose finish has no callback queued, ended since `since`
   * (or the one job asked for): a job's end and its callback are two commits, and a crash or a
   * store error between them loses the second. The callback of a finish is queued with the
   * finish's own end time. `unlessOwnerAlive` (cluster mode) leaves out jobs whose owner is
   * alive: it may be queueing that callback right now.
   */
  async finishedWithoutCallback(opts: {
    since: number;
    jobInstanceId?: number;
    unlessOwnerAlive?: boolean;
  }): Promise<JobInstance[]> {
    let q = this.db
      .selectFrom('job_instance as j')
      .selectAll('j')
      .where('j.callback_url', 'is not', null)
      .where('j.end_time', '>=', opts.since)
      .where('j.status', 'in', CALLBACK_STATUSES)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('callback as c')
              .select('c.id')
              .whereRef('c.job_instance_id', '=', 'j.id')
              // A job's end callback, not a confirmation notification queued for the same job.
              // Told apart by the payload, not by `c.url = j.callback_url`: both URLs are sealed
              // (engine/callback-url.ts) and a sealed value is not the same text twice (a plain
              // URL of an older job sealed in the queue, either one resealed after a key rotation).
              .where(
                sql<string>`substr(c.payload, 1, ${JOB_CALLBACK_PAYLOAD_START.length})`,
                '=',
                JOB_CALLBACK_PAYLOAD_START,
              )
              .whereRef('c.created_at', '>=', 'j.end_time'),
          ),
        ),
      );
    if (opts.jobInstanceId !== undefined) q = q.where('j.id', '=', opts.jobInstanceId);
    if (opts.unlessOwnerAlive)
      q = q.where(({ or, eb, not, exists, selectFrom }) =>
        or([
          eb('j.owner_id', 'is', null),
          not(
            exists(
              selectFrom('server_node as n')
                .select('n.id')
                .whereRef('n.id', '=', 'j.owner_id')
                .where('n.state', '=', 'alive'),
            ),
          ),
        ]),
      );
    return q.orderBy('j.id').limit(MISSED_CALLBACKS_AT_ONCE).execute();
  }

  async callbacksOfJob(jobInstanceId: number): Promise<
    (Callback & {
      attempt_log: { attempt: number; at: number; http_status: number | null; error: string }[];
    })[]
  > {
    const cbs = await this.db
      .selectFrom('callback')
      .selectAll()
      .where('job_instance_id', '=', jobInstanceId)
      .orderBy('id')
      .execute();
    if (cbs.length === 0) return [];
    const attempts = await this.db
      .selectFrom('callback_attempt')
      .selectAll()
      .where(
        'callback_id',
        'in',
        cbs.map((c) => c.id),
      )
      .orderBy('attempt')
      .execute();
    return cbs.map((c) => ({
      ...c,
      attempt_log: attempts
        .filter((a) => a.callback_id === c.id)
        .map((a) => ({ attempt: a.attempt, at: a.at, http_status: a.http_status, error: a.error })),
    }));
  }

  /**
   * Callback URLs, of jobs or of queued callbacks, not beginning with `sealedPrefix` (the current
   * key's): plain ones stored before callback URLs were sealed, and ones sealed under an earlier
   * key. No column holds their key id, so this walks the rows by id (of job rows, only those with
   * a callback URL).
   */
  async callbackUrlsToReseal(
    table: 'job_instance' | 'callback',
    sealedPrefix: string,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; url: string }[]> {
    const notUnder = (column: string) =>
      sql<boolean>`substr(${sql.ref(column)}, 1, ${sealedPrefix.length}) <> ${sealedPrefix}`;
    if (table === 'callback')
      return this.db
        .selectFrom('callback')
        .select(['id', 'url'])
        .where('id', '>', afterId)
        .where(notUnder('url'))
        .orderBy('id')
        .limit(limit)
        .execute();
    const rows = await this.db
      .selectFrom('job_instance')
      .select(['id', 'callback_url'])
      .where('callback_url', 'is not', null)
      .where('id', '>', afterId)
      .where(notUnder('callback_url'))
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, url: r.callback_url ?? '' }));
  }

  /** Replaces a stored callback URL if it is still `expected` (another server may have resealed it). */
  async replaceCallbackUrl(
    table: 'job_instance' | 'callback',
    id: number,
    expected: string,
    next: string,
  ): Promise<boolean> {
    const r =
      table === 'callback'
        ? await this.db
            .updateTable('callback')
            .set({ url: next })
            .where('id', '=', id)
            .where('url', '=', expected)
            .executeTakeFirst()
        : await this.db
            .updateTable('job_instance')
            .set({ callback_url: next })
            .where('id', '=', id)
            .where('callback_url', '=', expected)
            .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Steps whose sensitive parameter is not sealed under `currentKey` (plain or an older key). */
  async stepsToReseal(
    currentKey: string,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; spec: string }[]> {
    return this.db
      .selectFrom('step_instance')
      .select(['id', 'spec'])
      .where('sealed_key', 'is not', null)
      .where('sealed_key', '<>', currentKey)
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /** Replaces a step's spec if it is still `expected` (another server may have resealed it). */
  async replaceStepSpec(
    id: number,
    expected: string,
    spec: string,
    sealedKey: string | null,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('step_instance')
      .set({ spec, sealed_key: sealedKey })
      .where('id', '=', id)
      .where('spec', '=', expected)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

/** Whether a write changes what a status reply shows of the host (not only its output). */
function changesResult(w: Partial<TaskWrite>): boolean {
  return (
    w.status !== undefined ||
    w.exitCode !== undefined ||
    w.errorCode !== undefined ||
    w.startTime !== undefined ||
    w.endTime !== undefined
  );
}

/**
 * Bumps hosts_version of every step whose host results the writes change, and returns the new
 * versions. The update holds the step row until the commit, so versions become visible in
 * order: a reader that sees version V also sees every row stamped V or lower.
 */
/**
 * Drops the writes whose agent session moved on (a newer epoch, on this server or another): a
 * stale connection can neither record a result nor fail a task. The share lock keeps a session
 * change from slipping between the check and the commit.
 */
async function fenceBySession(
  tx: Transaction<Database>,
  writes: readonly TaskWrite[],
): Promise<readonly TaskWrite[]> {
  const hosts = [...new Set(writes.filter((w) => w.sessionEpoch !== undefined).map((w) => w.hostId))];
  if (hosts.length === 0) return writes;
  for (const w of writes) w.fenced = false;
  const epochs = new Map<number, number>();
  for (let i = 0; i < hosts.length; i += INSERT_CHUNK) {
    const rows = await tx
      .selectFrom('agent_session')
      .select(['host_id', 'epoch'])
      .where('host_id', 'in', hosts.slice(i, i + INSERT_CHUNK))
      .forShare()
      .execute();
    for (const r of rows) epochs.set(Number(r.host_id), Number(r.epoch));
  }
  return writes.filter((w) => {
    if (w.sessionEpoch === undefined || (epochs.get(w.hostId) ?? 0) === w.sessionEpoch) return true;
    w.fenced = true;
    return false;
  });
}

interface AlignedWrite extends AlignedOutput {
  resultHeld: boolean;
}

/**
 * Cluster mode: each write's output cut to append exactly at the task's stored length (read,
 * and on PostgreSQL locked, in the commit), and its result held back while output is missing.
 */
async function alignWrites(
  tx: Transaction<Database>,
  writes: readonly TaskWrite[],
  rowLocks: boolean,
): Promise<Map<TaskWrite, AlignedWrite>> {
  const out = new Map<TaskWrite, AlignedWrite>();
  const checked = writes.filter((w) => w.chunks.length > 0 || w.needBytes !== undefined);
  const byAttempt = new Map<string, TaskWrite[]>();
  for (const w of checked) {
    const k = `${w.stepInstanceId}:${w.executeCount}`;
    byAttempt.set(k, [...(byAttempt.get(k) ?? []), w]);
  }
  for (const group of byAttempt.values()) {
    const { stepInstanceId, executeCount } = group[0] as TaskWrite;
    const stored = new Map<number, number>();
    for (let i = 0; i < group.length; i += INSERT_CHUNK) {
      let q = tx
        .selectFrom('host_task')
        .select(['host_id', 'log_bytes'])
        .where('step_instance_id', '=', stepInstanceId)
        .where('execute_count', '=', executeCount)
        .where(
          'host_id',
          'in',
          group.slice(i, i + INSERT_CHUNK).map((w) => w.hostId),
        )
        .orderBy('host_id');
      if (rowLocks) q = q.forUpdate();
      for (const r of await q.execute()) stored.set(r.host_id, Number(r.log_bytes));
    }
    for (const w of group) {
      const a = alignOutput(stored.get(w.hostId) ?? 0, w.chunks);
      out.set(w, { ...a, resultHeld: w.needBytes !== undefined && a.logBytes < w.needBytes });
    }
  }
  return out;
}

/** The tasks of one step attempt whose status a batch moves. */
interface StatusGroup {
  step: number;
  count: number;
  hosts: number[];
}

function statusGroups(writes: readonly TaskWrite[]): StatusGroup[] {
  const byAttempt = new Map<string, StatusGroup>();
  for (const w of writes) {
    if (w.status === undefined) continue;
    const k = `${w.stepInstanceId}:${w.executeCount}`;
    let g = byAttempt.get(k);
    if (!g) byAttempt.set(k, (g = { step: w.stepInstanceId, count: w.executeCount, hosts: [] }));
    g.hosts.push(w.hostId);
  }
  return [...byAttempt.values()];
}

/**
 * PostgreSQL: a step's version bump, with the batch's last output insert (`carried`) and the
 * read of its results' statuses before the move (`locked`, FOR UPDATE) in the same statement.
 * A data-modifying WITH runs once whether or not the statement reads it; the statuses come
 * first in the select list, so the host tasks are locked before the step, as in a batch that
 * reads them by a statement of its own.
 */
async function bumpWithin(
  tx: Transaction<Database>,
  step: number,
  carried: CompiledQuery | undefined,
  locked: (StatusGroup & { into: Map<string, number> }) | undefined,
): Promise<number | undefined> {
  const params: unknown[] = [...(carried?.parameters ?? [])];
  const p = (v: unknown) => `$${params.push(v)}`;
  const ctes = carried ? [`carried as (${carried.sql})`] : [];
  let statuses = 'null::json';
  if (locked) {
    ctes.push(
      `locked as (select host_id, status from host_task where step_instance_id = ${p(locked.step)} and execute_count = ${p(locked.count)} and host_id = any(${p(locked.hosts)}::bigint[]) for update)`,
    );
    statuses = `(select json_agg(json_build_array(host_id, status)) from locked)`;
  }
  ctes.push(
    `bumped as (update step_instance set hosts_version = hosts_version + 1 where id = ${p(step)} returning hosts_version)`,
  );
  const r = await tx.executeQuery<{
    statuses: [number, number][] | null;
    hosts_version: number | string | null;
  }>(
    CompiledQuery.raw(
      `with ${ctes.join(', ')} select ${statuses} as statuses, (select hosts_version from bumped) as hosts_version`,
      params,
    ),
  );
  const row = r.rows[0];
  if (locked) {
    for (const [host, status] of row?.statuses ?? [])
      locked.into.set(`${locked.step}:${locked.count}:${host}`, status);
  }
  return row?.hosts_version === null || row?.hosts_version === undefined
    ? undefined
    : Number(row.hosts_version);
}

async function bumpHostsVersions(
  tx: Transaction<Database>,
  writes: readonly TaskWrite[],
  carried?: CompiledQuery,
  locked?: StatusGroup & { into: Map<string, number> },
): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const steps = [...new Set(writes.filter(changesResult).map((w) => w.stepInstanceId))].sort((a, b) => a - b);
  for (const [i, id] of steps.entries()) {
    const carry = i === 0 ? carried : undefined;
    const lock = locked?.step === id ? locked : undefined;
    if (carry || lock) {
      const version = await bumpWithin(tx, id, carry, lock);
      if (version !== undefined) out.set(id, version);
      continue;
    }
    const r = await tx
      .updateTable('step_instance')
      .set((eb) => ({ hosts_version: eb('hosts_version', '+', 1) }))
      .where('id', '=', id)
      .returning('hosts_version')
      .executeTakeFirst();
    if (r) out.set(id, Number(r.hosts_version));
  }
  return out;
}

function hostTaskRow(stepInstanceId: number, executeCount: number, h: NewHostTask) {
  return {
    step_instance_id: stepInstanceId,
    execute_count: executeCount,
    host_id: h.hostId,
    cloud_id: h.cloudId,
    ip: h.ip,
    ipv6: h.ipv6,
    agent_id: h.agentId,
    status: h.status,
    exit_code: null,
    error_code: 0,
    tag: '',
    start_time: null,
    end_time: null,
    log_bytes: 0,
    dropped_bytes: 0,
    batch: h.batch,
  };
}

async function insertHostTasks(
  tx: Transaction<Database>,
  stepInstanceId: number,
  executeCount: number,
  hosts: readonly NewHostTask[],
  engine: EngineCapabilities['name'],
): Promise<void> {
  if (engine === 'postgres') return insertHostTaskArrays(tx, stepInstanceId, executeCount, hosts);
  if (hosts.length > 0)
    await storeIpSet(
      tx,
      stepInstanceId,
      ipSetOf(hosts, (h) => h.ip),
    );
  for (let i = 0; i < hosts.length; i += INSERT_CHUNK) {
    const rows = hosts.slice(i, i + INSERT_CHUNK).map((h) => hostTaskRow(stepInstanceId, executeCount, h));
    // A full chunk's insert is compiled once: building and compiling 500 rows of values (8,000
    // parameters) cost more than SQLite took to run them, 100 times for a 50,000-host step.
    // The last, shorter chunk of a step has a length of its own: built as usual.
    if (rows.length < INSERT_CHUNK) await tx.insertInto('host_task').values(rows).execute();
    else await insertRows(tx, engine, 'host_task', rows, (r) => tx.insertInto('host_task').values(r));
  }
}

/**
 * PostgreSQL takes a step's hosts as one statement of seven arrays: parsing and binding 8,000
 * parameters a chunk, one round trip each, cost it more than storing the rows. The columns left
 * out take their defaults, which are what hostTaskRow writes for a new task. The arrays are
 * sent as array literals made here in one pass (node-postgres makes them element by element
 * through its generic value preparation, which for 50,000 hosts took longer than the insert).
 */
async function insertHostTaskArrays(
  tx: Transaction<Database>,
  stepInstanceId: number,
  executeCount: number,
  hosts: readonly NewHostTask[],
): Promise<void> {
  const n = hosts.length;
  const [hostIds, cloudIds, ips, ipv6s, agentIds, statuses, batches] = Array.from(
    { length: 7 },
    () => new Array<string>(n),
  ) as [string[], string[], string[], string[], string[], string[], string[]];
  let ipsBare = true;
  for (let i = 0; i < n; i++) {
    const h = hosts[i] as NewHostTask;
    hostIds[i] = String(h.hostId);
    cloudIds[i] = String(h.cloudId);
    if (BARE_ADDRESS.test(h.ip)) ips[i] = h.ip;
    else {
      ips[i] = arrayText(h.ip);
      ipsBare = false;
    }
    ipv6s[i] = arrayText(h.ipv6);
    agentIds[i] = h.agentId === null ? 'NULL' : arrayText(h.agentId);
    statuses[i] = String(h.status);
    batches[i] = String(h.batch);
  }
  const literal = (elements: string[]) => `{${elements.join(',')}}`;
  const ipLiteral = literal(ips);
  // The step's set of addresses (step-ip-sets.ts) goes with its tasks. When every address is
  // bare in the array literal, the literal between its braces is the set between its commas:
  // no second pass over 50,000 addresses here, and none in the database (array_to_string of
  // the array took ~18 ms).
  const ipSet =
    n > 0
      ? sql`with ip_set as (insert into step_ip_set (step_instance_id, ips)
          values (${stepInstanceId}::bigint, ${ipsBare ? `,${ipLiteral.slice(1, -1)},` : ipSetOf(hosts, (h) => h.ip)}::text)) `
      : sql``;
  await sql`${ipSet}insert into host_task
      (step_instance_id, execute_count, host_id, cloud_id, ip, ipv6, agent_id, status, batch)
    select ${stepInstanceId}::bigint, ${executeCount}::integer, t.host_id, t.cloud_id, t.ip, t.ipv6,
      t.agent_id, t.status, t.batch
    from unnest(${literal(hostIds)}::bigint[], ${literal(cloudIds)}::bigint[],
      ${ipLiteral}::text[], ${literal(ipv6s)}::text[],
      ${literal(agentIds)}::text[], ${literal(statuses)}::integer[],
      ${literal(batches)}::integer[])
      as t(host_id, cloud_id, ip, ipv6, agent_id, status, batch)`.execute(tx);
}

const ARRAY_TEXT_SPECIAL = /[\\"]/;

/**
 * An address an array literal may hold unquoted, as it is: an IPv4 or IPv6 address's characters
 * only (no white space, none of `{}",\`, never the word NULL), at least one.
 */
const BARE_ADDRESS = /^[0-9a-fA-F.:]+$/;

/** A text element of a PostgreSQL array literal: quoted, with backslash and `"` escaped. */
function arrayText(value: string): string {
  // Testing first costs half of always replacing, and addresses never need the escapes.
  return ARRAY_TEXT_SPECIAL.test(value) ? `"${value.replace(/[\\"]/g, '\\$&')}"` : `"${value}"`;
}
