/**
 * What the engine needs from a kind of step (script, file, confirmation, SQL next). The engine
 * owns job and step order, batches, results and operations; a step kind owns what its step
 * does: how a task reaches its host, and what the step needs around its tasks.
 */
import type { JobInstance } from '../store/execution-store.js';
import type { StepSpec } from './step-spec.js';

export interface TaskRun {
  hostId: number;
  status: number;
  /** Output bytes accepted (committed or in the next batch). */
  logBytes: number;
  batch: number;
  /** Its result is being recorded by the step kind (a resend meanwhile is ignored). */
  ending?: boolean;
}

export interface StepRun {
  jobInstanceId: number;
  stepInstanceId: number;
  stepOrder: number;
  executeCount: number;
  spec: StepSpec;
  tasks: Map<number, TaskRun>;
  /** Current batch; 0 when the step is not rolling. */
  batch: number;
  lastBatch: number;
  /** Unfinished tasks of the current batch. */
  inFlight: number;
  failed: number;
  budget: number | undefined;
  /** Why the step is being stopped early, if it is. */
  stopping: 'terminate' | 'budget' | undefined;
  /** Waiting for a person (between rolling batches, or at a confirmation step). */
  waiting: boolean;
  /** The job's callback URL, when it was at hand as the step started (else read at the end). */
  callbackUrl?: string | null;
}

/** How an agent-reported end of a task reads for this kind of step. */
export interface TaskEnd {
  status: number;
  /** Values the script left in the job's variables (base64 of NUL-separated name/value pairs). */
  vars?: string | undefined;
}

export interface StepKind {
  /**
   * A step of this kind just started (not a resume after a restart): 'wait' holds it at 7 for a
   * person instead of running tasks.
   */
  entered?(step: StepRun, job: JobInstance): Promise<'run' | 'wait'>;
  /** Before the tasks of a batch are sent (prepares what sending needs). */
  beginBatch?(step: StepRun): Promise<void>;
  /** Sends one waiting task to its host; false when the host's agent is not connected. */
  send(step: StepRun, task: TaskRun): boolean;
  /** After every task of a batch was handed to `send`. */
  batchSent?(step: StepRun): void;
  /** The host status a finished task gets; may record what the task reported first. */
  taskEnded?(step: StepRun, hostId: number, end: TaskEnd): Promise<number> | number;
  /** The step's tasks are all over (success or not); frees what the kind holds for it. */
  release?(step: StepRun): Promise<void>;
  /**
   * `release` stores nothing that must be visible before the step's end, so the end may be
   * stored with the step's last results (one commit). Kinds without it end in a commit of their own.
   */
  endsWithResults?(step: StepRun): boolean;
  agentWelcomed?(hostId: number): void;
  agentLost?(hostId: number): void;
}
