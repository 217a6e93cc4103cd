/**
 * Keeps a task's output within a cap: the first half of the cap streams as it comes (the
 * head), the last half is kept in a ring (the tail), and the middle is dropped and counted.
 * At the end the tail follows a marker saying how many bytes were dropped, never silently.
 */
export class OutputCap {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  dropped = 0;

  constructor(capBytes: number) {
    this.headLimit = Math.floor(capBytes / 2);
    this.tailLimit = capBytes - this.headLimit;
  }

  /** Returns the part of `chunk` that belongs to the head (to be streamed now). */
  push(chunk: Buffer): Buffer {
    const room = this.headLimit - this.headBytes;
    const head = room > 0 ? chunk.subarray(0, room) : Buffer.alloc(0);
    this.headBytes += head.length;
    const rest = chunk.subarray(head.length);
    if (rest.length > 0) {
      this.tail.push(rest);
      this.tailBytes += rest.length;
      while (this.tailBytes > this.tailLimit) {
        const first = this.tail[0];
        if (!first) break;
        const excess = this.tailBytes - this.tailLimit;
        if (first.length <= excess) {
          this.tail.shift();
          this.tailBytes -= first.length;
          this.dropped += first.length;
        } else {
          this.tail[0] = first.subarray(excess);
          this.tailBytes -= excess;
          this.dropped += excess;
        }
      }
    }
    return head;
  }

  /** What follows the head once the task ended: the marker (if anything was dropped) and the tail. */
  finish(): Buffer {
    const tail = Buffer.concat(this.tail);
    this.tail = [];
    if (this.dropped === 0) return tail;
    const marker = Buffer.from(
      `\n[jobfleet: ${this.dropped} bytes of output dropped here; the log keeps its first and last ${this.headLimit} bytes]\n`,
    );
    return Buffer.concat([marker, tail]);
  }
}
