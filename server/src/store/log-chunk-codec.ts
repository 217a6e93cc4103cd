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
import { joinChunks } from './output-alignment.js';
import type { OutputChunk } from './output-alignment.js';

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

/**
 * A chunk deflated, or undefined when that does not pay. Its first DEFLATE_MIN_BYTES are tried
 * first and must shrink to half: text does (to a fifth or less), while base64, hex dumps and
 * compressed data do not, and deflating a MiB of those costs tens of milliseconds for little.
 */
async function deflated(data: Buffer): Promise<Buffer | undefined> {
  const sample = await deflateRaw(data.subarray(0, DEFLATE_MIN_BYTES), DEFLATE);
  if (sample.length > DEFLATE_MIN_BYTES / 2) return undefined;
  const packed = await deflateRaw(data, DEFLATE);
  return packed.length > data.length * 0.9 ? undefined : packed;
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

/** Each write's chunks joined (joinChunks) and encoded for storage, by write. */
export async function encodeOutput<W extends { chunks: OutputChunk[] }>(
  writes: readonly W[],
): Promise<Map<W, StoredChunk[]>> {
  const out = new Map<W, StoredChunk[]>();
  await Promise.all(
    writes.map(async (w) => {
      if (w.chunks.length > 0) out.set(w, await encodeChunks(joinChunks(w.chunks)));
    }),
  );
  return out;
}

/** Chunks as they are stored, each deflated when that pays (see above). */
export async function encodeChunks(chunks: readonly OutputChunk[]): Promise<StoredChunk[]> {
  if (chunks.every((c) => c.data.length < DEFLATE_MIN_BYTES)) return chunks.map(raw);
  return Promise.all(
    chunks.map(async (c) => {
      const packed = c.data.length < DEFLATE_MIN_BYTES ? undefined : await deflated(c.data);
      return packed ? { offset: c.offset, data: packed, encoding: LogEncoding.deflated } : raw(c);
    }),
  );
}

/** The output bytes of stored rows, in their order. */
export async function decodeChunks(rows: readonly { data: Buffer; encoding: number }[]): Promise<Buffer[]> {
  return Promise.all(
    rows.map((r) => (r.encoding === LogEncoding.deflated ? inflateRaw(r.data, INFLATE) : r.data)),
  );
}
