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

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

/** Fastest level; output chunks large enough that a MiB of input is one or two thread-pool round trips. */
const DEFLATE = { level: 1, chunkSize: 256 * 1024 };

/** A deflated row holds up to 4 MiB (MAX_JOINED_CHUNK_BYTES): a MiB at a time, not 16 KiB. */
const INFLATE = { chunkSize: 1024 * 1024 };

/** A row's parts are deflated separately, in pieces of about this size or more. */
const DEFLATE_PIECE_BYTES = 1024 * 1024;

/** The first `n` bytes of a run's parts. */
function headOf(parts: readonly Buffer[], n: number): Buffer {
  const first = parts[0];
  if (first && first.length >= n) return first.subarray(0, n);
  const out: Buffer[] = [];
  let got = 0;
  for (const p of parts) {
    if (got >= n) break;
    out.push(p.subarray(0, n - got));
    got += Math.min(p.length, n - got);
  }
  return Buffer.concat(out, got);
}

/** Consecutive parts grouped into pieces of DEFLATE_PIECE_BYTES or more (small parts joined). */
function piecesOf(parts: readonly Buffer[]): Buffer[] {
  const pieces: Buffer[] = [];
  let group: Buffer[] = [];
  let bytes = 0;
  for (const p of parts) {
    group.push(p);
    bytes += p.length;
    if (bytes < DEFLATE_PIECE_BYTES) continue;
    pieces.push(joinRun({ offset: 0, parts: group, bytes }));
    group = [];
    bytes = 0;
  }
  if (group.length > 0) pieces.push(joinRun({ offset: 0, parts: group, bytes }));
  return pieces;
}

/**
 * A row deflated, or undefined when that does not pay. Its first DEFLATE_MIN_BYTES are tried
 * first and must shrink to half: text does (to a fifth or less), while base64, hex dumps and
 * compressed data do not, and deflating a MiB of those costs tens of milliseconds for little.
 *
 * The row's parts (an agent's frames, a MiB or less) are deflated each on its own, at once on
 * the thread pool, and never joined: every piece but the last ends in a sync flush (byte
 * aligned, no final block), so the pieces laid end to end are one raw deflate stream.
 */
async function deflated(run: ChunkRun): Promise<Buffer | undefined> {
  const sample = await deflateRaw(headOf(run.parts, DEFLATE_MIN_BYTES), DEFLATE);
  if (sample.length > DEFLATE_MIN_BYTES / 2) return undefined;
  const pieces = piecesOf(run.parts);
  const packed = await Promise.all(
    pieces.map((p, i) =>
      deflateRaw(
        p,
        i === pieces.length - 1 ? DEFLATE : { ...DEFLATE, finishFlush: zlib.constants.Z_SYNC_FLUSH },
      ),
    ),
  );
  const bytes = packed.reduce((a, p) => a + p.length, 0);
  return bytes > run.bytes * 0.9 ? undefined : Buffer.concat(packed, bytes);
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
  const asIs = (r: ChunkRun): StoredChunk => ({
    offset: r.offset,
    data: joinRun(r),
    encoding: LogEncoding.raw,
  });
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
