/**
 * Reads the stored output of many hosts of a step attempt, for the readers that need many logs
 * at once (the `keyword` filter of get_step_instance_status, batch_get_job_instance_ip_log,
 * the console's log export).
 *
 * A step may have tens of thousands of hosts, each with megabytes of output: one read per host
 * is as many round trips (seconds on PostgreSQL), and a whole log in memory is as big as the
 * output. So the hosts go a few hundred per statement, and their chunks in pages of bounded
 * size, in the order readLog joins them (by offset): a log reads here as the bytes readLog
 * gives, whichever servers wrote its chunks.
 */
import type { Kysely } from 'kysely';
import { idChunks } from './id-chunks.js';
import { LogEncoding, bufferOf, decodeChunks } from './log-chunk-codec.js';
import type { Database } from './schema.js';

/** Hosts per statement: a page's `in` list, and the chunk list read ahead of it, stay small. */
export const LOG_PAGE_HOSTS_PER_STATEMENT = 500;

/**
 * Stored bytes of chunks a page reads at most (a page holds at least one chunk, and a chunk is
 * at most 4 MiB as it came; a deflated one is inflated one at a time, so it adds at most that).
 */
export const LOG_PAGE_BYTES = 8 * 1024 * 1024;

/** One chunk of a host's output, as it came. */
export interface LogChunk {
  hostId: number;
  bytes: Buffer;
}

interface ChunkKey {
  host_id: number;
  offset: number;
}

interface StoredRow extends ChunkKey {
  data: Uint8Array;
  encoding: number;
}

const byKey = (a: ChunkKey, b: ChunkKey) => a.host_id - b.host_id || a.offset - b.offset;

/**
 * The stored rows of attempt `executeCount` of `hostIds`, a page at a time, hosts in ascending id
 * order and each host's rows by offset. The hosts in `skip` when a page is cut are left out of
 * it; its rows of hosts added to `skip` after that are the caller's to pass over.
 */
async function* storedPages(
  db: Kysely<Database>,
  stepInstanceId: number,
  executeCount: number,
  hostIds: readonly number[],
  skip: ReadonlySet<number>,
): AsyncGenerator<StoredRow[], void, undefined> {
  const ids = [...new Set(hostIds)].sort((a, b) => a - b);
  const chunks = db
    .selectFrom('log_chunk')
    .where('step_instance_id', '=', stepInstanceId)
    .where('execute_count', '=', executeCount);
  for (const group of idChunks(ids, LOG_PAGE_HOSTS_PER_STATEMENT)) {
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
      while (from < sizes.length && skip.has(sizes[from]?.host_id ?? 0)) from++;
      const first = sizes[from];
      if (!first) break;
      let to = from + 1;
      let bytes = Number(first.bytes);
      for (; to < sizes.length; to++) {
        bytes += Number(sizes[to]?.bytes ?? 0);
        if (bytes > LOG_PAGE_BYTES) break;
      }
      const last = sizes[to - 1] ?? first;
      const pageHosts = [...new Set(sizes.slice(from, to).map((r) => r.host_id))];
      yield (
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
      from = to;
    }
  }
}

/**
 * A row's output. Only a deflated row waits (for the thread pool): a page of small raw chunks,
 * the usual case, is given out without a turn of the event loop per chunk.
 */
function outputOf(row: StoredRow): Buffer | Promise<Buffer> {
  const stored = { data: bufferOf(row.data), encoding: row.encoding };
  if (row.encoding !== LogEncoding.deflated) return stored.data;
  return decodeChunks([stored]).then(([output = Buffer.alloc(0)]) => output);
}

/**
 * Gives the stored output of attempt `executeCount` of each of `hostIds` to `visit`, chunk by
 * chunk, hosts in ascending id order and each host's chunks in order. `visit` answers true when
 * it needs no more of that host's log: the rest of it is not read. Hosts without output are not
 * visited.
 */
export async function forEachLogChunk(
  db: Kysely<Database>,
  stepInstanceId: number,
  executeCount: number,
  hostIds: readonly number[],
  visit: (hostId: number, bytes: Buffer) => boolean,
): Promise<void> {
  const done = new Set<number>();
  for await (const page of storedPages(db, stepInstanceId, executeCount, hostIds, done)) {
    for (const row of page) {
      if (done.has(row.host_id)) continue;
      const output = outputOf(row);
      if (visit(row.host_id, Buffer.isBuffer(output) ? output : await output)) done.add(row.host_id);
    }
  }
}

/**
 * forEachLogChunk for a reader that waits between chunks (one that writes them out, and waits
 * for its reader): the same chunks in the same order. Nothing is read ahead of the page the
 * current chunk is in, and leaving the loop early stops the reading.
 */
export async function* logChunks(
  db: Kysely<Database>,
  stepInstanceId: number,
  executeCount: number,
  hostIds: readonly number[],
): AsyncGenerator<LogChunk, void, undefined> {
  for await (const page of storedPages(db, stepInstanceId, executeCount, hostIds, new Set())) {
    for (const row of page) yield { hostId: row.host_id, bytes: await outputOf(row) };
  }
}
