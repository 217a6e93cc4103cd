/** Fuzzy text filters: a part of a column, ignoring case, with LIKE's wildcards taken literally. */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';

/** The right-hand side of `lower(column) LIKE ...` matching `part` anywhere (SQLite has no default escape). */
export function containsLike(part: string): RawBuilder<string> {
  const pattern = `%${part.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return sql<string>`${pattern} escape '\\'`;
}
