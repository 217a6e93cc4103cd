/**
 * Output chunks checked against what the store already holds of a task's log.
 *
 * In a cluster several servers may write one task's log over its life (the agent moves, a
 * write of an old session is fenced, a batch is retried after PostgreSQL came back), and each
 * server's own count of the stored bytes can be behind or ahead of the truth. The log stays
 * byte-exact only if every chunk is appended exactly at the stored length: bytes already held
 * are cut off (an agent's bytes at an offset never change, so a resend is the same data), and a
 * chunk that would leave a hole is not written at all (the agent resends from the stored length
 * once it reconnects).
 */

export interface OutputChunk {
  offset: number;
  data: Buffer;
}

export interface AlignedOutput {
  /** What to append, contiguous from the stored length. */
  chunks: OutputChunk[];
  /** Stored length after the append. */
  logBytes: number;
  /** Some bytes could not be appended: they start past the stored length. */
  gap: boolean;
}

export function alignOutput(stored: number, chunks: readonly OutputChunk[]): AlignedOutput {
  const out: OutputChunk[] = [];
  let end = stored;
  let gap = false;
  for (const c of [...chunks].sort((a, b) => a.offset - b.offset)) {
    const last = c.offset + c.data.length;
    if (last <= end) continue;
    if (c.offset > end) {
      gap = true;
      break;
    }
    out.push({ offset: end, data: c.offset === end ? c.data : c.data.subarray(end - c.offset) });
    end = last;
  }
  return { chunks: out, logBytes: end, gap };
}

/** Largest log chunk row made by joining chunks (a reader of a range reads whole rows). */
export const MAX_JOINED_CHUNK_BYTES = 4 * 1024 * 1024;

/** Contiguous chunks that make one row, not joined yet. */
export interface ChunkRun {
  offset: number;
  parts: Buffer[];
  bytes: number;
}

/**
 * Contiguous chunks grouped into rows of up to MAX_JOINED_CHUNK_BYTES: an agent sends output in
 * frames of a MiB or less, and one row per frame costs a row's insert (and on SQLite its B-tree
 * entry and page chain) for every frame instead of every few MiB.
 */
export function chunkRuns(chunks: readonly OutputChunk[]): ChunkRun[] {
  const out: ChunkRun[] = [];
  let run: ChunkRun | undefined;
  for (const c of chunks) {
    if (!run || run.offset + run.bytes !== c.offset || run.bytes + c.data.length > MAX_JOINED_CHUNK_BYTES) {
      run = { offset: c.offset, parts: [], bytes: 0 };
      out.push(run);
    }
    run.parts.push(c.data);
    run.bytes += c.data.length;
  }
  return out;
}

/** A run's bytes as one buffer. */
export function joinRun(run: ChunkRun): Buffer {
  return run.parts.length === 1 ? (run.parts[0] as Buffer) : Buffer.concat(run.parts, run.bytes);
}

/** Contiguous chunks joined into rows (see chunkRuns). */
export function joinChunks(chunks: readonly OutputChunk[]): OutputChunk[] {
  return chunkRuns(chunks).map((r) => ({ offset: r.offset, data: joinRun(r) }));
}
