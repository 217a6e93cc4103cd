/**
 * A VALUES list of integer rows (a column may be text) for `update … from (values …) as v`
 * (columns v.column1, …, on both engines).
 */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';

/**
 * `values (…), (…)` of the rows. PostgreSQL cannot infer a parameter's type inside VALUES but
 * takes a column's type from a typed first row, so the first row alone is cast to bigint:
 * SQLite runs the statement many times slower when every value is cast (its rows are then no
 * longer plain values).
 */
export function integerValues(
  rows: readonly (readonly unknown[])[],
  /** Columns of another type than bigint, by index (a text column: 'text'). */
  types: Readonly<Record<number, 'text'>> = {},
): RawBuilder<unknown> {
  const cast = (v: unknown, i: number) =>
    types[i] === 'text' ? sql`cast(${v} as text)` : sql`cast(${v} as bigint)`;
  return sql`values ${sql.join(rows.map((values, n) => sql`(${sql.join(n === 0 ? values.map(cast) : values)})`))}`;
}
