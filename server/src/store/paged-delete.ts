/**
 * Retention deletes, a page of rows per statement: one statement over millions of old rows would
 * hold SQLite's only writer (and the server's thread) for all of it, or one long PostgreSQL
 * transaction. Each page is its own statement, so other writes go in between.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DeleteResult } from 'kysely';

/** Runs `deletePage` (which removes at most `page` rows) until a page comes back short; returns how many went. */
export async function deleteInPages(page: number, deletePage: () => Promise<DeleteResult>): Promise<number> {
  let removed = 0;
  for (;;) {
    const n = Number((await deletePage()).numDeletedRows);
    removed += n;
    if (n < page) return removed;
    // SQLite's statements run on this thread and resolve as microtasks: without a turn of the
    // event loop between pages, the whole delete would still hold the server.
    await nextTurn();
  }
}
