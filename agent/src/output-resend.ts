/**
 * The resend of task output after a reconnect, paced by the connection: an agent whose tasks
 * kept printing while it was away may owe the server hundreds of MiB. Read from the spool and
 * queued on the socket all at once, that is as much memory again and a loop blocked for the
 * whole read (no heartbeats, no pongs, no other task's reports). Instead one frame is read and
 * sent at a time, only while the connection has less than `highWater` bytes queued, and at most
 * `turnBytes` in one turn of the event loop.
 *
 * Tasks take turns, a frame each, so that a task with little to resend is done (and its result
 * sent) in the first round whatever the others owe. A task's output may grow while it is resent:
 * the resend reads up to what the task has written at each frame, and hands the task back to
 * live reporting (`caughtUp`) in the same turn as it sends the last byte, so that no live frame
 * can come between and leave the server a gap. The owner holds the task's live output back
 * until then.
 *
 * A resend ends when every task caught up, when it is cancelled (a new welcome starts another),
 * or when the connection is gone: what it did not send, the next welcome's resend does.
 */

export interface ResendPort {
  /** Bytes of the task's output so far (it may grow meanwhile); undefined once the task is gone. */
  written(key: string): number | undefined;
  read(key: string, from: number, to: number): Buffer;
  send(key: string, offset: number, data: Buffer): void;
  /** Everything the task wrote is sent: its reports may go out live again (and its result follow). */
  caughtUp(key: string): void;
  /** Bytes queued on the connection and not yet taken by the network; undefined once it is gone. */
  backlog(): number | undefined;
}

export interface ResendOptions {
  frameBytes: number;
  highWater?: number;
  turnBytes?: number;
  pollMs?: number;
}

/**
 * Several frames queued keep a fast link busy while the loop does other work; little enough
 * that what a resend holds in memory does not grow with what it owes.
 */
export const RESEND_HIGH_WATER = 8 * 1024 * 1024;
/** Enough per turn to keep up with a fast link, little enough to answer a ping meanwhile. */
const TURN_BYTES = 8 * 1024 * 1024;
/**
 * `ws` has no event for a queue that drained below a mark; a few milliseconds is short next to
 * what a link takes to send 8 MiB (67 ms at 1 Gbit/s), so polling costs little throughput.
 */
const POLL_MS = 5;

interface Stream {
  key: string;
  offset: number;
}

export class OutputResend {
  private readonly queue: Stream[] = [];
  private readonly highWater: number;
  private readonly turnBytes: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private stopped = false;

  constructor(
    private readonly port: ResendPort,
    private readonly opts: ResendOptions,
  ) {
    this.highWater = opts.highWater ?? RESEND_HIGH_WATER;
    this.turnBytes = opts.turnBytes ?? TURN_BYTES;
    this.pollMs = opts.pollMs ?? POLL_MS;
  }

  /**
   * Resends each task's output from `from` (what the server has); what the connection takes
   * now is sent before this returns, so a small resend is done at once.
   */
  start(tasks: readonly { key: string; from: number }[]): void {
    for (const t of tasks) {
      // Tasks the server has all of go back to live reporting before any frame is sent, rather
      // than wait for their turn behind the ones that owe a lot.
      if (t.from >= (this.port.written(t.key) ?? 0)) this.port.caughtUp(t.key);
      else this.queue.push({ key: t.key, offset: t.from });
    }
    this.pump();
  }

  /** Still sending, or done with every task; false once cancelled or its connection is gone. */
  get active(): boolean {
    return !this.stopped;
  }

  cancel(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.queue.length = 0;
  }

  private pump(): void {
    this.timer = undefined;
    this.immediate = undefined;
    let budget = this.turnBytes;
    while (!this.stopped) {
      const s = this.queue[0];
      if (!s) return;
      const end = this.port.written(s.key);
      if (end === undefined) {
        this.queue.shift();
        continue;
      }
      if (s.offset >= end) {
        this.queue.shift();
        this.port.caughtUp(s.key);
        continue;
      }
      const backlog = this.port.backlog();
      if (backlog === undefined) return this.cancel();
      if (backlog >= this.highWater) {
        this.timer = setTimeout(() => this.pump(), this.pollMs);
        return;
      }
      if (budget <= 0) {
        this.immediate = setImmediate(() => this.pump());
        return;
      }
      this.queue.shift();
      const to = Math.min(end, s.offset + this.opts.frameBytes);
      this.port.send(s.key, s.offset, this.port.read(s.key, s.offset, to));
      budget -= to - s.offset;
      s.offset = to;
      // Checked before anything else can run: output added from now on goes out live.
      if (to >= end) this.port.caughtUp(s.key);
      else this.queue.push(s);
    }
  }
}
