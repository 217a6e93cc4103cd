/**
 * Which hosts of a step attempt wrote a keyword in their output, for get_step_instance_status's
 * `keyword` filter. The logs are read many hosts a statement in bounded pages (log-pages.ts); a
 * host is decided by its first match, and the rest of its log is not read.
 */
import type { Kysely } from 'kysely';
import { forEachLogChunk } from './log-pages.js';
import type { Database } from './schema.js';

/**
 * A keyword looked for in one log given chunk by chunk: a match that spans two chunks is found
 * by keeping the last bytes of what came before (one fewer than the keyword's).
 */
class LogScan {
  private hostId: number | undefined;
  private tail = Buffer.alloc(0);

  constructor(private readonly needle: Buffer) {}

  /** Whether the keyword is in the log of `hostId` so far, `bytes` being the next of it. */
  next(hostId: number, bytes: Buffer): boolean {
    if (hostId !== this.hostId) {
      this.hostId = hostId;
      this.tail = Buffer.alloc(0);
    }
    const keep = this.needle.length - 1;
    if (bytes.includes(this.needle)) return true;
    if (this.tail.length > 0 && Buffer.concat([this.tail, bytes.subarray(0, keep)]).includes(this.needle))
      return true;
    // Copied: a view would hold the whole chunk for the sake of its last bytes.
    const last =
      bytes.length >= keep ? bytes.subarray(bytes.length - keep) : Buffer.concat([this.tail, bytes]);
    this.tail = Buffer.from(last.subarray(Math.max(0, last.length - keep)));
    return false;
  }
}

/**
 * The hosts among `hostIds` whose stored output of attempt `executeCount` contains `keyword`
 * (as UTF-8 bytes, as Buffer#includes matches a string). An empty keyword is in every log,
 * an empty one included.
 */
export async function hostsWithLogContaining(
  db: Kysely<Database>,
  stepInstanceId: number,
  executeCount: number,
  hostIds: readonly number[],
  keyword: string,
): Promise<Set<number>> {
  const needle = Buffer.from(keyword, 'utf8');
  if (needle.length === 0) return new Set(hostIds);
  const found = new Set<number>();
  const scan = new LogScan(needle);
  await forEachLogChunk(db, stepInstanceId, executeCount, hostIds, (hostId, bytes) => {
    if (!scan.next(hostId, bytes)) return false;
    found.add(hostId);
    return true;
  });
  return found;
}
