/**
 * Groups task writes (output chunks, starts, results) arriving from many agents into one
 * transaction at a time. While a commit is in flight, new writes collect for the next one,
 * so the batch size adapts to load: one write per commit when idle, thousands under a burst.
 * Callers learn after the commit which result changes were applied.
 *
 * A batch of output alone waits a little for more (OUTPUT_HOLD_MS, or until OUTPUT_BATCH_BYTES
 * collect): nothing in it is acknowledged to anyone (the agent keeps its output until the
 * task's result is recorded, and resends from the stored length), and a host printing fast
 * would otherwise pay a commit (statements, a 'log' event, a fingerprint step) every few
 * hundred KiB. Any other write (a start, a result) commits at once, with the output held so far.
 */
import { taskKey } from '@jobfleet/protocol';
import type { ExecutionStore, StepEnd, TaskWrite } from '../store/execution-store.js';
import { isLastingRefusal } from '../store/constraint-errors.js';
import { MAX_JOINED_CHUNK_BYTES } from '../store/output-alignment.js';
import { OutputSlabs, ownCopy } from './output-slabs.js';
import type { SlabLease } from './output-slabs.js';

/** How long a batch of output alone may wait for more before it is committed. */
export const OUTPUT_HOLD_MS = 20;
/** Output that commits without waiting: two full log rows, deflated side by side. */
export const OUTPUT_BATCH_BYTES = 2 * MAX_JOINED_CHUNK_BYTES;
/** How often writes held apart are tried again. */
const HELD_RETRY_MS = 30_000;

export interface CommittedBatch {
  writes: TaskWrite[];
  /** Keys whose status change was applied (the task was still unfinished). */
  applied: Set<string>;
  /** Step (and job) ends stored with the batch's results, `applied` set by the commit. */
  ends: StepEnd[];
}

function writeKey(w: Pick<TaskWrite, 'stepInstanceId' | 'executeCount' | 'hostId' | 'sessionEpoch'>): string {
  const task = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
  return w.sessionEpoch === undefined ? task : `${task}@${w.sessionEpoch}`;
}

export class TaskWriter {
  private pending = new Map<string, TaskWrite>();
  private flushing: Promise<void> | undefined;
  /** The armed flush: when it runs, and how to cancel it (an earlier one replaces it). */
  private scheduled: { at: number; cancel: () => void } | undefined;
  private backoffUntil = 0;
  /** Pending holds more than output (see `write`), or a batch that failed: commit without holding. */
  private urgent = false;
  /** Output bytes pending, and since when the oldest of them waits. */
  private heldBytes = 0;
  private heldSince = 0;
  /** Writes the store refused alone (see commitApart), and the timer of their next try. */
  private held = new Map<string, TaskWrite>();
  private heldTimer: NodeJS.Timeout | undefined;
  /** Jobs whose end is in the commit in flight, and that commit (settled after onCommitted). */
  private ending = new Map<number, Promise<void>>();
  /**
   * Pending output is held in slabs (output-slabs.ts), released when its batch is committed and
   * the store's listeners have taken it; writes held apart keep copies of their own.
   */
  private readonly slabs = new OutputSlabs();
  private lease: SlabLease = new Set();

  constructor(
    private readonly store: ExecutionStore,
    private readonly onCommitted: (batch: CommittedBatch) => void,
    private readonly onError: (err: unknown) => void,
    /** Asked just before a commit: steps that end with this batch's results (see StepEnd). */
    private readonly endsOf: (writes: readonly TaskWrite[]) => StepEnd[] = () => [],
  ) {}

  /**
   * The write for a task in the next batch, created on first use. In a cluster a write belongs
   * to one agent session (`sessionEpoch`): writes of different sessions are never merged, so
   * what an old session left pending stays fenced when a newer one writes for the same task.
   */
  write(stepInstanceId: number, executeCount: number, hostId: number, sessionEpoch?: number): TaskWrite {
    this.urgent = true;
    const w = this.pendingWrite(stepInstanceId, executeCount, hostId, sessionEpoch);
    this.schedule();
    return w;
  }

  /**
   * Output for a task, appended at `offset` (its stored length so far): it may wait for more
   * output before its commit (see above).
   */
  output(
    stepInstanceId: number,
    executeCount: number,
    hostId: number,
    sessionEpoch: number | undefined,
    chunk: { offset: number; data: Buffer },
  ): void {
    const w = this.pendingWrite(stepInstanceId, executeCount, hostId, sessionEpoch);
    if (this.isHeld(w)) {
      w.chunks.push(ownCopy(chunk));
    } else {
      let offset = chunk.offset;
      for (const data of this.slabs.copy(chunk.data, this.lease)) {
        w.chunks.push({ offset, data });
        offset += data.length;
      }
    }
    w.logBytes = chunk.offset + chunk.data.length;
    if (this.heldBytes === 0) this.heldSince = Date.now();
    this.heldBytes += chunk.data.length;
    this.schedule();
  }

  private pendingWrite(
    stepInstanceId: number,
    executeCount: number,
    hostId: number,
    sessionEpoch: number | undefined,
  ): TaskWrite {
    const key = writeKey({ stepInstanceId, executeCount, hostId, sessionEpoch });
    // A task's later writes join its held one, so its output stays in order.
    let w = this.pending.get(key) ?? this.held.get(key);
    if (!w) {
      w = { stepInstanceId, executeCount, hostId, chunks: [] };
      if (sessionEpoch !== undefined) w.sessionEpoch = sessionEpoch;
      this.pending.set(key, w);
    }
    return w;
  }

  private isHeld(w: TaskWrite): boolean {
    // Writes are seldom held: most output is spared building its key again.
    return this.held.size > 0 && this.held.get(writeKey(w)) === w;
  }

  /** Arms the next flush (none while one is in flight: it arms the next when it ends). */
  private schedule(): void {
    if (this.flushing || this.pending.size === 0) return;
    const held = this.urgent || this.heldBytes >= OUTPUT_BATCH_BYTES ? 0 : this.heldSince + OUTPUT_HOLD_MS;
    const at = Math.max(this.backoffUntil, held);
    if (this.scheduled) {
      if (this.scheduled.at <= at) return;
      this.scheduled.cancel();
    }
    const run = () => {
      this.scheduled = undefined;
      void this.flush();
    };
    const wait = at - Date.now();
    if (wait > 0) {
      const t = setTimeout(run, wait);
      this.scheduled = { at, cancel: () => clearTimeout(t) };
    } else {
      const t = setImmediate(run);
      this.scheduled = { at, cancel: () => clearImmediate(t) };
    }
  }

  /** A failed batch goes back in front of what arrived since, and is tried again shortly. */
  private requeue(failed: TaskWrite[]): void {
    const newer = this.pending;
    this.pending = new Map();
    for (const w of failed) this.pending.set(writeKey(w), w);
    for (const [key, w] of newer) {
      const old = this.pending.get(key);
      if (old) mergeInto(old, w);
      else this.pending.set(key, w);
    }
    this.urgent = true;
    this.backoffUntil = Date.now() + 500;
  }

  /**
   * Holds a write the store refused alone, with what its task wrote since, and tries it again
   * every HELD_RETRY_MS (a fixed schema or row may mend it); the task's later writes join it.
   */
  private hold(w: TaskWrite): void {
    const key = writeKey(w);
    const newer = this.pending.get(key);
    if (newer) {
      mergeInto(w, newer);
      this.pending.delete(key);
    }
    // Its output outlives the lease of the batch it came in: it keeps a copy of its own.
    w.chunks = w.chunks.map(ownCopy);
    this.held.set(key, w);
    this.onError(new Error(`task write ${key} is refused by the store: held apart, tried again later`));
    if (this.heldTimer) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = undefined;
      void this.flush();
    }, HELD_RETRY_MS);
    this.heldTimer.unref();
  }

  /**
   * The commit in flight that stores this job's end, if any. A status read that comes meanwhile
   * waits for it rather than answer "running" for a job whose end is being written: at most one
   * commit later, and never staler than a read made at once.
   */
  endingCommit(jobInstanceId: number): Promise<void> | undefined {
    return this.ending.get(jobInstanceId);
  }

  /**
   * Commits everything pending; resolves when nothing written before the call is uncommitted,
   * except writes held apart (see `held`).
   */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    const retryHeld = this.held.size > 0 && !this.heldTimer;
    if (this.pending.size === 0 && !retryHeld) return;
    const writes = [...this.pending.values()];
    const lease = this.lease;
    this.pending = new Map();
    this.lease = new Set();
    this.urgent = false;
    this.heldBytes = 0;
    this.flushing = (async () => {
      if (retryHeld) await this.retryHeld();
      if (writes.length === 0) return;
      const err = await this.commit(writes);
      let settled = err === undefined;
      if (err !== undefined) {
        this.onError(err);
        if (isLastingRefusal(err)) settled = await this.commitApart(writes);
        else this.requeue(writes);
      }
      // Writes put back in the queue still hold their output here.
      if (settled) this.slabs.release(lease);
      else this.slabs.merge(this.lease, lease);
    })();
    await this.flushing;
    this.flushing = undefined;
    if (this.pending.size > 0) this.schedule();
  }

  /** One commit of `writes` with the step ends they bring; the error if it failed. */
  private async commit(writes: TaskWrite[]): Promise<unknown> {
    let settle = () => {};
    const settled = new Promise<void>((resolve) => (settle = resolve));
    let ends: StepEnd[] = [];
    try {
      ends = this.endsOf(writes);
      for (const end of ends) this.ending.set(end.jobInstanceId, settled);
      const applied = await this.store.commitTaskWrites(writes, ends);
      this.onCommitted({ writes, applied, ends });
      return undefined;
    } catch (err) {
      return err;
    } finally {
      for (const end of ends) this.ending.delete(end.jobInstanceId);
      settle();
    }
  }

  /**
   * A batch the store refused for what it holds is committed in halves, down to the write it
   * refuses, which is held apart: one bad write must not keep every other task's output and
   * results out of the store for good. Returns false when a part failed for a passing reason
   * (that part and the rest go back to the queue).
   */
  private async commitApart(writes: TaskWrite[]): Promise<boolean> {
    if (writes.length === 1) {
      this.hold(writes[0] as TaskWrite);
      return true;
    }
    const half = Math.ceil(writes.length / 2);
    const parts = [writes.slice(0, half), writes.slice(half)];
    for (const [i, part] of parts.entries()) {
      const err = await this.commit(part);
      if (err === undefined) continue;
      const lasting = isLastingRefusal(err);
      if (lasting && (await this.commitApart(part))) continue;
      // A part split further has queued its own uncommitted rest already.
      this.requeue(parts.slice(lasting ? i + 1 : i).flat());
      return false;
    }
    return true;
  }

  private async retryHeld(): Promise<void> {
    const held = [...this.held.values()];
    this.held = new Map();
    for (const w of held) {
      const err = await this.commit([w]);
      if (err === undefined) continue;
      if (isLastingRefusal(err)) this.hold(w);
      else this.requeue([w]);
    }
  }
}

/** A later write of the same task folded into an earlier one: its fields win, its output follows. */
function mergeInto(old: TaskWrite, newer: TaskWrite): void {
  const chunks = [...old.chunks, ...newer.chunks];
  Object.assign(old, newer, { chunks });
}
