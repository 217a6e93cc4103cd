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

/**
 * Contiguous chunks joined into rows of up to MAX_JOINED_CHUNK_BYTES: an agent sends output in
 * frames of a MiB or less, and one row per frame costs a row's insert (and on SQLite its B-tree
 * entry and page chain) for every frame instead of every few MiB.
 */
export function joinChunks(chunks: readonly OutputChunk[]): OutputChunk[] {
  const out: OutputChunk[] = [];
  let run: OutputChunk[] = [];
  let runBytes = 0;
  const close = () => {
    const first = run[0];
    if (!first) return;
    out.push(
      run.length === 1
        ? first
        : {
            offset: first.offset,
            data: Buffer.concat(
              run.map((c) => c.data),
              runBytes,
            ),
          },
    );
    run = [];
    runBytes = 0;
  };
  for (const c of chunks) {
    const first = run[0];
    if (first && (first.offset + runBytes !== c.offset || runBytes + c.data.length > MAX_JOINED_CHUNK_BYTES))
      close();
    run.push(c);
    runBytes += c.data.length;
  }
  close();
  return out;
}
