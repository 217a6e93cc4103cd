/**
 * A write run on one connection between statements that set that connection up and back
 * (engines.ts: relaxedCommit, relaxedTransaction), so the setting holds for that write alone.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface StatementsAround {
  before: readonly string[];
  after: readonly string[];
}

/** Runs `before`, then `fn` on the same connection, then `after`, also when `fn` fails. */
export function onConnectionAround<T>(
  db: Kysely<Database>,
  around: StatementsAround,
  fn: (conn: Kysely<Database>) => Promise<T>,
): Promise<T> {
  return db.connection().execute(async (conn) => {
    for (const s of around.before) await sql.raw(s).execute(conn);
    try {
      return await fn(conn);
    } finally {
      for (const s of around.after) await sql.raw(s).execute(conn);
    }
  });
}
