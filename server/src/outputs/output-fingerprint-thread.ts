/**
 * Output fingerprinting on a thread of its own.
 *
 * Hashing a host's output (a SHA-256 pass over all of it, and normalising its head) costs the
 * server's thread about as much as receiving and storing it: for a host printing 100 MiB, a
 * third of that thread's time. Here the bytes are copied into a ring shared with a worker
 * thread (output-fingerprint-worker.ts), which runs the same OutputFingerprinter per task and
 * answers with the fingerprints once a task is finished; they are stored after its result,
 * as before.
 *
 * Memory stays bounded by the ring: when the worker is that far behind, the server's thread
 * waits for room (it would have spent that time hashing itself). A worker that dies, or frees no
 * room for STALL_MS, is given up: its tasks are fingerprinted from their stored logs, and a new
 * worker takes the tasks that start afterwards.
 */
import { Worker } from 'node:worker_threads';
import type { Fingerprints } from './output-fingerprint.js';
import type { HostIdentity } from './output-normalisers.js';

/**
 * The ring: a power of two, as positions in it are a byte counter modulo its size. Normalising
 * an output's 8 MiB head takes the worker a few times longer than hashing as much, so at 200+
 * MiB/s the worker falls some 15 MiB behind while it does: at 16 MiB the server waited for room
 * 6-38 ms per 100 MiB output, at 32 MiB not at all.
 */
export const RING_BYTES = 32 * 1024 * 1024;
/** How long the server's thread waits for ring room before it gives up on the worker. */
const STALL_MS = 5_000;

export interface RingShare {
  ring: SharedArrayBuffer;
  /** One int32: bytes the worker has taken from the ring so far (modulo 2^32). */
  released: SharedArrayBuffer;
}

export type FingerprintOp =
  | { kind: 'start'; key: string; host: HostIdentity }
  /** `length` bytes at `at`; `span` also counts the bytes skipped before them (see `update`). */
  | { kind: 'bytes'; key: string; at: number; length: number; span: number }
  | { kind: 'finish' | 'drop'; key: string };

export interface FingerprintBatch {
  ops: FingerprintOp[];
  /** Set when the batch finishes tasks: the worker answers with their fingerprints. */
  reply?: number;
}

export interface FingerprintReply {
  reply: number;
  done: [string, Fingerprints][];
}

/** One worker and its ring; replaced by a fresh one when lost. */
interface Link {
  worker: Worker;
  ring: Uint8Array;
  released: Int32Array;
  /** Bytes written into the ring so far, modulo 2^32. */
  written: number;
  /** Ops not posted yet: sent as one message per batch of task writes. */
  ops: FingerprintOp[];
  /** Tasks started on this worker (a task started on a lost one is not continued here). */
  keys: Set<string>;
  replies: Map<number, (done: Map<string, Fingerprints>) => void>;
  lost: boolean;
}

export class FingerprintThread {
  private link: Link | undefined;
  private nextReply = 0;

  /**
   * The worker starts at once, not on first use: started by the first large output, it booted
   * (100+ ms on a busy machine) while that output filled the ring, and the server's thread
   * waited for it.
   */
  constructor(private readonly onLost: (err: Error) => void) {
    this.up();
  }

  private up(): Link {
    if (this.link && !this.link.lost) return this.link;
    const share: RingShare = { ring: new SharedArrayBuffer(RING_BYTES), released: new SharedArrayBuffer(4) };
    const worker = new Worker(new URL('./output-fingerprint-worker.js', import.meta.url), {
      workerData: share,
    });
    // Idle, it must not keep the process alive (the server closes it on the way out); awaited
    // fingerprints keep it referenced until they come.
    worker.unref();
    const link: Link = {
      worker,
      ring: new Uint8Array(share.ring),
      released: new Int32Array(share.released),
      written: 0,
      ops: [],
      keys: new Set(),
      replies: new Map(),
      lost: false,
    };
    worker.on('message', (msg: FingerprintReply) => {
      const resolve = link.replies.get(msg.reply);
      link.replies.delete(msg.reply);
      if (link.replies.size === 0) worker.unref();
      resolve?.(new Map(msg.done));
    });
    worker.on('error', (err) => this.lose(link, err));
    worker.on('exit', (code) => this.lose(link, new Error(`fingerprint worker exited (${code})`)));
    this.link = link;
    return link;
  }

  private lose(link: Link, err: Error): void {
    if (link.lost) return;
    void this.retire(link);
    this.onLost(err);
  }

  /**
   * Ends a worker: nothing more comes from it, so the tasks waiting for fingerprints get them
   * from their logs.
   */
  private retire(link: Link): Promise<number> {
    link.lost = true;
    link.keys.clear();
    link.ops = [];
    for (const resolve of link.replies.values()) resolve(new Map());
    link.replies.clear();
    return link.worker.terminate();
  }

  /** A task whose output starts streaming (at byte 0). */
  start(key: string, host: HostIdentity): void {
    const link = this.up();
    link.keys.add(key);
    link.ops.push({ kind: 'start', key, host });
  }

  /** The task's next bytes, in order; copied, so the caller's buffer is free at once. */
  update(key: string, data: Buffer): void {
    const link = this.link;
    if (!link || link.lost || !link.keys.has(key)) return;
    let from = 0;
    while (from < data.length) {
      const pos = link.written % RING_BYTES;
      // Placed at the source's alignment (mod 8): a copy into shared memory goes a word at a
      // time only then, and byte by byte (several times slower) otherwise.
      const at = (pos + ((data.byteOffset + from - pos) & 7)) % RING_BYTES;
      const skip = (at - pos + RING_BYTES) % RING_BYTES;
      const free = RING_BYTES - ((link.written - Atomics.load(link.released, 0)) >>> 0) - skip;
      if (free <= 0) {
        if (this.waitForRoom(link, skip + 1)) continue;
        this.lose(link, new Error(`fingerprint worker took no output for ${STALL_MS} ms`));
        return;
      }
      const length = Math.min(data.length - from, free, RING_BYTES - at);
      link.ring.set(data.subarray(from, from + length), at);
      link.ops.push({ kind: 'bytes', key, at, length, span: skip + length });
      link.written = (link.written + skip + length) >>> 0;
      from += length;
    }
  }

  /** The ring is full: what is in it goes to the worker, and this thread waits for `bytes` of room. */
  private waitForRoom(link: Link, bytes: number): boolean {
    this.post(link);
    const deadline = Date.now() + STALL_MS;
    for (;;) {
      const taken = Atomics.load(link.released, 0);
      if ((link.written - taken) >>> 0 <= RING_BYTES - bytes) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(link.released, 0, taken, left);
    }
  }

  /** A task whose fingerprints are not wanted any more (its output did not arrive in order). */
  drop(key: string): void {
    const link = this.link;
    if (!link || link.lost || !link.keys.delete(key)) return;
    link.ops.push({ kind: 'drop', key });
  }

  /** Sends what the calls so far left pending. */
  flush(): void {
    if (this.link && !this.link.lost) this.post(this.link);
  }

  private post(link: Link, reply?: number): void {
    if (link.ops.length === 0 && reply === undefined) return;
    const batch: FingerprintBatch = reply === undefined ? { ops: link.ops } : { ops: link.ops, reply };
    link.ops = [];
    link.worker.postMessage(batch);
  }

  /**
   * Fingerprints of tasks whose output is complete (what is pending is sent first). A task
   * missing from the answer was lost with a worker: its fingerprints must come from its log.
   */
  finish(keys: readonly string[]): Promise<Map<string, Fingerprints>> {
    const link = this.link;
    const mine = link && !link.lost ? keys.filter((k) => link.keys.delete(k)) : [];
    if (!link || mine.length === 0) {
      this.flush();
      return Promise.resolve(new Map());
    }
    for (const key of mine) link.ops.push({ kind: 'finish', key });
    const reply = this.nextReply++;
    const done = new Promise<Map<string, Fingerprints>>((resolve) => link.replies.set(reply, resolve));
    if (link.replies.size === 1) link.worker.ref();
    this.post(link, reply);
    return done;
  }

  /** Stops the worker; tasks still streaming are fingerprinted from their logs when they finish. */
  async close(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (!link || link.lost) return;
    await this.retire(link);
  }
}
