/**
 * An append-only journal in numbered segment files (`<dir>/00000001.journal`, …) with group
 * commit: records appended while a write is in flight collect in memory and go to disk
 * together, with one fdatasync for the whole batch however many tasks they belong to.
 * `afterWritten` runs a callback once everything appended before it was written to the file
 * (it survives the agent being killed), `afterDurable` once it was also fdatasync'ed (it
 * survives the machine losing power). Writes are synced a moment later unless somebody waits
 * for it, and not at all when the owner says nothing written since still matters.
 *
 * Record: u32 body length, u32 CRC-32 of the body, body. A record cut short by a crash (or
 * one that does not match its checksum) ends the reading of its segment.
 *
 * The owner starts a new segment (`rotate`) when the active one is `full`; every open starts
 * one too (a segment that ended in a torn record is never appended to). Segments are deleted
 * by the owner (`drop`), which knows which records still matter.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from './checksum.js';

const HEADER_BYTES = 8;
const SUFFIX = '.journal';

export interface JournalRecord {
  segment: number;
  /** File position of the body's first byte. */
  pos: number;
  body: Buffer;
}

interface WrittenWaiter {
  fn: () => void;
  upTo: number;
}

/**
 * A large batch (a task's kept tail, tens of MiB, comes at once) is written in pieces of about
 * this size, and what waits for a piece runs once it is written: the output it reports goes to
 * the server while the rest is still being written, not after all of it.
 */
const WRITE_PIECE_BYTES = 4 * 1024 * 1024;

interface PendingWrite {
  fd: number;
  segment: number;
  /** File position of the first buffer. */
  start: number;
  buffers: Buffer[];
}

function segmentName(id: number): string {
  return `${String(id).padStart(8, '0')}${SUFFIX}`;
}

export class SpoolJournal {
  /** Segment ids on disk, oldest first; the last is the active one. */
  private readonly ids: number[];
  private fd: number;
  private size = 0;
  private batch: PendingWrite[] = [];
  /** Bytes in `batch`. */
  private batchBytes = 0;
  /** Callbacks waiting for the batch being assembled: written (once its first `upTo` bytes are), and durable. */
  private writtenWaiters: WrittenWaiter[] = [];
  private waiters: (() => void)[] = [];
  /** The batch being written now, while callbacks of its written part run (see flush). */
  private writing: { batch: PendingWrite[]; written: WrittenWaiter[]; durable: (() => void)[] } | undefined;
  /** Descriptors written to since their last fdatasync started. */
  private readonly unsynced = new Set<number>();
  /** Callbacks waiting for the next sync, and for the one in flight. */
  private syncWaiters: (() => void)[] = [];
  private inflightSyncWaiters: (() => void)[] = [];
  private syncing = false;
  /** A segment was created since the directory was last synced. */
  private dirUnsynced = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private scheduled = false;
  /**
   * Asked when a delayed sync is due: false when nothing written since the last sync still
   * matters (the owner dropped all of it), and the sync is skipped.
   */
  needsSync: () => boolean = () => true;
  /** Told when a sync starts: everything written so far is covered by it. */
  onSync: () => void = () => undefined;
  /**
   * Descriptors of segments that were rotated out, by segment: each is closed when its segment
   * is deleted (see drop).
   */
  private readonly retired = new Map<number, number>();
  /**
   * Set after a failed write or sync (a full disk, an I/O error): appends go nowhere and
   * callbacks still run (the spool is best effort then) until the owner `reopen`s the journal.
   */
  broken = false;
  /** Told when the journal breaks, once per break. */
  onBroken: (err: Error) => void = () => undefined;

  /** With `readOnly` the journal can only be scanned (e.g. to look at a live agent's spool). */
  /**
   * Writes are synced `syncDelayMs` after the first one unless somebody waits for durability,
   * so that records dropped within that time (a task the server recorded at once) are never
   * synced at all.
   */
  constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    private readonly readOnly = false,
    private readonly syncDelayMs = 1000,
  ) {
    if (!readOnly) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const names = readOnly && !fs.existsSync(dir) ? [] : fs.readdirSync(dir);
    this.ids = names
      .filter((n) => n.endsWith(SUFFIX) && /^\d+$/.test(n.slice(0, -SUFFIX.length)))
      .map((n) => Number(n.slice(0, -SUFFIX.length)))
      .sort((a, b) => a - b);
    this.fd = readOnly ? -1 : this.openSegment((this.ids.at(-1) ?? 0) + 1);
  }

  get activeSegment(): number {
    return this.ids.at(-1) ?? 0;
  }

  /** Segment ids, oldest first (the active one last). */
  segments(): readonly number[] {
    return this.ids;
  }

  /** Every intact record of every segment, in the order they were appended. */
  *scan(): Generator<JournalRecord> {
    for (const segment of this.ids) {
      if (!this.readOnly && segment === this.activeSegment) continue; // new and empty
      let data: Buffer;
      try {
        data = fs.readFileSync(path.join(this.dir, segmentName(segment)));
      } catch {
        continue;
      }
      let at = 0;
      while (at + HEADER_BYTES <= data.length) {
        const len = data.readUInt32LE(at);
        const crc = data.readUInt32LE(at + 4);
        const start = at + HEADER_BYTES;
        if (start + len > data.length) break;
        const body = data.subarray(start, start + len);
        if (crc32(body) !== crc) break;
        yield { segment, pos: start, body };
        at = start + len;
      }
    }
  }

  /** Queues one record (its body in parts) and returns where its body will lie. */
  append(parts: Buffer[]): { segment: number; pos: number } {
    const len = parts.reduce((a, p) => a + p.length, 0);
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32LE(len, 0);
    let crc = 0;
    for (const p of parts) crc = crc32(p, crc);
    header.writeUInt32LE(crc, 4);
    const last = this.batch.at(-1);
    const group =
      last && last.fd === this.fd
        ? last
        : { fd: this.fd, segment: this.activeSegment, start: this.size, buffers: [] };
    if (group !== last) this.batch.push(group);
    group.buffers.push(header, ...parts);
    this.batchBytes += HEADER_BYTES + len;
    const pos = this.size + HEADER_BYTES;
    this.size += HEADER_BYTES + len;
    this.schedule();
    return { segment: this.activeSegment, pos };
  }

  /** True when the next append starts a new segment. */
  get full(): boolean {
    return this.size >= this.segmentBytes;
  }

  /**
   * Starts the next segment now and returns true; when it cannot be created, the active one
   * just grows.
   */
  rotate(): boolean {
    const old = this.activeSegment;
    let fd: number;
    try {
      fd = this.openSegment(old + 1);
    } catch {
      return false;
    }
    this.retired.set(old, this.fd);
    this.fd = fd;
    return true;
  }

  /**
   * Takes a broken journal back into use in a new segment (the active one may end in a torn
   * record); false while one cannot be created. What was appended while it was broken is not
   * in the files: the owner writes again what still matters.
   */
  reopen(): boolean {
    if (!this.broken) return true;
    if (!this.rotate()) return false;
    this.broken = false;
    return true;
  }

  /** Runs `fn` once every record appended so far is on disk (at once when nothing is pending). */
  afterDurable(fn: () => void): void {
    if (this.writing && this.batch.length === 0) this.writing.durable.push(fn);
    else if (this.batch.length > 0) this.waiters.push(fn);
    else if (this.unsynced.size > 0) {
      this.syncWaiters.push(fn);
      this.sync();
    } else if (this.syncing) this.inflightSyncWaiters.push(fn);
    else fn();
  }

  /** Runs `fn` once every record appended so far is in the file (at once when it is). */
  afterWritten(fn: () => void): void {
    if (this.batch.length > 0) this.writtenWaiters.push({ fn, upTo: this.batchBytes });
    else if (this.writing) this.writing.written.push({ fn, upTo: Infinity });
    else fn();
  }

  /** Resolves when every record appended so far is on disk. */
  flushed(): Promise<void> {
    return new Promise((resolve) => this.afterDurable(resolve));
  }

  /**
   * Reads `buf.length` bytes of a segment from `pos`, also what is still waiting to be written;
   * returns how many it got (fewer when the journal lost them).
   */
  read(segment: number, pos: number, buf: Buffer): number {
    let got = 0;
    try {
      const fd = fs.openSync(path.join(this.dir, segmentName(segment)), 'r');
      try {
        while (got < buf.length) {
          const n = fs.readSync(fd, buf, got, buf.length - got, pos + got);
          if (n === 0) break;
          got += n;
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      /* gone or unreadable: only memory may still have it */
    }
    for (const w of [...(this.writing?.batch ?? []), ...this.batch]) {
      if (w.segment !== segment) continue;
      let at = w.start;
      for (const b of w.buffers) {
        const lo = Math.max(pos, at);
        const hi = Math.min(pos + buf.length, at + b.length);
        if (lo < hi) {
          b.copy(buf, lo - pos, lo - at, hi - at);
          got = Math.max(got, hi - pos);
        }
        at += b.length;
      }
    }
    return got;
  }

  /**
   * Deletes a segment that is not the active one (the owner drops only what is durable).
   * Its name goes at once, while its descriptor is still open, and the descriptor is closed off
   * this thread: the last of the two frees the file's pages and blocks, tens of MiB of them
   * after a large output, which is work for the thread pool, not for the agent's one thread.
   */
  drop(segment: number): void {
    if (segment === this.activeSegment) return;
    const i = this.ids.indexOf(segment);
    if (i < 0) return;
    this.ids.splice(i, 1);
    fs.rmSync(path.join(this.dir, segmentName(segment)), { force: true });
    const fd = this.retired.get(segment);
    if (fd === undefined) return;
    this.retired.delete(segment);
    fs.close(fd, () => undefined);
  }

  async close(): Promise<void> {
    await this.flushed();
    for (const fd of [...this.retired.values(), this.fd]) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    this.retired.clear();
  }

  private break(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.onBroken(err instanceof Error ? err : new Error(String(err)));
  }

  private openSegment(id: number): number {
    const fd = fs.openSync(path.join(this.dir, segmentName(id)), 'a', 0o600);
    this.ids.push(id);
    this.size = 0;
    // The new name must survive a power loss too, not only its contents: the directory is
    // synced with the segment's first records, off this thread (a directory sync waits for
    // the filesystem's journal, tens of ms while a large output is being written back).
    this.dirUnsynced = true;
    return fd;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One turn of the event loop lets every task that has something to say join the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /**
   * Writes the batch now (into the page cache: it survives the agent being killed) and
   * queues its sync. Writes never wait for a sync; syncs run one at a time, each covering
   * every write before it, so one fdatasync serves all the batches written meanwhile.
   */
  private flush(): void {
    const batch = this.batch;
    const writing = { batch, written: this.writtenWaiters, durable: this.waiters };
    this.batch = [];
    this.batchBytes = 0;
    this.writtenWaiters = [];
    this.waiters = [];
    this.writing = writing;
    let done = 0;
    let next = 0;
    const release = () => {
      const { written } = writing;
      for (; next < written.length && (written[next] as WrittenWaiter).upTo <= done; next++)
        runAll([(written[next] as WrittenWaiter).fn]);
    };
    if (!this.broken) {
      try {
        for (const w of batch) {
          this.unsynced.add(w.fd);
          let from = 0;
          let bytes = 0;
          w.buffers.forEach((b, i) => {
            bytes += b.length;
            if (bytes < WRITE_PIECE_BYTES && i < w.buffers.length - 1) return;
            writeAllSync(w.fd, w.buffers.slice(from, i + 1));
            done += bytes;
            from = i + 1;
            bytes = 0;
            release();
          });
        }
      } catch (err) {
        this.break(err);
      }
    }
    this.writing = undefined;
    runAll(writing.written.slice(next).map((w) => w.fn));
    this.syncWaiters.push(...writing.durable);
    if (this.syncWaiters.length > 0) this.sync();
    else this.syncLater();
  }

  private syncLater(): void {
    if (this.syncTimer || this.syncing || this.unsynced.size === 0) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (this.needsSync()) this.sync();
      else this.unsynced.clear(); // all of it is obsolete already
    }, this.syncDelayMs);
    this.syncTimer.unref();
  }

  private sync(): void {
    if (this.syncing) return;
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if ((this.unsynced.size === 0 && !this.dirUnsynced) || this.broken) {
      this.unsynced.clear();
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      runAll(waiters);
      return;
    }
    const syncs = [...this.unsynced].map(fdatasync);
    if (this.dirUnsynced) syncs.push(fsyncDir(this.dir));
    this.unsynced.clear();
    this.dirUnsynced = false;
    this.onSync();
    this.inflightSyncWaiters = this.syncWaiters;
    this.syncWaiters = [];
    this.syncing = true;
    void Promise.all(syncs)
      .catch((err: unknown) => this.break(err))
      .then(() => {
        this.syncing = false;
        const waiters = this.inflightSyncWaiters;
        this.inflightSyncWaiters = [];
        runAll(waiters);
        if (this.syncWaiters.length > 0) this.sync();
        else this.syncLater();
      });
  }
}

/** Runs callbacks in order; one that throws does not keep the others from running. */
function runAll(fns: (() => void)[]): void {
  for (const fn of fns) {
    try {
      fn();
    } catch {
      /* the caller's own failure; the journal goes on */
    }
  }
}

/** Writes every buffer, in pieces of at most 512 (below IOV_MAX); a write that stops short is a failure (full disk). */
function writeAllSync(fd: number, buffers: Buffer[]): void {
  for (let i = 0; i < buffers.length; i += 512) {
    const part = buffers.slice(i, i + 512);
    const total = part.reduce((a, b) => a + b.length, 0);
    const written = fs.writevSync(fd, part);
    if (written !== total) throw new Error(`short write (${written} of ${total} bytes)`);
  }
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Not every filesystem syncs directories: a failure to is no failure of the journal. */
async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(dir, 'r');
    await handle.sync();
  } catch {
    /* see above */
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
