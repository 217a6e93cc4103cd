/**
 * Keeps a task's output within a cap: the first half of the cap streams as it comes (the
 * head), the last half is kept in a ring (the tail), and the middle is dropped and counted.
 * At the end the tail follows a marker saying how many bytes were dropped, never silently.
 *
 * The ring is one buffer allocated when the head is full, so a script printing millions of
 * tiny lines costs a copy per chunk, not an object per chunk.
 */
export class OutputCap {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private headBytes = 0;
  private ring: Buffer | undefined;
  /** Where the next tail byte goes in the ring. */
  private ringEnd = 0;
  private ringFill = 0;
  dropped = 0;

  constructor(capBytes: number) {
    this.headLimit = Math.floor(capBytes / 2);
    this.tailLimit = capBytes - this.headLimit;
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
    if (limit === 0) {
      this.dropped += bytes.length;
      return;
    }
    this.ring ??= Buffer.allocUnsafe(limit);
    if (bytes.length >= limit) {
      this.dropped += this.ringFill + bytes.length - limit;
      bytes.copy(this.ring, 0, bytes.length - limit);
      this.ringEnd = 0;
      this.ringFill = limit;
      return;
    }
    const overflow = this.ringFill + bytes.length - limit;
    if (overflow > 0) {
      this.dropped += overflow;
      this.ringFill -= overflow;
    }
    const first = Math.min(bytes.length, limit - this.ringEnd);
    bytes.copy(this.ring, this.ringEnd, 0, first);
    bytes.copy(this.ring, 0, first);
    this.ringEnd = (this.ringEnd + bytes.length) % limit;
    this.ringFill += bytes.length;
  }

  /**
   * What follows the head once the task ended: the marker (if anything was dropped) and the
   * tail, in parts (the ring's two ends, not joined: the tail may be half the cap).
   */
  finish(): Buffer[] {
    const tail = this.takeTail();
    if (this.dropped === 0) return tail;
    const marker = Buffer.from(
      `\n[jobfleet: ${this.dropped} bytes of output dropped here; the log keeps the first ${this.headLimit} and the last ${this.tailLimit} bytes]\n`,
    );
    return [marker, ...tail];
  }

  private takeTail(): Buffer[] {
    const ring = this.ring;
    if (!ring || this.ringFill === 0) return [];
    const limit = this.tailLimit;
    const start = (this.ringEnd - this.ringFill + limit) % limit;
    const firstLen = Math.min(this.ringFill, limit - start);
    const tail = [ring.subarray(start, start + firstLen), ring.subarray(0, this.ringFill - firstLen)];
    this.ring = undefined;
    this.ringFill = 0;
    this.ringEnd = 0;
    return tail.filter((b) => b.length > 0);
  }
}
