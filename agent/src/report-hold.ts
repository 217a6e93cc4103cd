/**
 * Holds a task's first reports for a moment, so that a task that ends soon after it starts is
 * reported in one `task.report` message (start, output, file reports and result) instead of a
 * `task.started`, its output frames (or a download's `task.file` reports) and a
 * `task.finished`: one message for the server to check and handle instead of three or more,
 * and one for the agent to send.
 *
 * A task's `started` opens a hold, which runs `HOLD_MS` from then or, for a script, from its
 * process starting. Output joins it while it is small; so do a download's file reports, when
 * the server takes them in `task.report` (the wire has a `file` sender: its welcome said
 * `fileReports`). Of a file's reports only the last is kept: the server keeps one log line per
 * file and transfer direction, which each report of the file overwrites, and the last (the
 * final `finished` or `failed` of a download that ended) holds everything the earlier ones said.
 * The result closes the hold with the combined message. A hold that outlives `HOLD_MS`, grows
 * past `HOLD_BYTES` or `HOLD_FILES`, or sees output out of order (or after a file report), or a
 * file report for a server that does not take them, is released: what it held goes out as
 * separate messages, in order (its start, output, then the last report of each file), and what
 * comes later goes out as before. Everything held is already in the spool (the runner reports
 * only what it wrote, and spools a file's final report before it reports it), so a hold lost
 * with its connection costs nothing: the resume after the next welcome sends what the server
 * lacks.
 *
 * Holding delays what a status poll shows for a running task (waiting instead of running, the
 * first output, a download's first file logs: "downloading" with its progress) by at most
 * `HOLD_MS` after its process started (a download's: after its start); it never delays a result.
 * A download that outlives the hold reports its progress live from then on.
 *
 * After a release, a task's output waits until the end of the loop turn it arrived in (its
 * "tail"): a result reported in the same turn (a script's last output and its exit reach the
 * agent together) goes out with it as one `task.report`, whose start the server already has
 * and ignores. On a busy host most short tasks outlive the hold; this keeps their last output
 * and result in one message instead of two.
 */
import type { FileReport, FinishedReport } from './task-spool.js';

/** Long enough to cover a short script's whole run on a busy host; short next to status polling. */
export const HOLD_MS = 200;
/** Output held per task at most; more goes out as binary frames at once. */
export const HOLD_BYTES = 64 * 1024;
/** Files whose reports a hold keeps at most (a download of a whole directory tree may have thousands). */
export const HOLD_FILES = 256;

export interface CombinedReport {
  key: string;
  startTime: number;
  output?: { offset: number; data: string };
  /** The last report of each file, in the order those were made. */
  files?: Omit<FileReport, 'key'>[];
  result: Omit<FinishedReport, 'key'>;
}

/** Where released and combined reports go. */
export interface ReportWire {
  started(key: string, startTime: number): void;
  output(key: string, offset: number, data: Buffer): void;
  finished(msg: FinishedReport): void;
  report(msg: CombinedReport): void;
  /**
   * Sends a file report as a `task.file` message. Given only for a server that takes file
   * reports in `task.report` (its welcome says `fileReports`): without it no file report is
   * held (a server whose schema lacks `files` would drop them unseen), and a file report
   * releases its task's hold for the caller to send it after what the hold had.
   */
  file?(msg: FileReport): void;
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
  /** The last report of each file (by fileId), in the order those were made. */
  files: Map<string, FileReport>;
}

/** A file's reports, by the log line they write on the server (its source and its target). */
function fileId(r: FileReport): string {
  return `${r.label}\u0000${r.sourcePath}\u0000${r.targetPath}`;
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
    this.held.set(key, {
      startTime,
      offset: 0,
      chunks: [],
      bytes: 0,
      timer: this.timeOut(key),
      files: new Map(),
    });
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
    // Output after a file report would go out before it in the combined report: released.
    if (!h || h.files.size > 0 || offset !== h.offset + h.bytes || h.bytes + data.length > HOLD_BYTES) {
      this.release(key);
      this.wire.output(key, offset, data);
      return;
    }
    h.chunks.push(data);
    h.bytes += data.length;
  }

  /**
   * A download's file report: true when the hold took it (the task is held and the server takes
   * file reports in `task.report`), to go out with the result or on release. False when the
   * caller must send it now: the task's hold (or tail) is released first, so it follows what
   * was reported before it.
   */
  file(msg: FileReport): boolean {
    const h = this.held.get(msg.key);
    const id = fileId(msg);
    if (!h || !this.wire.file || (h.files.size >= HOLD_FILES && !h.files.has(id))) {
      this.release(msg.key);
      return false;
    }
    // Moved to the end: the order of last reports is the order the server must see them in.
    h.files.delete(id);
    h.files.set(id, msg);
    return true;
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
    this.report(msg, h, h.files);
  }

  /** The result with the output and file reports not sent yet, as one message. */
  private report(msg: FinishedReport, p: Pending, files?: Map<string, FileReport>): void {
    const { key, ...result } = msg;
    this.wire.report({
      key,
      startTime: p.startTime,
      ...(p.bytes > 0
        ? { output: { offset: p.offset, data: Buffer.concat(p.chunks).toString('base64') } }
        : {}),
      ...(files && files.size > 0 ? { files: [...files.values()].map(({ key: _key, ...f }) => f) } : {}),
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
    for (const f of h.files.values()) this.wire.file?.(f);
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
