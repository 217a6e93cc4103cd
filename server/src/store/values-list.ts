/**
 * A VALUES list of integer rows for `update … from (values …) as v` (columns v.column1, …,
 * on both engines).
 */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';

/**
 * `values (…), (…)` of the rows. PostgreSQL cannot infer a parameter's type inside VALUES but
 * takes a column's type from a typed first row, so the first row alone is cast to bigint:
 * SQLite runs the statement many times slower when every value is cast (its rows are then no
 * longer plain values).
 */
export function integerValues(rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  return sql`values ${sql.join(
    rows.map(
      (values, n) => sql`(${sql.join(n === 0 ? values.map((v) => sql`cast(${v} as bigint)`) : values)})`,
    ),
  )}`;
}
