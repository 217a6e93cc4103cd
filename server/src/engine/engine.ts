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
 */
import { PROTOCOL_VERSION, parseTaskKey, taskKey } from '@jobfleet/protocol';
import type { HeldTask, RunScript, TaskFinished, TaskOutput, TaskStarted } from '@jobfleet/protocol';
import type { AgentEvents } from '../agent-link/agent-hub.js';
import type { Services } from '../services.js';
import type { JobInstance, NewJob, StepInstance } from '../store/execution-store.js';
import { CallbackQueue } from './callback-queue.js';
import { callbackPayload } from './callback-payload.js';
import {
  AgentErrorCode,
  HostStatus,
  RunStatus,
  SCRIPT_LANGUAGES,
  hostStatusOfOutcome,
  isCallbackStatus,
  isHostFinished,
  stepStatusOfHosts,
} from './statuses.js';
import { parseStepSpec } from './step-spec.js';
import type { StepSpec } from './step-spec.js';
import { TaskWriter } from './task-writer.js';
import type { CommittedBatch } from './task-writer.js';

interface ActiveTask {
  hostId: number;
  status: number;
  /** Output bytes accepted (committed or in the next batch). */
  logBytes: number;
}

interface ActiveStep {
  jobInstanceId: number;
  stepInstanceId: number;
  executeCount: number;
  spec: StepSpec;
  tasks: Map<number, ActiveTask>;
  unfinished: number;
}

export class Engine implements AgentEvents {
  private readonly steps = new Map<number, ActiveStep>();
  /** hostId -> steps with an unfinished task on that host */
  private readonly byHost = new Map<number, Set<ActiveStep>>();
  private readonly writer: TaskWriter;
  readonly callbacks: CallbackQueue;

  constructor(private readonly services: Services) {
    this.writer = new TaskWriter(
      services.store.executions,
      (b) => this.afterCommit(b),
      (err) => services.log.error({ err }, 'task write batch failed; will retry'),
    );
    this.callbacks = new CallbackQueue(services);
  }

  // ------------------------------------------------------------ submission

  /** Stores the job (started or not) in one transaction, then dispatches it. */
  async submit(
    job: NewJob,
    startTask: boolean,
  ): Promise<{ jobInstanceId: number; stepInstanceIds: number[] }> {
    const ids = await this.services.store.executions.createJobInstance(job);
    if (startTask) await this.start(ids.jobInstanceId);
    return ids;
  }

  /** Moves a pending job to running and starts its first step. */
  async start(jobInstanceId: number): Promise<boolean> {
    const ex = this.services.store.executions;
    const job = await ex.getJob(jobInstanceId);
    if (!job || job.status !== RunStatus.PENDING) return false;
    const now = Date.now();
    await ex.updateJob(jobInstanceId, { status: RunStatus.RUNNING, start_time: now });
    const [first] = await ex.getStepsOfJob(jobInstanceId);
    if (!first) {
      await this.finishJob({ ...job, status: RunStatus.RUNNING, start_time: now }, RunStatus.SUCCESS);
      return true;
    }
    await this.startStep(first);
    return true;
  }

  private async startStep(step: StepInstance): Promise<void> {
    const ex = this.services.store.executions;
    if (step.status !== RunStatus.RUNNING) {
      await ex.updateStep(step.id, { status: RunStatus.RUNNING, start_time: Date.now() });
    }
    await this.activate(step);
  }

  /** Indexes a running step's unfinished tasks and dispatches those whose agents are here. */
  private async activate(step: StepInstance): Promise<void> {
    const tasks = await this.services.store.executions.listHostTasks(step.id, step.execute_count);
    const active: ActiveStep = {
      jobInstanceId: step.job_instance_id,
      stepInstanceId: step.id,
      executeCount: step.execute_count,
      spec: parseStepSpec(step.spec),
      tasks: new Map(),
      unfinished: 0,
    };
    for (const t of tasks) {
      active.tasks.set(t.host_id, { hostId: t.host_id, status: t.status, logBytes: t.log_bytes });
      if (!isHostFinished(t.status)) {
        active.unfinished++;
        let set = this.byHost.get(t.host_id);
        if (!set) this.byHost.set(t.host_id, (set = new Set()));
        set.add(active);
      }
    }
    this.steps.set(step.id, active);
    if (active.unfinished === 0) {
      await this.completeStep(active);
      return;
    }
    const absent: number[] = [];
    for (const t of active.tasks.values()) {
      if (t.status !== HostStatus.WAITING) continue;
      if (!this.dispatch(active, t)) absent.push(t.hostId);
    }
    // Agents not connected now get the heartbeat window to show up, then their hosts fail (310).
    this.services.hub.expect(absent);
  }

  private dispatch(step: ActiveStep, task: ActiveTask): boolean {
    const spec = step.spec;
    const msg: RunScript = {
      v: PROTOCOL_VERSION,
      type: 'task.run',
      key: taskKey(step.stepInstanceId, step.executeCount, task.hostId),
      language: SCRIPT_LANGUAGES[spec.language],
      script: spec.scriptContent,
      params: spec.scriptParam,
      timeoutSeconds: spec.timeout,
      user: spec.account.osUser,
      logCapBytes: this.services.config.logCapBytes,
    };
    return this.services.hub.send(task.hostId, msg);
  }

  // ------------------------------------------------------------ recovery

  /** Picks up every running job after a start: the store says what was in flight. */
  async recover(): Promise<void> {
    const ex = this.services.store.executions;
    const jobs = await ex.listActiveJobs();
    for (const job of jobs) {
      const steps = await ex.getStepsOfJob(job.id);
      const current =
        steps.find((s) => s.status === RunStatus.RUNNING) ??
        steps.find((s) => s.status === RunStatus.PENDING);
      if (!current) {
        const last = steps[steps.length - 1];
        await this.finishJob(job, last ? (last.status as RunStatus) : RunStatus.SUCCESS);
        continue;
      }
      await this.startStep(current);
    }
    if (jobs.length > 0) this.services.log.info({ jobs: jobs.length }, 'resumed running jobs');
    this.callbacks.start();
  }

  // ------------------------------------------------------------ agent events

  private lookup(key: string): { step: ActiveStep; task: ActiveTask } | undefined {
    const k = parseTaskKey(key);
    const step = this.steps.get(k.stepInstanceId);
    if (!step || step.executeCount !== k.executeCount) return undefined;
    const task = step.tasks.get(k.hostId);
    return task ? { step, task } : undefined;
  }

  async agentReady(
    hostId: number,
    held: HeldTask[],
  ): Promise<{ stored: Record<string, number>; forget: string[] }> {
    const stored: Record<string, number> = {};
    const forget: string[] = [];
    for (const h of held) {
      const hit = this.lookup(h.key);
      if (hit && hit.task.hostId === hostId && !isHostFinished(hit.task.status))
        stored[h.key] = hit.task.logBytes;
      else forget.push(h.key);
    }
    // Tasks this agent was running but no longer knows of (it restarted without its spool) are lost.
    const heldKeys = new Set(held.map((h) => h.key));
    for (const step of this.byHost.get(hostId) ?? []) {
      const task = step.tasks.get(hostId);
      if (
        task?.status === HostStatus.RUNNING &&
        !heldKeys.has(taskKey(step.stepInstanceId, step.executeCount, hostId))
      ) {
        this.finishTask(step, task, {
          status: HostStatus.AGENT_ABNORMAL,
          errorCode: AgentErrorCode.AGENT_ERROR,
          exitCode: null,
          endTime: Date.now(),
        });
      }
    }
    return { stored, forget };
  }

  agentWelcomed(hostId: number): void {
    for (const step of this.byHost.get(hostId) ?? []) {
      const task = step.tasks.get(hostId);
      if (task?.status === HostStatus.WAITING) this.dispatch(step, task);
    }
  }

  taskStarted(hostId: number, msg: TaskStarted): void {
    const hit = this.lookup(msg.key);
    if (!hit || hit.task.hostId !== hostId || hit.task.status !== HostStatus.WAITING) return;
    hit.task.status = HostStatus.RUNNING;
    const w = this.writer.write(hit.step.stepInstanceId, hit.step.executeCount, hostId);
    w.status = HostStatus.RUNNING;
    w.startTime = msg.startTime;
    w.errorCode = AgentErrorCode.RUNNING;
  }

  taskOutput(hostId: number, msg: TaskOutput): void {
    const hit = this.lookup(msg.key);
    if (!hit || hit.task.hostId !== hostId || isHostFinished(hit.task.status)) return;
    const data = Buffer.from(msg.data, 'base64');
    const { task, step } = hit;
    // Offsets make resends harmless: drop what we have, ignore gaps (the agent resends on reconnect).
    if (msg.offset > task.logBytes || msg.offset + data.length <= task.logBytes) return;
    const fresh = data.subarray(task.logBytes - msg.offset);
    const w = this.writer.write(step.stepInstanceId, step.executeCount, hostId);
    w.chunks.push({ offset: task.logBytes, data: fresh });
    task.logBytes += fresh.length;
    w.logBytes = task.logBytes;
  }

  taskFinished(hostId: number, msg: TaskFinished): void {
    const hit = this.lookup(msg.key);
    if (!hit || hit.task.hostId !== hostId || isHostFinished(hit.task.status)) {
      // Already recorded (or never ours): let the agent forget it.
      this.services.hub.send(hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key: msg.key });
      return;
    }
    if (hit.task.logBytes < msg.outputBytes) {
      // Output is missing (lost with a dropped connection); the agent resends all of it after reconnecting.
      this.services.log.warn(
        { key: msg.key, have: hit.task.logBytes, want: msg.outputBytes },
        'result ahead of output; waiting for resend',
      );
      return;
    }
    const { status, errorCode } = hostStatusOfOutcome(msg.outcome, msg.exitCode);
    this.finishTask(hit.step, hit.task, {
      status,
      errorCode,
      exitCode:
        msg.outcome === 'exited' || msg.outcome === 'timeout' || msg.outcome === 'killed'
          ? msg.exitCode
          : null,
      endTime: msg.endTime,
      startTime: msg.startTime,
      droppedBytes: msg.droppedBytes,
    });
  }

  agentLost(hostId: number): void {
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
    },
  ): void {
    task.status = r.status;
    const w = this.writer.write(step.stepInstanceId, step.executeCount, task.hostId);
    w.status = r.status;
    w.errorCode = r.errorCode;
    w.exitCode = r.exitCode;
    w.endTime = r.endTime;
    if (r.startTime !== undefined && w.startTime === undefined) w.startTime = r.startTime;
    if (r.droppedBytes !== undefined) w.droppedBytes = r.droppedBytes;
  }

  /** After a batch is durable: confirm results to agents, and complete steps whose hosts are all done. */
  private afterCommit(batch: CommittedBatch): void {
    const touched = new Set<ActiveStep>();
    for (const w of batch.writes) {
      if (w.status === undefined || !isHostFinished(w.status)) continue;
      const key = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
      this.services.hub.send(w.hostId, { v: PROTOCOL_VERSION, type: 'task.recorded', key });
      const step = this.steps.get(w.stepInstanceId);
      if (!step || step.executeCount !== w.executeCount) continue;
      const set = this.byHost.get(w.hostId);
      if (set?.delete(step)) {
        step.unfinished--;
        if (set.size === 0) this.byHost.delete(w.hostId);
        touched.add(step);
      }
    }
    for (const step of touched) {
      if (step.unfinished === 0) {
        this.completeStep(step).catch((err: unknown) =>
          this.services.log.error({ err, step: step.stepInstanceId }, 'completing step failed'),
        );
      }
    }
  }

  private async completeStep(step: ActiveStep): Promise<void> {
    const ex = this.services.store.executions;
    this.steps.delete(step.stepInstanceId);
    const status = stepStatusOfHosts([...step.tasks.values()].map((t) => t.status));
    await ex.updateStep(step.stepInstanceId, { status, end_time: Date.now() });
    const job = await ex.getJob(step.jobInstanceId);
    if (!job || job.status !== RunStatus.RUNNING) return;
    if (status === RunStatus.SUCCESS) {
      const steps = await ex.getStepsOfJob(job.id);
      const next = steps.find((s) => s.status === RunStatus.PENDING);
      if (next) return this.startStep(next);
    }
    await this.finishJob(job, status);
  }

  private async finishJob(job: JobInstance, status: RunStatus): Promise<void> {
    const ex = this.services.store.executions;
    const now = Date.now();
    await ex.updateJob(job.id, { status, end_time: now });
    this.services.log.info({ job: job.id, status }, 'job finished');
    if (job.callback_url && isCallbackStatus(status)) {
      const steps = await ex.getStepsOfJob(job.id);
      await this.callbacks.enqueue(job.id, job.callback_url, callbackPayload(job.id, status, steps), now);
    }
  }

  /** Makes every accepted write durable (used at shutdown and by tests). */
  async flush(): Promise<void> {
    await this.writer.flush();
  }

  async close(): Promise<void> {
    await this.writer.flush();
    this.callbacks.stop();
  }
}
