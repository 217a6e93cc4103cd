/**
 * The deflated log rows inflated last, kept for the next read of the same row. A log read in
 * windows (the console's pages of 512 KiB, a follower catching up) reads each stored row of up
 * to 4 MiB once a window: eight times over for windows of 512 KiB, each time in fresh memory
 * that the server then had to collect. A kept row is used only while its stored bytes are the
 * bytes it was inflated from, so a row written again is inflated again.
 */
import { LogEncoding, decodeChunks } from './log-chunk-codec.js';

/** Rows of up to 4 MiB each: a few readers paging at once. */
const KEPT_ROWS = 4;

export interface StoredRow {
  /** Names the row among all logs (its step, attempt, host and offset). */
  key: string;
  data: Buffer;
  encoding: number;
}

export class InflatedRows {
  /** Least recently used first. */
  private readonly kept = new Map<string, { packed: Buffer; plain: Buffer }>();

  /** The output bytes of `rows`, in their order, as decodeChunks gives them. */
  async decode(rows: readonly StoredRow[]): Promise<Buffer[]> {
    const found = rows.map((r) => {
      if (r.encoding !== LogEncoding.deflated) return r.data;
      const k = this.kept.get(r.key);
      if (!k?.packed.equals(r.data)) return undefined;
      // Newest again: a reader paging through a row keeps it while others come and go.
      this.kept.delete(r.key);
      this.kept.set(r.key, k);
      return k.plain;
    });
    const missing = rows.filter((_, i) => found[i] === undefined);
    const inflated = await decodeChunks(missing);
    missing.forEach((r, i) => this.keep(r, inflated[i] as Buffer));
    let next = 0;
    return found.map((b) => b ?? (inflated[next++] as Buffer));
  }

  private keep(row: StoredRow, plain: Buffer): void {
    this.kept.delete(row.key);
    // A copy: a driver's buffer may be a view of a larger one that must not be held.
    this.kept.set(row.key, { packed: Buffer.from(row.data), plain });
    for (const key of this.kept.keys()) {
      if (this.kept.size <= KEPT_ROWS) break;
      this.kept.delete(key);
    }
  }
}
