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
