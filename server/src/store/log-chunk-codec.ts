/**
 * How log chunks are stored: as they came, or deflated.
 *
 * Most output is text that deflate shrinks 5 to 100 times (a build log about 7, a repeated line
 * over 100), and every byte not written is a byte SQLite does not write twice (WAL, then the
 * database file) nor PostgreSQL once. Chunks of a large output are deflated (fastest level) on
 * the thread pool before their commit, off the server's thread; small chunks (an `echo`, the
 * first lines of a task) are stored as they are, so short tasks wait for no compression.
 * Output that deflate does not shrink well (see `deflated`) is stored as it is too. Readers
 * inflate what is deflated, whatever the writer's settings were.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { chunkRuns, joinRun } from './output-alignment.js';
import type { ChunkRun, OutputChunk } from './output-alignment.js';

export const LogEncoding = { raw: 0, deflated: 1 } as const;
export type LogEncoding = (typeof LogEncoding)[keyof typeof LogEncoding];

/** Chunks shorter than this are stored as they are. */
export const DEFLATE_MIN_BYTES = 64 * 1024;

const inflateRaw = promisify(zlib.inflateRaw);

/** Fastest level; output chunks large enough that a MiB of input is one or two thread-pool round trips. */
const DEFLATE = { level: 1, chunkSize: 256 * 1024 };

/** A deflated row holds up to 4 MiB (MAX_JOINED_CHUNK_BYTES): a MiB at a time, not 16 KiB. */
const INFLATE = { chunkSize: 1024 * 1024 };

/**
 * A row deflated, or undefined when that does not pay. Its first DEFLATE_MIN_BYTES go first and
 * must shrink to half: text does (to a fifth or less), while base64, hex dumps and compressed
 * data do not, and deflating a MiB of those costs tens of milliseconds for little.
 *
 * The row's parts (an agent's frames, a MiB or less) go through one deflate stream as they are,
 * never joined first; one stream per row, so a row pays for one compressor's set-up.
 */
function deflated(run: ChunkRun): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const d = zlib.createDeflateRaw(DEFLATE);
    const out: Buffer[] = [];
    let bytes = 0;
    d.on('data', (b: Buffer) => {
      out.push(b);
      bytes += b.length;
    });
    d.on('error', reject);
    d.on('end', () => resolve(bytes > run.bytes * 0.9 ? undefined : Buffer.concat(out, bytes)));
    let skip = Math.min(DEFLATE_MIN_BYTES, run.bytes);
    for (const p of run.parts) {
      if (skip >= p.length) {
        d.write(p);
        skip -= p.length;
        continue;
      }
      d.write(p.subarray(0, skip));
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (bytes <= DEFLATE_MIN_BYTES / 2) return;
        d.destroy();
        resolve(undefined);
      });
      // The rest waits behind the flush in the stream's queue and is dropped with it.
      d.write(p.subarray(skip));
      skip = Infinity;
    }
    d.end();
  });
}

export interface StoredChunk {
  offset: number;
  data: Buffer;
  encoding: LogEncoding;
}

export function storedAsIs(chunks: readonly OutputChunk[]): StoredChunk[] {
  return chunks.map(raw);
}

function raw(c: OutputChunk): StoredChunk {
  return { offset: c.offset, data: c.data, encoding: LogEncoding.raw };
}

/** Each write's chunks grouped into rows (chunkRuns) and encoded for storage, by write. */
export async function encodeOutput<W extends { chunks: OutputChunk[] }>(
  writes: readonly W[],
): Promise<Map<W, StoredChunk[]>> {
  const out = new Map<W, StoredChunk[]>();
  await Promise.all(
    writes.map(async (w) => {
      if (w.chunks.length > 0) out.set(w, await encodeRuns(chunkRuns(w.chunks)));
    }),
  );
  return out;
}

/** Chunks as they are stored, each deflated when that pays (see above). */
export function encodeChunks(chunks: readonly OutputChunk[]): Promise<StoredChunk[]> {
  return encodeRuns(chunks.map((c) => ({ offset: c.offset, parts: [c.data], bytes: c.data.length })));
}

/** Rows as they are stored, each deflated when that pays (see above). */
async function encodeRuns(runs: readonly ChunkRun[]): Promise<StoredChunk[]> {
  const asIs = (r: ChunkRun) => raw({ offset: r.offset, data: joinRun(r) });
  if (runs.every((r) => r.bytes < DEFLATE_MIN_BYTES)) return runs.map(asIs);
  return Promise.all(
    runs.map(async (r) => {
      const packed = r.bytes < DEFLATE_MIN_BYTES ? undefined : await deflated(r);
      return packed ? { offset: r.offset, data: packed, encoding: LogEncoding.deflated } : asIs(r);
    }),
  );
}

/** The output bytes of stored rows, in their order. */
export async function decodeChunks(rows: readonly { data: Buffer; encoding: number }[]): Promise<Buffer[]> {
  return Promise.all(
    rows.map((r) => (r.encoding === LogEncoding.deflated ? inflateRaw(r.data, INFLATE) : r.data)),
  );
}

/** `length` bytes (at most) of the output in `pieces` from byte `start`, as views of the pieces. */
export function byteRange(pieces: readonly Buffer[], start: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = start;
  let wanted = length;
  for (const p of pieces) {
    if (wanted === 0) break;
    const piece = p.subarray(Math.min(skip, p.length), Math.min(p.length, skip + wanted));
    skip = Math.max(0, skip - p.length);
    wanted -= piece.length;
    if (piece.length > 0) out.push(piece);
  }
  return out;
}

/** A stored blob as a Buffer without copying it (both drivers return Buffers; others views). */
export function bufferOf(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
