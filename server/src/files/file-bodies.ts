/**
 * The bytes of the files the server holds (local uploads, push_config_file contents), written
 * and read as streams: no file is ever held whole in memory.
 *
 * One server (SQLite): under <dataDir>/files, as they always were.
 *
 * Servers sharing PostgreSQL: in the database, as numbered 1 MiB chunks (`stored_file_chunk`),
 * so the server that received an upload and the one a target downloads from need not be the
 * same. The alternative, keeping the bytes on the receiving server and streaming them from it
 * to whichever server is asked, was not chosen: it needs servers to address and authenticate
 * each other, and a file would be lost with (or unavailable while) the server that received it
 * is dead or paused, which is the very case a cluster exists for. The database is already what
 * every server shares, is backed up, and outlives any server. Bytes are written chunk by chunk
 * outside any transaction (a 5 GiB upload must not hold one open); the file becomes visible only
 * when its row records its size and sha256 afterwards, so a partial upload is never served.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileChunkStore } from '../store/file-chunk-store.js';
import type { Store } from '../store/store.js';
import { storedFilePath } from './stored-files.js';

export class FileTooLarge extends Error {}

export interface FileBodies {
  /**
   * Streams `source` into the file at `storedPath`, replacing what an earlier, failed try left;
   * throws FileTooLarge past `limit` bytes (leaving nothing behind).
   */
  write(
    storedPath: string,
    source: AsyncIterable<Buffer> | Iterable<Buffer>,
    limit?: number,
  ): Promise<{ size: number; sha256: string }>;
  /** The bytes of a complete file of `size` bytes, from `start`. */
  read(storedPath: string, start: number, size: number): Readable;
  /** Removes the files' bytes; nothing to remove is no error. */
  remove(storedPaths: readonly string[]): Promise<void>;
}

/** Counts, hashes and limits the bytes passing through. */
function metered(limit: number) {
  const hash = crypto.createHash('sha256');
  let size = 0;
  return {
    async *pass(source: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        size += chunk.length;
        if (size > limit) throw new FileTooLarge();
        hash.update(chunk);
        yield chunk;
      }
    },
    result: () => ({ size, sha256: hash.digest('hex') }),
  };
}

class DirectoryBodies implements FileBodies {
  constructor(private readonly dataDir: string) {}

  async write(
    storedPath: string,
    source: AsyncIterable<Buffer> | Iterable<Buffer>,
    limit = Infinity,
  ): Promise<{ size: number; sha256: string }> {
    const full = storedFilePath(this.dataDir, storedPath);
    const tmp = `${full}.${crypto.randomBytes(4).toString('hex')}.part`;
    const meter = metered(limit);
    try {
      await fs.promises.mkdir(path.dirname(full), { recursive: true });
      await pipeline(Readable.from(meter.pass(source)), fs.createWriteStream(tmp, { mode: 0o600 }));
      const fh = await fs.promises.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await fs.promises.rename(tmp, full);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    return meter.result();
  }

  read(storedPath: string, start: number): Readable {
    return fs.createReadStream(storedFilePath(this.dataDir, storedPath), { start });
  }

  async remove(storedPaths: readonly string[]): Promise<void> {
    // A few at a time: each is three file system calls, waited for on the thread pool.
    for (let i = 0; i < storedPaths.length; i += 16)
      await Promise.all(storedPaths.slice(i, i + 16).map((p) => this.removeOne(p)));
  }

  private async removeOne(storedPath: string): Promise<void> {
    const full = storedFilePath(this.dataDir, storedPath);
    await fs.promises.rm(full, { force: true });
    // The directories below the scope's were made for it (a path's second part is a fresh uuid):
    // each goes once empty. The scope's own stays, as a new upload may be creating its path in it.
    const root = path.resolve(this.dataDir, 'files');
    for (
      let dir = path.dirname(full);
      path.dirname(dir).startsWith(root + path.sep);
      dir = path.dirname(dir)
    ) {
      try {
        await fs.promises.rmdir(dir);
      } catch {
        return;
      }
    }
  }
}

export const CHUNK_BYTES = 1024 * 1024;

class DatabaseBodies implements FileBodies {
  constructor(
    private readonly chunks: FileChunkStore,
    /** Files stored before their bytes moved into the database are still read from there. */
    private readonly before: DirectoryBodies,
  ) {}

  async write(
    storedPath: string,
    source: AsyncIterable<Buffer> | Iterable<Buffer>,
    limit = Infinity,
  ): Promise<{ size: number; sha256: string }> {
    const meter = metered(limit);
    await this.chunks.deleteAll(storedPath);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let seq = 0;
    const flush = async (upTo: number) => {
      const all = Buffer.concat(pending, pendingBytes);
      await this.chunks.put(storedPath, seq++, all.subarray(0, upTo));
      const rest = all.subarray(upTo);
      pending = rest.length > 0 ? [Buffer.from(rest)] : [];
      pendingBytes = rest.length;
    };
    try {
      for await (const piece of meter.pass(source)) {
        pending.push(piece);
        pendingBytes += piece.length;
        while (pendingBytes >= CHUNK_BYTES) await flush(CHUNK_BYTES);
      }
      if (pendingBytes > 0 || seq === 0) await flush(pendingBytes);
    } catch (err) {
      await this.chunks.deleteAll(storedPath).catch(() => undefined);
      throw err;
    }
    return meter.result();
  }

  read(storedPath: string, start: number, size: number): Readable {
    const { chunks, before } = this;
    async function* bytes(): AsyncGenerator<Buffer> {
      if (!(await chunks.has(storedPath))) {
        yield* before.read(storedPath, start) as AsyncIterable<Buffer>;
        return;
      }
      let seq = Math.floor(start / CHUNK_BYTES);
      let skip = start - seq * CHUNK_BYTES;
      let left = size - start;
      while (left > 0) {
        const chunk = await chunks.get(storedPath, seq++);
        if (!chunk) throw new Error(`stored file ${storedPath} is missing chunk ${seq - 1}`);
        const part = chunk.subarray(skip, skip + left);
        skip = 0;
        left -= part.length;
        yield part;
      }
    }
    // One chunk in flight at a time: the client's pace sets how fast chunks are read.
    return Readable.from(bytes(), { highWaterMark: 1 });
  }

  async remove(storedPaths: readonly string[]): Promise<void> {
    await this.chunks.deleteAllOf(storedPaths);
    await this.before.remove(storedPaths);
  }
}

export function fileBodiesFor(store: Store, dataDir: string): FileBodies {
  const directory = new DirectoryBodies(dataDir);
  return store.caps.sharedByServers ? new DatabaseBodies(store.fileChunks, directory) : directory;
}
