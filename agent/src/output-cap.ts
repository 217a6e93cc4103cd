/**
 * Keeps a task's output within a cap: the head streams as it comes, the tail is kept, and the
 * middle is dropped and counted. At the end the tail follows a marker saying how many bytes
 * were dropped and how many were kept on each side, never silently.
 *
 * The tail is half the cap up to TAIL_WINDOW_BYTES and the head is the rest of it (the default
 * cap of 5 MiB splits in halves). The tail is held in memory until the task ends, so it is
 * bounded: an operator who raises the cap to hundreds of MiB must not make every agent hold
 * half of it per running task, and the live log keeps flowing until the cap is nearly reached
 * rather than stopping at half of it.
 *
 * The tail keeps the chunks it is given rather than copying them into a ring: a task printing
 * fast hands over chunks of up to a MiB, and copying tens of MiB into a ring of half the cap
 * (allocated, page by page, when the head fills) was most of the agent's work while such a
 * task ran past its head. Chunks shorter than SMALL_CHUNK are copied into shared blocks, so a
 * script printing millions of tiny lines costs a copy per chunk, not an object per chunk.
 * What is kept is at most the tail window plus one block and the part of the oldest chunk already
 * dropped.
 */

/** The most of a task's output held back for the end (see above). */
export const TAIL_WINDOW_BYTES = 8 * 1024 * 1024;

/** Chunks shorter than this are copied into a block instead of being kept as they are. */
const SMALL_CHUNK = 16 * 1024;
const BLOCK_BYTES = 64 * 1024;

export class OutputCap {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private headBytes = 0;
  /** The tail, oldest first. */
  private parts: Buffer[] = [];
  private tailBytes = 0;
  /** The block small chunks are copied into; its filled part is the last of `parts`. */
  private block: Buffer | undefined;
  private blockStart = 0;
  private blockEnd = 0;
  dropped = 0;

  constructor(capBytes: number) {
    this.tailLimit = Math.min(capBytes - Math.floor(capBytes / 2), TAIL_WINDOW_BYTES);
    this.headLimit = capBytes - this.tailLimit;
  }

  /** Returns the part of `chunk` that belongs to the head (to be streamed now). */
  push(chunk: Buffer): Buffer {
    const room = this.headLimit - this.headBytes;
    if (chunk.length <= room) {
      this.headBytes += chunk.length;
      return chunk;
    }
    const head = chunk.subarray(0, Math.max(room, 0));
    this.headBytes += head.length;
    this.keep(chunk.subarray(head.length));
    return head;
  }

  private keep(bytes: Buffer): void {
    const limit = this.tailLimit;
    if (bytes.length >= limit) {
      this.dropped += this.tailBytes + bytes.length - limit;
      this.parts = limit > 0 ? [bytes.subarray(bytes.length - limit)] : [];
      this.tailBytes = limit;
      this.block = undefined;
      return;
    }
    if (bytes.length < SMALL_CHUNK) this.copyIn(bytes);
    else {
      this.block = undefined;
      this.parts.push(bytes);
    }
    this.tailBytes += bytes.length;
    this.trim();
  }

  /** Appends a small chunk to the open block (a new one when it is full). */
  private copyIn(bytes: Buffer): void {
    let block = this.block;
    if (!block || block.length - this.blockEnd < bytes.length) {
      block = this.block = Buffer.allocUnsafe(Math.max(BLOCK_BYTES, bytes.length));
      this.blockStart = this.blockEnd = 0;
      this.parts.push(block.subarray(0, 0));
    }
    bytes.copy(block, this.blockEnd);
    this.blockEnd += bytes.length;
    this.parts[this.parts.length - 1] = block.subarray(this.blockStart, this.blockEnd);
  }

  /** Drops the oldest bytes past the tail's limit. */
  private trim(): void {
    let over = this.tailBytes - this.tailLimit;
    if (over <= 0) return;
    this.dropped += over;
    this.tailBytes -= over;
    while (over > 0) {
      const first = this.parts[0] as Buffer;
      if (first.length <= over) {
        this.parts.shift();
        over -= first.length;
        if (this.parts.length === 0) this.block = undefined;
        continue;
      }
      this.parts[0] = first.subarray(over);
      // The open block's view must start where its kept bytes start.
      if (this.parts.length === 1 && this.block) this.blockStart += over;
      over = 0;
    }
  }

  /**
   * What follows the head once the task ended: the marker (if anything was dropped) and the
   * tail, in parts (not joined: the tail may be megabytes).
   */
  finish(): Buffer[] {
    const tail = this.parts.filter((b) => b.length > 0);
    this.parts = [];
    this.tailBytes = 0;
    this.block = undefined;
    if (this.dropped === 0) return tail;
    const marker = Buffer.from(
      `\n[jobfleet: ${this.dropped} bytes of output dropped here; the log keeps the first ${this.headLimit} and the last ${this.tailLimit} bytes]\n`,
    );
    return [marker, ...tail];
  }
}
