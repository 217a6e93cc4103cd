/**
 * Holds a task's first reports for a moment, so that a task that ends soon after it starts is
 * reported in one `task.report` message (start, output and result) instead of a `task.started`,
 * its output frames and a `task.finished`: one message for the server to check and handle
 * instead of three, and one for the agent to send.
 *
 * A task's `started` opens a hold, which runs `HOLD_MS` from then or, for a script, from its
 * process starting. Output joins it while it is small; the result closes it with
 * the combined message. A hold that outlives `HOLD_MS`, grows past `HOLD_BYTES`, or sees output
 * out of order or a file report is released: what it held goes out as separate messages, in
 * order, and what comes later goes out as before. Everything held is already in the spool (the
 * runner reports only what it wrote), so a hold lost with its connection costs nothing: the
 * resume after the next welcome sends what the server lacks.
 *
 * Holding delays what a status poll shows for a running task (waiting instead of running, the
 * first output) by at most `HOLD_MS` after its process started; it never delays a result.
 *
 * After a release, a task's output waits until the end of the loop turn it arrived in (its
 * "tail"): a result reported in the same turn (a script's last output and its exit reach the
 * agent together) goes out with it as one `task.report`, whose start the server already has
 * and ignores. On a busy host most short tasks outlive the hold; this keeps their last output
 * and result in one message instead of two.
 */
import type { FinishedReport } from './task-spool.js';

/** Long enough to cover a short script's whole run on a busy host; short next to status polling. */
export const HOLD_MS = 200;
/** Output held per task at most; more goes out as binary frames at once. */
export const HOLD_BYTES = 64 * 1024;

export interface CombinedReport {
  key: string;
  startTime: number;
  output?: { offset: number; data: string };
  result: Omit<FinishedReport, 'key'>;
}

/** Where released and combined reports go. */
export interface ReportWire {
  started(key: string, startTime: number): void;
  output(key: string, offset: number, data: Buffer): void;
  finished(msg: FinishedReport): void;
  report(msg: CombinedReport): void;
}

/** A task's output not sent yet: a hold's, or a released task's of the current loop turn (its tail). */
interface Pending {
  startTime: number;
  offset: number;
  chunks: Buffer[];
  bytes: number;
}

interface Held extends Pending {
  timer: NodeJS.Timeout;
}

export class ReportHold {
  private readonly held = new Map<string, Held>();
  /** Released tasks that have not ended yet, with the output of this turn. */
  private readonly released = new Map<string, Pending>();
  /** Released tasks whose tail has output, sent at the end of the turn. */
  private readonly pendingTails = new Set<string>();
  private tailsFlush: NodeJS.Immediate | undefined;

  constructor(
    private readonly wire: ReportWire,
    private readonly holdMs = HOLD_MS,
  ) {}

  started(key: string, startTime: number): void {
    if (this.held.has(key)) return;
    this.held.set(key, { startTime, offset: 0, chunks: [], bytes: 0, timer: this.timeOut(key) });
  }

  /**
   * Node runs expired timers before it reads what arrived meanwhile: an agent whose loop was
   * busy for longer than the hold (hundreds of tasks arriving at once) would release holds of
   * tasks whose results are already waiting to be read. The release waits two turns of the
   * loop after the time is up, so that what arrived by then (read in the first, written to the
   * spool and reported in its check phase) closes the hold first.
   */
  private timeOut(key: string): NodeJS.Timeout {
    const timer = setTimeout(() => setImmediate(() => setImmediate(() => this.release(key))), this.holdMs);
    timer.unref();
    return timer;
  }

  /**
   * The task's process started: its hold runs from now. A task that waited for its turn to be
   * forked (a busy launcher) is held for its own run, not for the queue it waited in.
   */
  spawned(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    clearTimeout(h.timer);
    h.timer = this.timeOut(key);
  }

  output(key: string, offset: number, data: Buffer): void {
    const tail = this.released.get(key);
    if (tail) return this.addToTail(key, tail, offset, data);
    const h = this.held.get(key);
    if (h && h.chunks.length === 0) h.offset = offset;
    if (!h || offset !== h.offset + h.bytes || h.bytes + data.length > HOLD_BYTES) {
      this.release(key);
      this.wire.output(key, offset, data);
      return;
    }
    h.chunks.push(data);
    h.bytes += data.length;
  }

  finished(msg: FinishedReport): void {
    const tail = this.released.get(msg.key);
    if (tail) {
      this.released.delete(msg.key);
      this.pendingTails.delete(msg.key);
      if (tail.bytes === 0) this.wire.finished(msg);
      else this.report(msg, tail);
      return;
    }
    const h = this.held.get(msg.key);
    if (!h) {
      this.wire.finished(msg);
      return;
    }
    clearTimeout(h.timer);
    this.held.delete(msg.key);
    this.report(msg, h);
  }

  /** The result with the output not sent yet, as one message. */
  private report(msg: FinishedReport, p: Pending): void {
    const { key, ...result } = msg;
    this.wire.report({
      key,
      startTime: p.startTime,
      ...(p.bytes > 0
        ? { output: { offset: p.offset, data: Buffer.concat(p.chunks).toString('base64') } }
        : {}),
      result,
    });
  }

  /**
   * Sends what a task's hold has, as separate messages; later output of it waits only for the
   * end of its turn (see the module comment). Releasing a task that was released already sends
   * its tail and ends that too: its reports go out directly from then on (a download's file
   * reports, which must follow its output).
   */
  release(key: string): void {
    const tail = this.released.get(key);
    if (tail) {
      this.released.delete(key);
      this.sendTail(key, tail);
      return;
    }
    const h = this.held.get(key);
    if (!h) return;
    clearTimeout(h.timer);
    this.held.delete(key);
    this.wire.started(key, h.startTime);
    const offset = this.sendOutput(key, h);
    this.released.set(key, { startTime: h.startTime, offset, chunks: [], bytes: 0 });
  }

  /** Forgets every hold (the connection is gone; the resume after the next welcome resends). */
  drop(): void {
    for (const h of this.held.values()) clearTimeout(h.timer);
    this.held.clear();
    this.released.clear();
    this.pendingTails.clear();
    if (this.tailsFlush) clearImmediate(this.tailsFlush);
    this.tailsFlush = undefined;
  }

  private addToTail(key: string, tail: Pending, offset: number, data: Buffer): void {
    if (tail.bytes > 0 && (offset !== tail.offset + tail.bytes || tail.bytes + data.length > HOLD_BYTES))
      this.sendTail(key, tail);
    if (tail.bytes === 0 && data.length > HOLD_BYTES) {
      this.wire.output(key, offset, data);
      return;
    }
    if (tail.bytes === 0) tail.offset = offset;
    tail.chunks.push(data);
    tail.bytes += data.length;
    this.pendingTails.add(key);
    this.tailsFlush ??= setImmediate(() => {
      this.tailsFlush = undefined;
      for (const k of this.pendingTails) {
        const t = this.released.get(k);
        if (t) this.sendTail(k, t);
      }
      this.pendingTails.clear();
    });
  }

  private sendTail(key: string, tail: Pending): void {
    this.pendingTails.delete(key);
    this.sendOutput(key, tail);
  }

  /** Sends output not sent yet as frames and empties it; returns the offset after it. */
  private sendOutput(key: string, p: Pending): number {
    let offset = p.offset;
    for (const c of p.chunks) {
      this.wire.output(key, offset, c);
      offset += c.length;
    }
    p.chunks = [];
    p.bytes = 0;
    return offset;
  }
}
