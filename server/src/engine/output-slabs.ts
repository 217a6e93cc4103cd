/**
 * Memory for the output the server holds until its commit.
 *
 * A host printing fast sends its output a MiB a frame, each frame in a buffer of its own. Held
 * until their commit (tens of milliseconds at that rate), most of those buffers outlived two
 * young-generation collections and were moved to the old generation, where every 64 MiB more
 * of buffers starts a full marking of the heap: for 100 MiB from one host, six full collections
 * a job, their marking a fifth of all the CPU the job took. Output is copied instead (about
 * 10 ms per 100 MiB) into slabs that are written again once the batches holding them are
 * committed and the store's listeners have read them: the frames die young, and the slabs are
 * never collected.
 *
 * A batch of writes holds its slabs by a lease; a slab is written again only when no lease
 * holds it. Memory nobody releases is not lost, only collected as before.
 */

export const SLAB_BYTES = 4 * 1024 * 1024;
/**
 * Free slabs kept for the next output (64 MiB): one host printing as fast as it could kept up to
 * nine slabs in flight here; beyond this many, released slabs are left to the collector.
 */
const MAX_FREE_SLABS = 16;

interface Slab {
  bytes: Buffer;
  used: number;
  /** Leases holding output in it. */
  leases: number;
}

/** A chunk of output copied into memory of its own: for output that must outlive its batch's lease. */
export const ownCopy = (c: { offset: number; data: Buffer }) => ({
  offset: c.offset,
  data: Buffer.from(c.data),
});

/** The slabs that one batch of writes holds output in. */
export type SlabLease = Set<Slab>;

export class OutputSlabs {
  private current: Slab | undefined;
  private readonly free: Slab[] = [];

  /** `data` copied into slabs held by `lease`: one piece, or more where it crosses a slab's end. */
  copy(data: Buffer, lease: SlabLease): Buffer[] {
    const pieces: Buffer[] = [];
    for (let at = 0; at < data.length;) {
      const slab = this.room();
      const n = Math.min(data.length - at, SLAB_BYTES - slab.used);
      data.copy(slab.bytes, slab.used, at, at + n);
      pieces.push(slab.bytes.subarray(slab.used, slab.used + n));
      slab.used += n;
      at += n;
      if (!lease.has(slab)) {
        lease.add(slab);
        slab.leases++;
      }
    }
    return pieces;
  }

  private room(): Slab {
    const c = this.current;
    if (c && c.used < SLAB_BYTES) return c;
    const next = this.free.pop() ?? { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), used: 0, leases: 0 };
    this.current = next;
    return next;
  }

  /** Nothing reads what the lease's slabs hold for it any more. */
  release(lease: SlabLease): void {
    for (const slab of lease) {
      if (--slab.leases > 0) continue;
      slab.used = 0;
      if (slab !== this.current && this.free.length < MAX_FREE_SLABS) this.free.push(slab);
    }
    lease.clear();
  }

  /** `from`'s slabs held by `into` instead (a batch put back in front of newer writes). */
  merge(into: SlabLease, from: SlabLease): void {
    for (const slab of from) {
      if (into.has(slab)) slab.leases--;
      else into.add(slab);
    }
    from.clear();
  }
}
