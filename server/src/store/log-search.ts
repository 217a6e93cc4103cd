/**
 * Which hosts of a step attempt wrote a keyword in their output, for get_step_instance_status's
 * `keyword` filter.
 *
 * A step may have tens of thousands of hosts, each with megabytes of output: one read per host
 * is as many round trips (seconds on PostgreSQL), and a whole log in memory is as big as the
 * output. So the hosts go a few hundred per statement, and their chunks in pages of bounded
 * size, in the order readLog joins them (by offset): a log reads here as the bytes readLog
 * gives, whichever servers wrote its chunks. A host is decided by its first match; the rest of
 * its log is not read.
 */
import type { Kysely } from 'kysely';
import { idChunks } from './id-chunks.js';
import { bufferOf, decodeChunks } from './log-chunk-codec.js';
import type { Database } from './schema.js';

/** Hosts per statement: a page's `in` list, and the chunk list read ahead of it, stay small. */
export const LOG_SEARCH_HOSTS_PER_STATEMENT = 500;

/**
 * Stored bytes of chunks a page reads at most (a page holds at least one chunk, and a chunk is
 * at most 4 MiB as it came; a deflated one is inflated one at a time, so it adds at most that).
 */
export const LOG_SEARCH_PAGE_BYTES = 8 * 1024 * 1024;

interface ChunkKey {
  host_id: number;
  offset: number;
}

const byKey = (a: ChunkKey, b: ChunkKey) => a.host_id - b.host_id || a.offset - b.offset;

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
  const ids = [...new Set(hostIds)].sort((a, b) => a - b);
  const found = new Set<number>();
  if (needle.length === 0) return new Set(ids);
  const scan = new LogScan(needle);
  const chunks = db
    .selectFrom('log_chunk')
    .where('step_instance_id', '=', stepInstanceId)
    .where('execute_count', '=', executeCount);
  for (const group of idChunks(ids, LOG_SEARCH_HOSTS_PER_STATEMENT)) {
    // Sizes first (no chunk's bytes are read for them), so that each page can be cut to size.
    // Rows are put in order here: a sort in the database would copy the pages' bytes once more.
    const sizes = (
      await chunks
        .select((eb) => ['host_id', 'offset', eb.fn<number>('length', ['data']).as('bytes')])
        .where('host_id', 'in', group)
        .execute()
    ).sort(byKey);
    let from = 0;
    while (from < sizes.length) {
      while (from < sizes.length && found.has(sizes[from]?.host_id ?? 0)) from++;
      const first = sizes[from];
      if (!first) break;
      let to = from + 1;
      let bytes = Number(first.bytes);
      for (; to < sizes.length; to++) {
        bytes += Number(sizes[to]?.bytes ?? 0);
        if (bytes > LOG_SEARCH_PAGE_BYTES) break;
      }
      const last = sizes[to - 1] ?? first;
      const pageHosts = [...new Set(sizes.slice(from, to).map((r) => r.host_id))];
      const page = (
        await chunks
          .select(['host_id', 'offset', 'data', 'encoding'])
          .where('host_id', 'in', pageHosts)
          .where((eb) =>
            eb.and([
              eb.or([eb('host_id', '<>', first.host_id), eb('offset', '>=', first.offset)]),
              eb.or([eb('host_id', '<>', last.host_id), eb('offset', '<=', last.offset)]),
            ]),
          )
          .execute()
      ).sort(byKey);
      for (const row of page) {
        if (found.has(row.host_id)) continue;
        const [output = Buffer.alloc(0)] = await decodeChunks([
          { data: bufferOf(row.data), encoding: row.encoding },
        ]);
        if (scan.next(row.host_id, output)) found.add(row.host_id);
      }
      from = to;
    }
  }
  return found;
}
