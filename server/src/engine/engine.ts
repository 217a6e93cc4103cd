/**
 * The execution engine: job -> steps -> one agent task per target host.
 *
 * Every state change is written to the store before it is acted on, and the engine rebuilds
 * what it is doing from the store at start (`recover`), so a server killed at any moment
 * loses nothing it acknowledged. In memory it keeps only an index of the steps in flight.
 *
 * Task life: 5 waiting --dispatched, agent reports start--> 7 running --result--> final.
 * A waiting task is (re)sent whenever its agent (re)connects; a result is recorded once
 * (the store only moves unfinished tasks), and the agent forgets a task only after the server
 * tells it the result is recorded.
 *
 * A step runs its hosts in batches when it is rolling (batch 0 = all hosts at once). After a
 * batch: pause on failure (mode 1), go on (mode 2), or wait for a person (mode 3, step and job
 * at 7 until operate_step_instance 13). Job and step operations follow behaviour notes §4.2,
 * §4.3 and §4.6; their preconditions are checked with conditional updates in the store.
 */
import { PROTOCOL_VERSION, parseTaskKey, taskKey } from '@jobfleet/protocol';
import type {
  FileProgress,
  FilesServed,
  HeldTask,
  OutputFrame,
  TaskFinished,
  TaskStarted,
} from '@jobfleet/protocol';
import type { AgentEvents } from '../agent-link/agent-hub.js';
import { agentAway } from '../cluster/cluster-store.js';
import type { Services } from '../services.js';
import type {
  JobInstance,
  NewJob,
  RunnableStep,
  RunnableTask,
  StepEnd,
  StepInstance,
  TaskWrite,
} from '../store/execution-store.js';
import { CallbackQueue } from './callback-queue.js';
import { callbackPayload } from './callback-payload.js';
import { failureBudget } from './rolling-plan.js';
import { parseReported } from './job-variables.js';
import {
  AgentErrorCode,
  HostStatus,
  IN_FLIGHT_JOB_STATUSES,
  RunStatus,
  hostStatusOfOutcome,
  isCallbackStatus,
  isHostFinished,
  isHostSuccess,
  stepStatusOfHosts,
} from './statuses.js';
import type { StepKind, StepRun as ActiveStep, TaskRun as ActiveTask } from './step-kind.js';
import { parseStepSpec } from './step-spec.js';
import type { StepSpec } from './step-spec.js';
import { ConfirmStep } from './steps/confirm-step.js';
import { FileStep } from './steps/file-step.js';
import { ScriptStep } from './steps/script-step.js';
import { TaskWriter } from './task-writer.js';
import type { CommittedBatch } from './task-writer.js';

/** A job whose progress here stopped at a store error is carried on again after this, doubling up to the cap. */
const CARRY_ON_FIRST_MS = 500;
const CARRY_ON_MAX_MS = 30_000;
/** How far back a start looks for finished jobs whose callback a crash lost. */
const MISSED_CALLBACK_WINDOW_MS = 24 * 3600_000;
/**
 * The job statuses an end its steps decided (success, failure) may replace: a job in flight,
 * unless it is being stopped (10), which ends stopped (11) whatever its steps did. Conditional,
 * because in a cluster a terminate may be stored by another server between this server's read
 * of the job and its write of the end.
 */
const NATURAL_END_FROM = IN_FLIGHT_JOB_STATUSES.filter((s) => s !== RunStatus.STOPPING);
/** Where a waiting step's job may be: waiting, or still running where an older server stored the step's wait alone. */
const WAITING_OR_RUNNING = [RunStatus.WAITING_USER, RunStatus.RUNNING];
/** The statuses a job's end at `status` may replace: a stop's end (11) any, see NATURAL_END_FROM. */
const endsFrom = (status: RunStatus) => (status === RunStatus.STOP_SUCCESS ? undefined : NATURAL_END_FROM);

/** Why an operation was refused; the API maps each to its documented code. */
export type OperationRefusal = 'not_found' | 'bad_state' | 'repeat_start';

/** Cluster mode: a task of a job owned by another server, whose agent this server holds. */
interface RelayedTask {
  stepInstanceId: number;
  executeCount: number;
  hostId: number;
  status: number;
  logBytes: number;
  ending?: boolean;
}

/** The step a job is at: running, between batches, waiting for a person, or being stopped. */
function currentStepOf<T extends { status: number }>(steps: readonly T[]): T | undefined {
  return steps.find((s) =>
    [RunStatus.RUNNING, RunStatus.ROLLING_WAITING, RunStatus.WAITING_USER, RunStatus.STOPPING].includes(
      s.status as 2,
    ),
  );
}

/**
 * A step's end from its hosts' results: a failure is 6 "ignore error" and the job goes on when
 * the step ignores errors or rolls in mode 2 "ignore failure and continue" (behaviour notes §4.3),
 * or when every failure is in a batch before the last one run: a rolling step stops at a failed
 * batch, so it went on past one only because a person ignored or skipped it.
 */
function endStatusOf(step: Pick<ActiveStep, 'spec' | 'batch' | 'tasks'>): RunStatus {
  const tasks = [...step.tasks.values()];
  const hostsStatus = stepStatusOfHosts(tasks.map((t) => t.status));
  if (hostsStatus !== RunStatus.FAIL) return hostsStatus;
  const ignored = step.batch > 0 && tasks.every((t) => t.batch !== step.batch || isHostSuccess(t.status));
  const ignores = step.spec.ignoreError || step.spec.rolling?.mode === 2 || ignored;
  return ignores ? RunStatus.IGNORE_ERROR : RunStatus.FAIL;
}

export class Engine implements AgentEvents {
  private readonly steps = new Map<number, ActiveStep>();
  /** Cluster mode: tasks relayed for other owners, by task key. */
  private readonly relayed = new Map<string, RelayedTask>();
  /** Cluster mode: per active step, the last host-task version seen, and when it was activated. */
  private readonly seen = new Map<number, { version: number; since: number }>();
  /** hostId -> steps with an in-flight task on that host */
  private readonly byHost = new Map<number, Set<ActiveStep>>();
  private readonly writer: TaskWriter;
  private readonly locks = new Map<number, Promise<unknown>>();
  private readonly files: FileStep;
  private readonly kinds: Record<StepSpec['kind'], StepKind>;
  private closed = false;
  readonly callbacks: CallbackQueue;

  constructor(private readonly services: Services) {
    this.writer = new TaskWriter(
      services.store.executions,
      (b) => this.afterCommit(b),
      (err) => services.log.error({ err }, 'task write batch failed; will retry'),
      (writes) => this.endsWith(writes),
    );
    this.callbacks = new CallbackQueue(services);
    // Step kinds end a task that has not started when they find it cannot run.
    const failWaiting = (stepInstanceId: number, hostId: number, status: number, errorCode: number) => {
      const step = this.steps.get(stepInstanceId);
      const task = step?.tasks.get(hostId);
      if (step && task?.status === HostStatus.WAITING) {
        this.finishTask(step, task, { status, errorCode, exitCode: null, endTime: Date.now() });
      }
    };
    this.files = new FileStep(services, (stepInstanceId, hostId, status) =>
      failWaiting(stepInstanceId, hostId, status, AgentErrorCode.OTHER),
    );
    this.kinds = {
      script: new ScriptStep(services, failWaiting),
      file: this.files,
      confirm: new ConfirmStep(services, (job, url, payload) =>
        this.callbacks.enqueue(job, url, payload, Date.now()),
      ),
    };
  }

  private kindOf(step: ActiveStep): StepKind {
    return this.kinds[step.spec.kind];
  }

  private get store() {
    return this.services.store.executions;
  }

  /** Operations on one job run one at a time, so their checks and effects do not interleave. */
  private withJobLock<T>(jobInstanceId: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(jobInstanceId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(jobInstanceId, settled);
    void settled.then(() => {
      if (this.locks.get(jobInstanceId) === settled) this.locks.delete(jobInstanceId);
    });
    return next;
  }

  /**
   * `fn` under the job's lock; should it fail midway (a store error: the database restarting, a
   * connection cut), the job is carried on from the store (carryOnAfterError) and the error
   * still reaches the caller.
   */
  private progress<T>(jobInstanceId: number, what: string, fn: () => Promise<T>): Promise<T> {
    return this.withJobLock(jobInstanceId, fn).catch((err: unknown) => {
      this.carryOnAfterError(jobInstanceId, err, what);
      throw err;
    });
  }

  /**
   * A job whose progress here stopped midway at a store error (a step's end not stored, its next
   * step not started, an operation half applied) would otherwise wait for the next restart: its
   * steps are dropped from memory and it is carried on from what the store says, as a restart
   * would, again after a growing pause until that works. Its agents' tasks go on meanwhile, and a
   * task sent again is one the agent already holds (it ignores it). In a cluster only while this
   * server owns the job; a new owner carries it on from the store by itself.
   */
  private carryOnAfterError(jobInstanceId: number, err: unknown, what: string, attempt = 0): void {
    this.services.log.error({ err, job: jobInstanceId }, `${what}; carrying on from the store`);
    const again = () =>
      this.withJobLock(jobInstanceId, () => this.carryOnAgain(jobInstanceId)).catch((e: unknown) =>
        this.carryOnAfterError(jobInstanceId, e, 'carrying on a job failed', attempt + 1),
      );
    setTimeout(again, Math.min(CARRY_ON_MAX_MS, CARRY_ON_FIRST_MS * 2 ** attempt)).unref();
  }

  private async carryOnAgain(jobInstanceId: number): Promise<void> {
    if (this.closed) return;
    const cluster = this.services.cluster;
    if (cluster && (await cluster.store.ownerOf(jobInstanceId))?.ownerId !== cluster.id) return;
    for (const s of [...this.steps.values()]) if (s.jobInstanceId === jobInstanceId) this.forget(s);
    await this.carryOn(jobInstanceId);
    // Or its end was stored and its callback was not.
    await this.announceMissed({ since: 0, jobInstanceId });
  }

  /** Queues the callbacks of finished jobs that have none for their finish (finishedWithoutCallback). */
  private async announceMissed(which: { since: number; jobInstanceId?: number }): Promise<void> {
    const jobs = await this.store.finishedWithoutCallback({
      ...which,
      unlessOwnerAlive: Boolean(this.services.cluster) && which.jobInstanceId === undefined,
    });
    for (const job of jobs)
      await this.announceFinished(job, job.status as RunStatus, job.end_time ?? Date.now());
    if (jobs.length > 0)
      this.services.log.warn(
        { jobs: jobs.map((j) => j.id) },
        'queued callbacks lost between an end and its callback',
      );
  }

  // ------------------------------------------------------------ submission and start

  /**
   * Stores the job; with startTask it is stored as running and dispatched after the caller
   * has its answer, so accepting a 10,000-host job costs one transaction, not 10,000 sends.
   */
  async submit(
    job: NewJob,
    startTask: boolean,
  ): Promise<{ jobInstanceId: number; stepInstanceIds: number[] }> {
    const ids = await this.store.createJobInstance(job, startTask);
    if (startTask) {
      const { running } = ids;
      // The first step runs from what the create stored: no read back before its tasks go out.
      // In a cluster the sweep may have carried the job on already (adoptIdle).
      const start = running
        ? async () => {
            if (!this.isActive(ids.jobInstanceId))
              await this.activate(running.step, running.tasks, job.callbackUrl);
          }
        : async () => {
            if (!this.isActive(ids.jobInstanceId)) await this.carryOn(ids.jobInstanceId);
          };
      this.progress(ids.jobInstanceId, 'starting a job failed', start).catch(() => undefined);
    }
    return ids;
  }

  /** operate_job_instance 2 (and automatic start): a pending job runs its first step. */
  start(jobInstanceId: number): Promise<OperationRefusal | undefined> {
    return this.progress(jobInstanceId, 'starting a job failed midway', async () => {
      await this.claimForOperation(jobInstanceId);
      const job = await this.store.getJob(jobInstanceId);
      if (!job) return 'not_found';
      const now = Date.now();
      if (
        !(await this.store.casJob(jobInstanceId, [RunStatus.PENDING], {
          status: RunStatus.RUNNING,
          start_time: now,
        }))
      ) {
        return 'repeat_start';
      }
      await this.advance({ ...job, status: RunStatus.RUNNING, start_time: now }, -1);
      return undefined;
    });
  }

  /** Starts the first pending step after `afterOrder`, or finishes the job successfully. */
  private async advance(job: JobInstance, afterOrder: number): Promise<void> {
    const steps = await this.store.getStepHeadsOfJob(job.id);
    const pending = steps.find((s) => s.step_order > afterOrder && s.status === RunStatus.PENDING);
    // Only the step started is read whole: a plan's steps each hold their script.
    const next = pending && (await this.store.getStep(pending.id));
    if (!next) return this.finishJob(job, RunStatus.SUCCESS);
    await this.store.updateStep(next.id, { status: RunStatus.RUNNING, start_time: Date.now() });
    await this.activate({ ...next, status: RunStatus.RUNNING }, undefined, job.callback_url);
  }

  /**
   * Indexes a step that is running (or waiting, or stopping) and carries on with it; `read`:
   * its host tasks, when they are known (just stored); `callbackUrl`: its job's, when known.
   */
  private async activate(
    step: RunnableStep,
    read?: RunnableTask[],
    callbackUrl?: string | null,
  ): Promise<void> {
    const tasks = read ?? (await this.store.listRunnableTasks(step.id, step.execute_count));
    const spec = parseStepSpec(step.spec);
    const active: ActiveStep = {
      jobInstanceId: step.job_instance_id,
      stepInstanceId: step.id,
      stepOrder: step.step_order,
      executeCount: step.execute_count,
      spec,
      tasks: new Map(
        tasks.map((t) => [
          t.host_id,
          { hostId: t.host_id, status: t.status, logBytes: t.log_bytes, batch: t.batch },
        ]),
      ),
      batch: step.current_batch,
      lastBatch: Math.max(0, ...tasks.map((t) => t.batch)),
      inFlight: 0,
      failed: tasks.filter((t) => isHostFinished(t.status) && !isHostSuccess(t.status)).length,
      budget: failureBudget(spec.rolling?.maxFailedHosts, tasks.length),
      stopping: step.status === RunStatus.STOPPING ? 'terminate' : undefined,
      waiting: step.status === RunStatus.WAITING_USER,
      ...(callbackUrl !== undefined ? { callbackUrl } : {}),
    };
    if (this.services.cluster) {
      // Output this server relayed for the step's previous owner counts (it may not be committed yet).
      for (const t of active.tasks.values()) {
        const key = taskKey(step.id, step.execute_count, t.hostId);
        const r = this.relayed.get(key);
        if (r) t.logBytes = Math.max(t.logBytes, r.logBytes);
        this.relayed.delete(key);
      }
      this.seen.set(step.id, { version: Math.max(-1, ...tasks.map((t) => t.version)), since: Date.now() });
    }
    this.steps.set(step.id, active);
    const kind = this.kindOf(active);
    if (step.status === RunStatus.RUNNING && kind.entered) {
      const job = await this.store.getJob(step.job_instance_id);
      if (job && (await kind.entered(active, job)) === 'wait') active.waiting = true;
    }
    if (!active.waiting) await this.runBatch(active);
  }

  /** Dispatches the current batch's waiting tasks; agents not here get the heartbeat window. */
  private async runBatch(step: ActiveStep): Promise<void> {
    step.inFlight = 0;
    const absent: number[] = [];
    const now = Date.now();
    const kind = this.kindOf(step);
    if (!step.stopping) await kind.beginBatch?.(step);
    for (const task of step.tasks.values()) {
      if (task.batch !== step.batch || isHostFinished(task.status)) continue;
      if (step.stopping && task.status === HostStatus.WAITING) this.endTerminated(step, task, now);
      step.inFlight++;
      let set = this.byHost.get(task.hostId);
      if (!set) this.byHost.set(task.hostId, (set = new Set()));
      set.add(step);
      if (step.stopping) this.sendKill(step, task);
      else if (task.status === HostStatus.WAITING && !kind.send(step, task)) absent.push(task.hostId);
    }
    this.services.hub.expect(absent);
    if (!step.stopping) kind.batchSent?.(step);
    if (step.inFlight === 0) await this.batchDone(step);
  }

  private sendKill(step: ActiveStep, task: ActiveTask): boolean {
    return this.services.hub.send(task.hostId, {
      v: PROTOCOL_VERSION,
      type: 'task.kill',
      key: taskKey(step.stepInstanceId, step.executeCount, task.hostId),
    });
  }

  /** The current batch has no unfinished task: stop, pause, wait, go on, or complete. */
  private async batchDone(step: ActiveStep): Promise<void> {
    if (step.stopping) return this.completeStep(step);
    const moreBatches = step.batch > 0 && step.batch < step.lastBatch;
    if (!moreBatches) return this.completeStep(step);
    const batchFailed = [...step.tasks.values()].some(
      (t) => t.batch === step.batch && !isHostSuccess(t.status),
    );
    const mode = step.spec.rolling?.mode ?? 1;
    // A failed batch ends the step unless failures are ignored (the step's ignore_error, or
    // rolling mode 2); then the next batch runs, in mode 3 once a person says so (BK-JOB's
    // onFail: modes 1 and 3 fail the step, 6 instead when it ignores errors).
    if (batchFailed && mode !== 2 && !step.spec.ignoreError) return this.completeStep(step);
    if (mode === 3) {
      step.waiting = true;
      await this.store.waitForPerson(step.stepInstanceId, step.jobInstanceId);
      return;
    }
    await this.nextBatch(step);
  }

  private async nextBatch(step: ActiveStep): Promise<void> {
    // 15 marks the gap between batches; the next batch starts at once.
    await this.store.updateStep(step.stepInstanceId, { status: RunStatus.ROLLING_WAITING });
    step.batch++;
    await this.store.updateStep(step.stepInstanceId, {
      status: RunStatus.RUNNING,
      current_batch: step.batch,
    });
    await this.runBatch(step);
  }

  // ------------------------------------------------------------ recovery

  /** Picks up every job in flight after a start: the store says what was happening. */
  async recover(): Promise<void> {
    // In a cluster, jobs in flight belong to their owners; those of dead servers are claimed by sweeps.
    const jobs = this.services.cluster ? [] : await this.store.listActiveJobs();
    for (const job of jobs) await this.carryOn(job.id);
    if (jobs.length > 0) this.services.log.info({ jobs: jobs.length }, 'resumed jobs in flight');
    await this.announceLostCallbacks().catch((err: unknown) =>
      this.services.log.error({ err }, 'looking for lost callbacks failed; the next start looks again'),
    );
    this.callbacks.start();
  }

  /**
   * A crash between a job's end and its callback's commit lost the callback: looked for at a
   * start and, in a cluster, by the server that declares others dead, among jobs whose owner is
   * dead (a server's previous run included: it may still count as alive when it starts again).
   */
  async announceLostCallbacks(): Promise<void> {
    await this.announceMissed({ since: Date.now() - MISSED_CALLBACK_WINDOW_MS });
  }

  /** Cluster mode: a job this server just claimed (its owner died or left) is carried on here. */
  adopt(jobInstanceId: number): Promise<void> {
    return this.progress(jobInstanceId, 'carrying on a job taken over failed', async () => {
      if (this.isActive(jobInstanceId)) return;
      await this.carryOn(jobInstanceId);
    }).catch(() => undefined);
  }

  /**
   * Cluster mode: of jobs this server owns, those it does not run (another server ran the
   * operation that moved them here) are carried on, each once it is still owned here under its
   * lock (another server may have taken it since it was read).
   */
  async adoptIdle(owned: readonly number[]): Promise<void> {
    const cluster = this.services.cluster;
    if (!cluster) return;
    for (const id of owned) {
      if (this.isActive(id)) continue;
      await this.progress(id, 'carrying on an owned job failed', async () => {
        if (this.isActive(id) || (await cluster.store.ownerOf(id))?.ownerId !== cluster.id) return;
        this.services.log.warn({ job: id }, 'carrying on a job owned here that ran elsewhere');
        await this.carryOn(id);
      }).catch(() => undefined);
    }
  }

  /** Carries on with a job in flight from what the store says about it. */
  private async carryOn(jobInstanceId: number): Promise<void> {
    const found = await this.store.getJobWithSteps(jobInstanceId);
    if (!found || !IN_FLIGHT_JOB_STATUSES.includes(found.job.status)) return;
    const { job, steps } = found;
    const current = currentStepOf(steps);
    if (current) {
      if (current.status === RunStatus.ROLLING_WAITING)
        await this.store.updateStep(current.id, { status: RunStatus.RUNNING });
      await this.activate(
        current.status === RunStatus.ROLLING_WAITING ? { ...current, status: RunStatus.RUNNING } : current,
        undefined,
        job.callback_url,
      );
      return;
    }
    const done = steps.filter((s) => s.status !== RunStatus.PENDING);
    const last = done[done.length - 1];
    if (job.status === RunStatus.STOPPING) await this.finishJob(job, RunStatus.STOP_SUCCESS);
    else if (
      last &&
      ![RunStatus.SUCCESS, RunStatus.SKIPPED, RunStatus.IGNORE_ERROR].includes(last.status as 3)
    ) {
      await this.finishJob(job, last.status as RunStatus);
    } else {
      // A confirmation was continued, and its job not yet stored running again.
      if (job.status === RunStatus.WAITING_USER)
        await this.store.casJob(job.id, [RunStatus.WAITING_USER], { status: RunStatus.RUNNING });
      await this.advance(job, last?.step_order ?? -1);
    }
  }

  // ------------------------------------------------------------ agent events

  private lookup(key: string): { step: ActiveStep; task: ActiveTask } | undefined {
    const k = parseTaskKey(key);
    const step = this.steps.get(k.stepInstanceId);
    if (!step || step.executeCount !== k.executeCount) return undefined;
    const task = step.tasks.get(k.hostId);
    return task ? { step, task } : undefined;
  }

  /** Cluster mode: this server is about to send (or has sent) a task of another owner's job. */
  relaying(key: string, status: number, logBytes: number): void {
    if (this.lookup(key) || this.relayed.has(key)) return;
    const k = parseTaskKey(key);
    this.relayed.set(key, { ...k, status, logBytes });
  }

  /** The task an agent reports about: run by this server's engine, or relayed for another owner. */
  private relayedTask(key: string, hostId: number): RelayedTask | undefined {
    const r = this.services.cluster ? this.relayed.get(key) : undefined;
    return r?.hostId === hostId ? r : undefined;
  }

  /** A write that comes from (or was decided under) an agent session; fenced by its epoch in a cluster. */
  private agentWrite(stepInstanceId: number, executeCount: number, hostId: number, epoch?: number) {
    const e = this.services.cluster ? (epoch ?? this.services.hub.epochOf(hostId)) : undefined;
    return this.writer.write(stepInstanceId, executeCount, hostId, e);
  }

  async agentReady(
    hostId: number,
    held: HeldTask[],
  ): Promise<{ stored: Record<string, number>; forget: string[] }> {
    const stored: Record<string, number> = {};
    const forget: string[] = [];
    if (this.services.cluster) await this.resumeFromStore(hostId, held, stored, forget);
    else {
      for (const h of held) {
        const hit = this.lookup(h.key);
        // A result counted here but not committed yet is not forgotten: the agent resends it,
        // and is told it is recorded once the commit holds it (a crash before would lose it).
        if (
          hit &&
          hit.task.hostId === hostId &&
          (!isHostFinished(hit.task.status) || this.uncommitted(hit))
        ) {
          stored[h.key] = hit.task.logBytes;
          continue;
        }
        forget.push(h.key);
      }
    }
    const heldKeys = new Set(held.map((h) => h.key));
    const epoch = this.services.cluster ? this.services.hub.epochOf(hostId) : undefined;
    for (const step of [...(this.byHost.get(hostId) ?? [])]) {
      const task = step.tasks.get(hostId);
      if (!task || heldKeys.has(taskKey(step.stepInstanceId, step.executeCount, hostId))) continue;
      if (task.status === HostStatus.WAITING && step.stopping && !this.services.cluster) {
        // Its run and its kill were lost with the old link: the agent ignores a kill of a task it
        // does not hold, so the task would wait forever. It never started; it ends terminated.
        // (In a cluster both wait in the outbox and reach the agent in order: run, then kill.)
        this.endTerminated(step, task, Date.now());
        continue;
      }
      // A task this agent was running but no longer knows of (it lost its spool) is lost.
      if (task.status !== HostStatus.RUNNING) continue;
      if (this.services.cluster) {
        // Or another server recorded its result, and the agent forgot it once told so: the
        // recount counts that result; only a task still unfinished in the store was lost.
        const row = await this.store.getHostTask(step.stepInstanceId, step.executeCount, hostId);
        if (!row || isHostFinished(row.status) || task.status !== HostStatus.RUNNING) continue;
      }
      this.finishTask(step, task, {
        status: HostStatus.AGENT_ABNORMAL,
        errorCode: AgentErrorCode.AGENT_ERROR,
        exitCode: null,
        endTime: Date.now(),
        ...(epoch !== undefined ? { sessionEpoch: epoch } : {}),
      });
    }
    return { stored, forget };
  }

  /**
   * Cluster mode: what an agent holds is resumed from the store, never from this server's own
   * count. The new session's epoch is committed by now, so no write of an older session (here
   * or on another server) can land any more, and the stored log length is the truth: this
   * server's count may be behind it (another server stored output meanwhile) or ahead of it (a
   * write of the old session was fenced), and resending from either would double or drop bytes.
   */
  private async resumeFromStore(
    hostId: number,
    held: HeldTask[],
    stored: Record<string, number>,
    forget: string[],
  ): Promise<void> {
    for (const h of held) {
      const k = parseTaskKey(h.key);
      const row =
        k.hostId === hostId
          ? await this.store.getHostTask(k.stepInstanceId, k.executeCount, hostId)
          : undefined;
      if (!row || isHostFinished(row.status)) {
        forget.push(h.key);
        continue;
      }
      stored[h.key] = row.log_bytes;
      const hit = this.lookup(h.key);
      if (hit) {
        hit.task.logBytes = row.log_bytes;
        // A result counted here but never stored (fenced): the agent sends it again.
        if (isHostFinished(hit.task.status)) this.unfinish(hit.step, hit.task, hit.task.status);
        continue;
      }
      const r = this.relayed.get(h.key);
      this.relayed.set(h.key, {
        ...k,
        status: row.status,
        logBytes: row.log_bytes,
        ...(r?.ending ? { ending: true } : {}),
      });
    }
  }

  /** The task's result is counted here and its commit has not happened yet (see afterCommit). */
  private uncommitted(hit: { step: ActiveStep; task: ActiveTask }): boolean {
    return isHostFinished(hit.task.status) && this.byHost.get(hit.task.hostId)?.has(hit.step) === true;
  }

  /**
   * A result this server counted was not stored (fenced, or held back): the task runs on. Not
   * once a recount took the task's result from the store (another server stored it meanwhile,
   * perhaps the very result this server read from the agent's older session): the task is no
   * longer in flight here, and nothing would count it again.
   */
  private unfinish(step: ActiveStep, task: ActiveTask, status: number): void {
    if (task.status !== status || !isHostFinished(status)) return;
    if (!this.byHost.get(task.hostId)?.has(step)) return;
    task.status = HostStatus.RUNNING;
    if (!isHostSuccess(status)) step.failed--;
  }

  /** Cluster mode: the agent's output here is out of step with the store; it reconnects and resends. */
  private resync(hostId: number, epoch: number | undefined): void {
    if (epoch === undefined || this.services.hub.epochOf(hostId) !== epoch) return;
    this.services.hub.disconnect(hostId, 'output out of step with the store; resend from the stored length');
  }

  agentWelcomed(hostId: number): void {
    const cluster = this.services.cluster;
    // In a cluster what waits for the host is in the outbox, resent under the new session.
    if (cluster) cluster.wake({ claim: true });
    for (const step of cluster ? [] : (this.byHost.get(hostId) ?? [])) {
      const task = step.tasks.get(hostId);
      if (!task || isHostFinished(task.status)) continue;
      if (step.stopping) this.sendKill(step, task);
      else if (task.status === HostStatus.WAITING) this.kindOf(step).send(step, task);
    }
    for (const kind of Object.values(this.kinds)) kind.agentWelcomed?.(hostId);
  }

  filesServed(hostId: number, msg: FilesServed): void {
    this.files.filesServed(hostId, msg);
  }

  fileProgress(hostId: number, msg: FileProgress): void {
    if (!this.lookup(msg.key) && this.relayedTask(msg.key, hostId)) this.files.relayedProgress(hostId, msg);
    else this.files.progress(hostId, msg);
  }

  taskStarted(hostId: number, msg: TaskStarted): void {
    const hit = this.lookup(msg.key) ?? this.relayedHit(msg.key, hostId);
    if (!hit || hit.task.hostId !== hostId || hit.task.status !== HostStatus.WAITING) return;
    hit.task.status = HostStatus.RUNNING;
    const w = this.agentWrite(hit.step.stepInstanceId, hit.step.executeCount, hostId);
    w.status = HostStatus.RUNNING;
    w.startTime = msg.startTime;
    w.errorCode = AgentErrorCode.RUNNING;
  }

  /** A relayed task in the shape the event handlers use. */
  private relayedHit(
    key: string,
    hostId: number,
  ): { step: { stepInstanceId: number; executeCount: number }; task: RelayedTask } | undefined {
    const task = this.relayedTask(key, hostId);
    return task && { step: task, task };
  }

  taskOutput(hostId: number, msg: OutputFrame): void {
    const hit = this.lookup(msg.key) ?? this.relayedHit(msg.key, hostId);
    if (!hit || hit.task.hostId !== hostId || isHostFinished(hit.task.status)) return;
    const data = msg.data;
    const { task, step } = hit;
    // Offsets make resends harmless: drop what we have, ignore gaps (the agent resends on reconnect).
    if (msg.offset > task.logBytes || msg.offset + data.length <= task.logBytes) return;
    const fresh = data.subarray(task.logBytes - msg.offset);
    const epoch = this.services.cluster ? this.services.hub.epochOf(hostId) : undefined;
    this.writer.output(step.stepInstanceId, step.executeCount, hostId, epoch, {
      offset: task.logBytes,
      data: fresh,
    });
    task.logBytes += fresh.length;
  }

  taskFinished(hostId: number, msg: TaskFinished): void {
    const hit = this.lookup(msg.key);
    const relayed = hit ? undefined : this.relayedTask(msg.key, hostId);
    if (relayed) return this.relayedFinished(relayed, msg);
    if (!hit && this.services.cluster) {
      void this.adoptResult(hostId, msg);
      return;
    }
    if (!hit || hit.task.hostId !== hostId || isHostFinished(hit.task.status)) {
      // Already recorded (or never ours): let the agent forget it. A result still on its way to
      // the store is confirmed by the commit that holds it (afterCommit), never before.
      if (hit?.task.hostId === hostId && this.uncommitted(hit)) return;
      this.services.hub.send(hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key: msg.key });
      return;
    }
    const epoch = this.services.cluster ? this.services.hub.epochOf(hostId) : undefined;
    if (hit.task.logBytes < msg.outputBytes) {
      // Output is missing (lost with a dropped connection); the agent resends all of it after reconnecting.
      this.services.log.warn(
        { key: msg.key, have: hit.task.logBytes, want: msg.outputBytes },
        'result ahead of output; waiting for resend',
      );
      this.resync(hostId, epoch);
      return;
    }
    const outcome = hostStatusOfOutcome(msg.outcome, msg.exitCode);
    const { step, task } = hit;
    const finish = (status: number) => {
      if (isHostFinished(task.status)) return;
      this.finishTask(step, task, {
        ...(epoch !== undefined ? { sessionEpoch: epoch, needBytes: msg.outputBytes } : {}),
        status,
        errorCode: outcome.errorCode,
        exitCode:
          msg.outcome === 'exited' || msg.outcome === 'timeout' || msg.outcome === 'killed'
            ? msg.exitCode
            : null,
        endTime: msg.endTime,
        startTime: msg.startTime,
        droppedBytes: msg.droppedBytes,
      });
    };
    const kind = this.kindOf(step);
    const ended =
      kind.taskEnded?.(step, hostId, { status: outcome.status, vars: msg.vars }) ?? outcome.status;
    if (typeof ended === 'number') return finish(ended);
    // The kind records what the task reported before its result is; a resend meanwhile waits its turn.
    if (task.ending) return;
    task.ending = true;
    ended
      .then(finish, (err: unknown) => this.resendAfterFailure(hostId, epoch, msg.key, err))
      .finally(() => (task.ending = false));
  }

  /**
   * Cluster mode: a result of a task neither run nor relayed here. This server may have sent it
   * for a job that has since moved to another owner (an operation received elsewhere): the
   * store decides. Not yet recorded there, it is recorded here for the owner, as a relayed result
   * is; only a result the store already holds (or a task it does not know) is let go. After a
   * failed read the agent's link is dropped: it keeps the result and sends it again.
   */
  private async adoptResult(hostId: number, msg: TaskFinished): Promise<void> {
    const k = parseTaskKey(msg.key);
    const epoch = this.services.hub.epochOf(hostId);
    try {
      const row =
        k.hostId === hostId
          ? await this.store.getHostTask(k.stepInstanceId, k.executeCount, hostId)
          : undefined;
      if (this.lookup(msg.key)) return this.taskFinished(hostId, msg);
      if (row && !isHostFinished(row.status)) {
        if (!this.relayed.has(msg.key))
          this.relayed.set(msg.key, { ...k, status: row.status, logBytes: row.log_bytes });
        const relayed = this.relayedTask(msg.key, hostId);
        if (relayed) return this.relayedFinished(relayed, msg);
      }
      this.services.hub.send(hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key: msg.key });
    } catch (err) {
      this.services.log.warn({ err, key: msg.key }, 'a result of a job owned elsewhere could not be checked');
      this.resync(hostId, epoch);
    }
  }

  /** Cluster mode: the result of a task another server owns, recorded here for it. */
  private relayedFinished(task: RelayedTask, msg: TaskFinished): void {
    if (isHostFinished(task.status)) {
      this.services.hub.send(task.hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key: msg.key });
      return;
    }
    const epoch = this.services.hub.epochOf(task.hostId);
    if (task.logBytes < msg.outputBytes) return this.resync(task.hostId, epoch);
    if (task.ending) return;
    const outcome = hostStatusOfOutcome(msg.outcome, msg.exitCode);
    task.ending = true;
    // Variables the script left: written before the result, as the owner's script step does.
    // So are a file target's logs: whoever sees the result finished reads them.
    const writtenFirst = Promise.all([
      msg.vars === undefined
        ? undefined
        : this.services.store.plans.putHostVars(
            task.stepInstanceId,
            task.executeCount,
            task.hostId,
            JSON.stringify(parseReported(msg.vars)),
          ),
      this.files.relayedLogsStored(task.hostId),
    ]);
    writtenFirst
      .then(() => {
        task.status = outcome.status;
        const w = this.agentWrite(task.stepInstanceId, task.executeCount, task.hostId, epoch);
        w.status = outcome.status;
        w.errorCode = outcome.errorCode;
        w.exitCode =
          msg.outcome === 'exited' || msg.outcome === 'timeout' || msg.outcome === 'killed'
            ? msg.exitCode
            : null;
        w.endTime = msg.endTime;
        w.startTime ??= msg.startTime;
        w.droppedBytes = msg.droppedBytes;
        w.needBytes = msg.outputBytes;
      })
      .catch((err: unknown) => this.resendAfterFailure(task.hostId, epoch, msg.key, err))
      .finally(() => (task.ending = false));
  }

  /**
   * What a result needs stored before it (the variables its script left, a file target's logs)
   * could not be, at a store error. The agent keeps the result until told it is recorded but
   * sends what it holds again only when it reconnects: it is disconnected, so that it does.
   */
  private resendAfterFailure(hostId: number, epoch: number | undefined, key: string, err: unknown): void {
    this.services.log.error(
      { err, key },
      'recording a task result failed; the agent reconnects and resends it',
    );
    if (this.services.hub.epochOf(hostId) === epoch)
      this.services.hub.disconnect(hostId, 'a task result could not be recorded; send it again');
  }

  agentLost(hostId: number): void {
    for (const kind of Object.values(this.kinds)) kind.agentLost?.(hostId);
    const now = Date.now();
    for (const step of [...(this.byHost.get(hostId) ?? [])]) {
      const task = step.tasks.get(hostId);
      if (task && !isHostFinished(task.status)) {
        this.finishTask(step, task, {
          status: HostStatus.AGENT_ABNORMAL,
          errorCode: AgentErrorCode.AGENT_ERROR,
          exitCode: null,
          endTime: now,
        });
      }
    }
  }

  private finishTask(
    step: ActiveStep,
    task: ActiveTask,
    r: {
      status: number;
      errorCode: number;
      exitCode: number | null;
      endTime: number;
      startTime?: number;
      droppedBytes?: number;
      /** Cluster mode: the agent session the outcome was decided under. */
      sessionEpoch?: number;
      /** Cluster mode: an agent's result, which needs this much output stored. */
      needBytes?: number;
    },
  ): void {
    task.status = r.status;
    const w = this.writer.write(step.stepInstanceId, step.executeCount, task.hostId, r.sessionEpoch);
    w.needBytes = r.needBytes;
    w.status = r.status;
    w.errorCode = r.errorCode;
    w.exitCode = r.exitCode;
    w.endTime = r.endTime;
    if (r.startTime !== undefined && w.startTime === undefined) w.startTime = r.startTime;
    if (r.droppedBytes !== undefined) w.droppedBytes = r.droppedBytes;
    if (!isHostSuccess(r.status)) {
      step.failed++;
      if (step.budget !== undefined && step.failed > step.budget && !step.stopping)
        this.stopStep(step, 'budget');
    }
  }

  /** A task ends terminated by the server's own decision (no result of the agent's). */
  private endTerminated(step: ActiveStep, task: ActiveTask, endTime: number): void {
    this.finishTask(step, task, {
      status: HostStatus.TERMINATE_SUCCESS,
      errorCode: AgentErrorCode.TERMINATED,
      exitCode: null,
      endTime,
    });
  }

  /** Kills what runs of a step; waiting tasks whose agents are away end as terminated at once. */
  private stopStep(step: ActiveStep, why: 'terminate' | 'budget'): void {
    step.stopping = why;
    const now = Date.now();
    for (const task of step.tasks.values()) {
      if (task.batch !== step.batch || isHostFinished(task.status)) continue;
      if (!this.sendKill(step, task) && task.status === HostStatus.WAITING)
        this.endTerminated(step, task, now);
    }
  }

  /** After a batch is durable: confirm results to agents, and finish batches whose hosts are all done. */
  private afterCommit(batch: CommittedBatch): void {
    const touched = new Set<ActiveStep>();
    const relayedSteps = new Set<number>();
    if (this.services.cluster) this.afterClusterCommit(batch);
    for (const w of batch.writes) {
      if (w.status === undefined || !isHostFinished(w.status) || w.fenced || w.resultHeld) continue;
      const key = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
      this.services.hub.send(w.hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key });
      if (this.relayed.delete(key)) relayedSteps.add(w.stepInstanceId);
      const step = this.steps.get(w.stepInstanceId);
      if (!step || step.executeCount !== w.executeCount) continue;
      const set = this.byHost.get(w.hostId);
      if (set?.delete(step)) {
        step.inFlight--;
        if (set.size === 0) this.byHost.delete(w.hostId);
        touched.add(step);
      }
    }
    // The owners of relayed tasks recount those steps at once instead of at their next poll.
    if (relayedSteps.size > 0) this.services.cluster?.notifyIds('r', relayedSteps);
    const ended = new Map(batch.ends.filter((e) => e.applied).map((e) => [e.stepInstanceId, e]));
    // A step stored as ended is over here too, whatever its count says.
    for (const end of ended.values()) {
      const step = this.steps.get(end.stepInstanceId);
      if (step) touched.add(step);
    }
    for (const step of touched) {
      const end = ended.get(step.stepInstanceId);
      if (end)
        this.progress(step.jobInstanceId, 'finishing a batch failed', () =>
          this.endedWithResults(step, end),
        ).catch(() => undefined);
      else if (step.inFlight === 0) void this.batchCounted(step);
    }
  }

  /**
   * The current batch's last task was counted: the batch is done, once the job's lock is held.
   * By then another count of the same batch (a recount in a cluster, say) may have moved the
   * step on to its next batch: that one is not done, and must not end the step.
   */
  private batchCounted(step: ActiveStep): Promise<void> {
    const batch = step.batch;
    return this.progress(step.jobInstanceId, 'finishing a batch failed', async () => {
      if (this.steps.get(step.stepInstanceId) !== step || step.batch !== batch || step.inFlight !== 0) return;
      await this.batchDone(step);
    }).catch(() => undefined);
  }

  /**
   * The steps whose last results are in this batch and whose end ends their job: stored finished
   * in the batch's transaction, so a client sees "finished" one synced commit after the last
   * result arrived, not two. The decision is completeStep's, for a step with no batch left; the
   * store applies it only while the job is running (a terminate first wins) and no later step is
   * pending. In a cluster results arrive through other servers too, so ends keep their own commit.
   */
  private endsWith(writes: readonly TaskWrite[]): StepEnd[] {
    if (this.services.cluster) return [];
    const results = new Map<ActiveStep, string[]>();
    for (const w of writes) {
      if (w.status === undefined || !isHostFinished(w.status)) continue;
      const step = this.steps.get(w.stepInstanceId);
      if (step?.executeCount !== w.executeCount || !this.byHost.get(w.hostId)?.has(step)) continue;
      const keys = results.get(step) ?? [];
      keys.push(taskKey(w.stepInstanceId, w.executeCount, w.hostId));
      results.set(step, keys);
    }
    const ends: StepEnd[] = [];
    for (const [step, keys] of results) {
      const moreBatches = step.batch > 0 && step.batch < step.lastBatch;
      if (keys.length !== step.inFlight || step.stopping || step.waiting || moreBatches) continue;
      if (!this.kindOf(step).endsWithResults?.(step)) continue;
      if (![...step.tasks.values()].every((t) => isHostFinished(t.status))) continue;
      const status = endStatusOf(step);
      const goesOn = status === RunStatus.SUCCESS || status === RunStatus.IGNORE_ERROR;
      ends.push({
        jobInstanceId: step.jobInstanceId,
        stepInstanceId: step.stepInstanceId,
        keys,
        stepStatus: status,
        jobStatus: goesOn ? RunStatus.SUCCESS : status,
        endTime: Date.now(),
        ...(goesOn ? { unlessPendingAfter: step.stepOrder } : {}),
      });
    }
    return ends;
  }

  /** The step and its job were stored finished with the step's last results: what follows the end. */
  private async endedWithResults(step: ActiveStep, end: StepEnd): Promise<void> {
    if (this.steps.get(step.stepInstanceId) !== step) return;
    this.deactivate(step);
    await this.kindOf(step).release?.(step);
    // The end was stored with the results, so the job exists; its callback URL never changes.
    const job =
      step.callbackUrl !== undefined
        ? { id: step.jobInstanceId, callback_url: step.callbackUrl }
        : await this.store.getJob(step.jobInstanceId);
    if (job) await this.announceFinished(job, end.jobStatus as RunStatus, end.endTime);
  }

  /**
   * Cluster mode: this server's view of each task follows the store. A result that was not
   * stored (its session moved on, or output is missing) is uncounted, so that the agent's resend,
   * or the server that records it, finishes the task; where the output is out of step with the
   * store the agent reconnects and resends from the stored length.
   */
  private afterClusterCommit(batch: CommittedBatch): void {
    for (const w of batch.writes) {
      const key = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
      const step = this.steps.get(w.stepInstanceId);
      const owned = step?.executeCount === w.executeCount ? step.tasks.get(w.hostId) : undefined;
      const task = owned ?? this.relayed.get(key);
      // A write of this server's own connection refused: the session moved on without this
      // server hearing (a word lost with its listening connection, or one that came while the
      // session was being opened). The session is past the write's epoch, so a connection still
      // on it is stale and dropped: the agent opens a current session and resends.
      if (w.fenced && w.sessionEpoch) this.services.hub.closeStale(w.hostId, w.sessionEpoch + 1);
      if (!task) continue;
      if ((w.fenced || w.resultHeld) && w.status !== undefined) {
        if (owned && step) this.unfinish(step, owned, w.status);
        else if (task.status === w.status) task.status = HostStatus.RUNNING;
      }
      // Another server recorded a result first (the agent's, or a 310 decided elsewhere): that
      // one stands, here too.
      const stored = w.storedStatus;
      if (stored !== undefined && isHostFinished(stored) && task.status !== stored) {
        if (owned && step) {
          if (isHostFinished(owned.status) && !isHostSuccess(owned.status)) step.failed--;
          if (!isHostSuccess(stored)) step.failed++;
        }
        task.status = stored;
      }
      if (w.storedBytes === undefined || w.fenced) continue;
      if (w.outOfStep || w.storedBytes > task.logBytes) task.logBytes = w.storedBytes;
      if (w.outOfStep) {
        this.services.log.warn({ key, stored: w.storedBytes }, 'task output out of step with the store');
        this.resync(w.hostId, w.sessionEpoch);
      }
    }
  }

  /** The step is over here: dropped from memory, and its agent commands not yet delivered removed. */
  private deactivate(step: ActiveStep): void {
    this.forget(step);
    this.services.cluster?.store
      .deleteCommandsOfStep(step.stepInstanceId, step.executeCount)
      .catch((err: unknown) =>
        this.services.log.warn({ err }, 'agent commands of a finished step not removed'),
      );
  }

  /** Drops the step from memory (the store still says what it is). */
  private forget(step: ActiveStep): void {
    this.steps.delete(step.stepInstanceId);
    this.seen.delete(step.stepInstanceId);
    for (const [hostId, set] of this.byHost) {
      if (set.delete(step) && set.size === 0) this.byHost.delete(hostId);
    }
  }

  private async completeStep(step: ActiveStep): Promise<void> {
    if (this.steps.get(step.stepInstanceId) !== step) return;
    this.deactivate(step);
    const job = await this.store.getJob(step.jobInstanceId);
    const kind = this.kindOf(step);
    if (!job) return kind.release?.(step);
    const now = Date.now();
    if (step.stopping === 'terminate' || job.status === RunStatus.STOPPING) {
      await kind.release?.(step);
      return this.finishStepAndJob(step, job, RunStatus.STOP_SUCCESS, RunStatus.STOP_SUCCESS, now);
    }
    const status =
      step.stopping === 'budget'
        ? step.spec.ignoreError
          ? RunStatus.IGNORE_ERROR
          : RunStatus.FAIL
        : endStatusOf(step);
    await kind.release?.(step);
    const goesOn = status === RunStatus.SUCCESS || status === RunStatus.IGNORE_ERROR;
    if (goesOn) {
      const steps = await this.store.getStepHeadsOfJob(job.id);
      if (steps.some((s) => s.step_order > step.stepOrder && s.status === RunStatus.PENDING)) {
        await this.store.updateStep(step.stepInstanceId, { status, end_time: now });
        return this.advance(job, step.stepOrder);
      }
    }
    // The last step ended, or a failure ends the job: both are stored finished together.
    await this.finishStepAndJob(step, job, status, goesOn ? RunStatus.SUCCESS : status, now);
  }

  /**
   * A job's last step ended: it and its job are stored finished together (one commit, not two).
   * An end its steps decided applies only while the job is not being stopped (see NATURAL_END_FROM).
   */
  private async finishStepAndJob(
    step: ActiveStep,
    job: JobInstance,
    stepStatus: RunStatus,
    jobStatus: RunStatus,
    now: number,
  ): Promise<void> {
    const ended = await this.store.finishStepAndJob(
      step.stepInstanceId,
      { status: stepStatus, end_time: now },
      job.id,
      { status: jobStatus, end_time: now },
      endsFrom(jobStatus),
    );
    if (ended) return this.announceFinished(job, jobStatus, now);
    if (await this.stoppedMeanwhile(job.id))
      await this.finishStepAndJob(step, job, RunStatus.STOP_SUCCESS, RunStatus.STOP_SUCCESS, now);
  }

  /** Ends a job; an end its steps decided applies only while it is not being stopped (NATURAL_END_FROM). */
  private async finishJob(job: JobInstance, status: RunStatus): Promise<void> {
    const now = Date.now();
    if (await this.store.casJob(job.id, endsFrom(status), { status, end_time: now }))
      return this.announceFinished(job, status, now);
    if (await this.stoppedMeanwhile(job.id)) await this.finishJob(job, RunStatus.STOP_SUCCESS);
  }

  /**
   * A natural end found the job no longer running: a terminate stored after this server read it
   * (received by another server of a cluster, which only marks it 10) wins, and the job ends
   * stopped (10 -> 11), as in BK-JOB. Any other status means another server ended it already.
   */
  private async stoppedMeanwhile(jobInstanceId: number): Promise<boolean> {
    return (await this.store.getJob(jobInstanceId))?.status === RunStatus.STOPPING;
  }

  /** What follows a job's end: the log line and its callback. */
  private async announceFinished(
    job: Pick<JobInstance, 'id' | 'callback_url'>,
    status: RunStatus,
    now: number,
  ): Promise<void> {
    this.services.log.info({ job: job.id, status }, 'job finished');
    if (job.callback_url && isCallbackStatus(status)) {
      const steps = await this.store.getStepHeadsOfJob(job.id);
      await this.callbacks.enqueue(job.id, job.callback_url, callbackPayload(job.id, status, steps), now);
    }
  }

  // ------------------------------------------------------------ operations

  /** operate_job_instance 1: running hosts are killed; the job goes 10 -> 11. */
  terminate(jobInstanceId: number): Promise<OperationRefusal | undefined> {
    return this.progress(jobInstanceId, 'terminating a job failed midway', async () => {
      const cluster = this.services.cluster;
      const owner =
        cluster && !this.isActive(jobInstanceId) ? await cluster.store.ownerOf(jobInstanceId) : undefined;
      if (
        !(await this.store.casJob(jobInstanceId, [RunStatus.RUNNING, RunStatus.WAITING_USER], {
          status: RunStatus.STOPPING,
        }))
      ) {
        return 'bad_state';
      }
      if (cluster && owner && owner.ownerId !== cluster.id) {
        if (owner.alive) {
          // Its owner stops it at its next poll (woken now).
          cluster.notify('j');
          return undefined;
        }
        // No live owner (dead, or retired): this server takes the job and stops it here, killing
        // what runs, instead of ending it with its tasks left running.
        await cluster.store.takeJob(cluster.id, jobInstanceId);
        cluster.notify('j');
        await this.stopTakenJob(jobInstanceId);
        return undefined;
      }
      return this.stopOwnedJob(jobInstanceId);
    });
  }

  private isActive(jobInstanceId: number): boolean {
    for (const s of this.steps.values()) if (s.jobInstanceId === jobInstanceId) return true;
    return false;
  }

  /** A job stored as stopping (10) that this server just took: its current step is loaded stopping. */
  private async stopTakenJob(jobInstanceId: number): Promise<void> {
    // Only the current step's status matters here; carryOn reads the job again, whole.
    const found = await this.store.getJobWithStepHeads(jobInstanceId);
    const current = found && currentStepOf(found.steps);
    if (current && current.status !== RunStatus.STOPPING)
      await this.store.updateStep(current.id, { status: RunStatus.STOPPING });
    await this.carryOn(jobInstanceId);
  }

  /** The job is stored as stopping (10): kill what runs of it here. */
  private async stopOwnedJob(jobInstanceId: number): Promise<OperationRefusal | undefined> {
    const step = [...this.steps.values()].find((s) => s.jobInstanceId === jobInstanceId);
    if (!step) {
      // Not loaded here (claimed but not yet adopted, or a carry-on that failed): its current
      // step may still run on its hosts, so it is loaded stopping, as a job taken from a dead owner.
      await this.stopTakenJob(jobInstanceId);
      return undefined;
    }
    if (step.waiting || step.inFlight === 0) {
      // Nothing runs (waiting for a person between batches): the stop is complete at once.
      step.stopping = 'terminate';
      await this.completeStep(step);
      return undefined;
    }
    await this.store.updateStep(step.stepInstanceId, { status: RunStatus.STOPPING });
    this.stopStep(step, 'terminate');
    return undefined;
  }

  /**
   * Cluster mode: an operation received here on a job another server owns makes this server its
   * owner (the other drops it at its next poll), so the job's state machine runs in one place.
   */
  private async claimForOperation(jobInstanceId: number): Promise<void> {
    const cluster = this.services.cluster;
    if (!cluster || this.isActive(jobInstanceId)) return;
    const owner = await cluster.store.ownerOf(jobInstanceId);
    if (!owner || owner.ownerId === cluster.id) return;
    await cluster.store.takeJob(cluster.id, jobInstanceId);
    cluster.notify('j');
    const job = await this.store.getJob(jobInstanceId);
    if (job && IN_FLIGHT_JOB_STATUSES.includes(job.status)) {
      await this.carryOn(jobInstanceId);
    }
  }

  /** operate_step_instance: retry (2, 8), ignore error (3), next step (11), force skip (12), rolling continue (13). */
  operateStep(
    jobInstanceId: number,
    stepInstanceId: number,
    op: 2 | 3 | 8 | 11 | 12 | 13,
  ): Promise<OperationRefusal | undefined> {
    return this.progress(jobInstanceId, 'a step operation failed midway', async () => {
      await this.claimForOperation(jobInstanceId);
      const step = await this.store.getStep(stepInstanceId);
      const job = await this.store.getJob(jobInstanceId);
      if (!step || !job || step.job_instance_id !== jobInstanceId) return 'not_found';
      switch (op) {
        case 2:
        case 8: {
          if (this.steps.has(step.id)) return 'bad_state';
          if (!(await this.store.beginRetry(step.id, step.execute_count, op === 2 ? 'failed' : 'all')))
            return 'bad_state';
          const fresh = await this.store.getStep(step.id);
          if (fresh) await this.activate(fresh);
          return undefined;
        }
        case 3:
          return this.continueAfter(job, step, [RunStatus.FAIL, RunStatus.ABNORMAL], RunStatus.IGNORE_ERROR, [
            RunStatus.FAIL,
            RunStatus.ABNORMAL,
          ]);
        case 11:
          return this.continueAfter(job, step, [RunStatus.STOP_SUCCESS], RunStatus.SKIPPED, [
            RunStatus.STOP_SUCCESS,
          ]);
        case 12: {
          const active = this.steps.get(step.id);
          if (!active || step.status !== RunStatus.STOPPING) return 'bad_state';
          const now = Date.now();
          for (const t of active.tasks.values()) {
            if (t.batch === active.batch && !isHostFinished(t.status)) {
              this.sendKill(active, t);
              this.endTerminated(active, t, now);
            }
          }
          this.deactivate(active);
          // As at any step's end: a file step's sources stop serving, a SQL step's login is dropped.
          await this.kindOf(active).release?.(active);
          await this.writer.flush();
          return this.continueAfter(job, step, [RunStatus.STOPPING], RunStatus.SKIPPED, [RunStatus.STOPPING]);
        }
        case 13: {
          const active = this.steps.get(step.id);
          if (!active?.waiting || active.spec.kind === 'confirm') return 'bad_state';
          // Not once the job is stopping (a terminate another server of a cluster took).
          if (
            !(await this.store.casStepAndJob(
              step.id,
              [RunStatus.WAITING_USER],
              { status: RunStatus.RUNNING, current_batch: active.batch + 1 },
              jobInstanceId,
              WAITING_OR_RUNNING,
              { status: RunStatus.RUNNING },
            ))
          )
            return 'bad_state';
          active.waiting = false;
          active.batch++;
          await this.runBatch(active);
          return undefined;
        }
      }
    });
  }

  /**
   * operate_step_instance on a confirmation step: 6 continue (7 -> 3, the job goes on),
   * 9 terminate (step and job 7 -> 13, no callback), 10 restart a terminated one (13 -> 7).
   * The caller has checked that the operator is an approver.
   */
  confirm(
    jobInstanceId: number,
    stepInstanceId: number,
    op: 6 | 9 | 10,
    who: { operator: string; reason: string },
  ): Promise<OperationRefusal | undefined> {
    return this.progress(jobInstanceId, 'a confirmation failed midway', async () => {
      await this.claimForOperation(jobInstanceId);
      const step = await this.store.getStep(stepInstanceId);
      const job = await this.store.getJob(jobInstanceId);
      if (!step || !job || step.job_instance_id !== jobInstanceId) return 'not_found';
      if (parseStepSpec(step.spec).kind !== 'confirm') return 'bad_state';
      const now = Date.now();
      const record = (action: string) =>
        this.services.store.plans.addConfirmation({ step_instance_id: step.id, action, at: now, ...who });
      const active = this.steps.get(step.id);
      if (op === 10) {
        if (
          !(await this.store.casStepAndJob(
            step.id,
            [RunStatus.CONFIRM_TERMINATED],
            { status: RunStatus.RUNNING, end_time: null, start_time: now },
            job.id,
            [RunStatus.CONFIRM_TERMINATED],
            { status: RunStatus.RUNNING, end_time: null },
          ))
        )
          return 'bad_state';
        await record('restart');
        await this.activate({ ...step, status: RunStatus.RUNNING });
        return undefined;
      }
      // The conditional update decides, so a confirmation received by any server of a cluster works.
      // Not once the job is stopping (a terminate another server of a cluster took).
      const to = op === 6 ? RunStatus.SUCCESS : RunStatus.CONFIRM_TERMINATED;
      if (
        !(await this.store.casStepAndJob(
          step.id,
          [RunStatus.WAITING_USER],
          { status: to, end_time: now },
          job.id,
          WAITING_OR_RUNNING,
          op === 9 ? { status: to, end_time: now } : { status: RunStatus.RUNNING },
        ))
      )
        return 'bad_state';
      if (active) this.deactivate(active);
      await record(op === 6 ? 'continue' : 'terminate');
      if (op === 9) return undefined;
      await this.advance({ ...job, status: RunStatus.RUNNING }, step.step_order);
      return undefined;
    });
  }

  /**
   * Marks a stopped or failed step as `to`, puts the job back to running and goes on: to the
   * next step, or for a rolling step with batches left to its next batch (in mode 3 once a person
   * says so), as BK-JOB's refreshJob does.
   */
  private async continueAfter(
    job: JobInstance,
    step: StepInstance,
    stepFrom: number[],
    to: RunStatus,
    jobFrom: number[],
  ): Promise<OperationRefusal | undefined> {
    const rolling = parseStepSpec(step.spec).rolling;
    if (rolling && step.current_batch > 0) {
      const tasks = await this.store.listRunnableTasks(step.id, step.execute_count);
      if (step.current_batch < Math.max(0, ...tasks.map((t) => t.batch))) {
        // Mode 3 waits at the batch just ended; rolling continue (13) starts the next one.
        const waits = rolling.mode === 3;
        const status = waits ? RunStatus.WAITING_USER : RunStatus.RUNNING;
        const current_batch = waits ? step.current_batch : step.current_batch + 1;
        if (
          !(await this.store.casStepAndJob(
            step.id,
            stepFrom,
            { status, current_batch, end_time: null },
            job.id,
            jobFrom,
            { status, end_time: null },
          ))
        )
          return 'bad_state';
        await this.activate({ ...step, status, current_batch }, tasks);
        return undefined;
      }
    }
    // A skipped step ends now (BK-JOB's skipStep); an ignored failure keeps the end it had.
    const end = to === RunStatus.SKIPPED ? { end_time: Date.now() } : {};
    if (
      !(await this.store.casStepAndJob(step.id, stepFrom, { status: to, ...end }, job.id, jobFrom, {
        status: RunStatus.RUNNING,
        end_time: null,
      }))
    )
      return 'bad_state';
    await this.advance({ ...job, status: RunStatus.RUNNING }, step.step_order);
    return undefined;
  }

  // ------------------------------------------------------------ cluster mode: the owner's poll

  /**
   * What other servers did to the jobs owned here: results their agents reported (recounted
   * from host-task versions), a terminate received elsewhere, jobs taken by an operation
   * elsewhere, and agents gone from every server (their tasks fail, 310).
   */
  async refresh(): Promise<void> {
    const cluster = this.services.cluster;
    if (!cluster) return;
    this.pruneRelayed();
    if (this.steps.size === 0) return;
    const jobIds = [...new Set([...this.steps.values()].map((s) => s.jobInstanceId))];
    for (const id of await cluster.store.notOwned(cluster.id, jobIds)) {
      // Forgotten here, its agent commands kept: the step runs on under its new owner, whose
      // commands for it have the same keys (deleting them would leave its tasks unsent).
      await this.withJobLock(id, async () => {
        for (const s of [...this.steps.values()]) if (s.jobInstanceId === id) this.forget(s);
      });
    }
    const statuses = await cluster.store.jobStatuses(jobIds);
    const counted: ActiveStep[] = [];
    for (const step of [...this.steps.values()]) {
      if (this.steps.get(step.stepInstanceId) !== step) continue;
      if (statuses.get(step.jobInstanceId) === RunStatus.STOPPING && !step.stopping) {
        await this.progress(step.jobInstanceId, 'stopping a job failed', () =>
          this.stopOwnedJob(step.jobInstanceId),
        ).catch(() => undefined);
        continue;
      }
      counted.push(step);
    }
    await this.recount(counted);
    await this.files.pollCluster();
    await this.failLostAgents(cluster);
  }

  /**
   * Cluster mode: forgets the relayed tasks of agents with no session here any more (moved to
   * another server, or lost). Whoever holds such an agent now records what it reports, and an
   * agent that comes back says hello first, which rebuilds its entries from the store
   * (resumeFromStore); kept, they would pile up for as long as the server runs. One whose
   * result is being recorded (`ending`) is left to finish.
   */
  private pruneRelayed(): void {
    const hub = this.services.hub;
    for (const [key, r] of this.relayed)
      if (!r.ending && hub.epochOf(r.hostId) === undefined) this.relayed.delete(key);
  }

  /** Cluster mode: how many tasks of jobs owned elsewhere this server carries for its agents. */
  get relayedTaskCount(): number {
    return this.relayed.size;
  }

  /** Cluster mode: other servers recorded results of these steps (a wake-up names them). */
  async recountSteps(stepInstanceIds: Iterable<number>): Promise<void> {
    const steps: ActiveStep[] = [];
    for (const id of stepInstanceIds) {
      const step = this.steps.get(id);
      if (step) steps.push(step);
    }
    await this.recount(steps);
  }

  /** Re-reads, in one query, the host tasks of these steps changed since last seen, and counts them. */
  private async recount(steps: ActiveStep[]): Promise<void> {
    const cluster = this.services.cluster;
    const wanted = steps.filter((s) => !s.waiting && this.seen.has(s.stepInstanceId));
    if (!cluster || wanted.length === 0) return;
    const rows = await cluster.store.hostTasksChangedSince(
      wanted.map((s) => ({
        stepInstanceId: s.stepInstanceId,
        executeCount: s.executeCount,
        version: this.seen.get(s.stepInstanceId)?.version ?? -1,
      })),
    );
    const byStep = new Map<number, typeof rows>();
    for (const row of rows) {
      const list = byStep.get(row.step_instance_id);
      if (list) list.push(row);
      else byStep.set(row.step_instance_id, [row]);
    }
    for (const [id, list] of byStep) {
      const step = this.steps.get(id);
      if (step && wanted.includes(step)) await this.countChanged(step, list);
    }
  }

  private async countChanged(
    step: ActiveStep,
    rows: { host_id: number; status: number; version: number }[],
  ): Promise<void> {
    const seen = this.seen.get(step.stepInstanceId);
    if (!seen) return;
    for (const row of rows) {
      seen.version = Math.max(seen.version, row.version);
      const task = step.tasks.get(row.host_id);
      if (!task) continue;
      const set = this.byHost.get(row.host_id);
      if (!isHostFinished(row.status)) {
        if (row.status === HostStatus.RUNNING && !isHostFinished(task.status))
          task.status = HostStatus.RUNNING;
        continue;
      }
      // Counted already; otherwise recorded by the server holding the agent. A result this server
      // decided but could not write (the agent's session had moved: fenced) is replaced by the
      // one in the database, which the agent delivered through its new server.
      if (isHostFinished(task.status) && !set?.has(step)) continue;
      const wasFailed = isHostFinished(task.status) && !isHostSuccess(task.status);
      task.status = row.status;
      if (!isHostSuccess(row.status) && !wasFailed) {
        step.failed++;
        if (step.budget !== undefined && step.failed > step.budget && !step.stopping)
          this.stopStep(step, 'budget');
      } else if (isHostSuccess(row.status) && wasFailed) step.failed--;
      if (set?.delete(step)) {
        step.inFlight--;
        if (set.size === 0) this.byHost.delete(row.host_id);
      }
    }
    // batchCounted checks again, under the job's lock, that the step is still here on this batch.
    if (rows.length > 0 && step.inFlight === 0) await this.batchCounted(step);
  }

  /**
   * Tasks of owned steps whose agent is on no server: gone (or never came) for the heartbeat
   * window, or held by a dead server for the agent grace. The failure is written under the
   * session epoch seen, so an agent that reconnects meanwhile keeps its task.
   */
  private async failLostAgents(cluster: NonNullable<Services['cluster']>): Promise<void> {
    const hosts = [...this.byHost.keys()];
    if (hosts.length === 0) return;
    const sessions = await cluster.store.sessions(hosts);
    const dbNow = await cluster.store.now();
    const localNow = Date.now();
    const timeout = this.services.config.heartbeatTimeoutMs;
    // An agent that left a server may be cycling through its list while servers die, pause or
    // refuse it (self-fenced during a PostgreSQL restart), with its backoff growing up to its
    // cap: it gets the grace that outlasts such a storm, not only the heartbeat window.
    const grace = this.services.config.clusterAgentGraceMs;
    for (const hostId of hosts) {
      const s = sessions.get(hostId);
      for (const step of [...(this.byHost.get(hostId) ?? [])]) {
        const task = step.tasks.get(hostId);
        const since = this.seen.get(step.stepInstanceId)?.since ?? localNow;
        if (!task || isHostFinished(task.status) || localNow - since <= timeout) continue;
        // Gone from every server: the grace (not only the heartbeat window) to come back. Held by a
        // dead server: the grace counts from the death and from the moment this server took the
        // step on, whichever is later.
        const lost =
          agentAway(s, dbNow, Math.max(timeout, grace), grace) &&
          (s?.state !== 'connected' || s.serverState === 'alive' || localNow - since > grace);
        if (!lost) continue;
        this.services.log.warn({ hostId, step: step.stepInstanceId }, 'agent on no server; its task fails');
        this.finishTask(step, task, {
          status: HostStatus.AGENT_ABNORMAL,
          errorCode: AgentErrorCode.AGENT_ERROR,
          exitCode: null,
          endTime: localNow,
          sessionEpoch: s?.epoch ?? 0,
        });
      }
    }
  }

  /** The commit in flight that stores the job's end, if one is (see TaskWriter.endingCommit). */
  endingCommit(jobInstanceId: number): Promise<void> | undefined {
    return this.writer.endingCommit(jobInstanceId);
  }

  /** Makes every accepted write durable (used at shutdown). */
  async flush(): Promise<void> {
    await this.writer.flush();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.writer.flush();
    this.callbacks.stop();
  }
}
