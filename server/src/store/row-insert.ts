/**
 * Multi-row INSERTs of many small rows whose SQL text is compiled once per statement and row
 * count, then only bound: Kysely's builder parses and compiles every value of every row on each
 * call, which for a batch of a thousand task results cost more than running the statement.
 */
import { CompiledQuery } from 'kysely';
import type { Compilable, Transaction } from 'kysely';
import type { EngineCapabilities } from './engines.js';
import type { Database } from './schema.js';

/** SQL texts by engine, statement name and row count; every count up to the caller's chunk size, at most. */
const texts = new Map<string, string>();

/**
 * Inserts `rows` (all with the same keys in the same order) with the statement `build` makes
 * for them; `name` names that statement (its table and clauses), which must not depend on the
 * rows' values.
 */
export async function insertRows<Row extends Record<string, unknown>>(
  tx: Transaction<Database>,
  engine: EngineCapabilities['name'],
  name: string,
  rows: readonly Row[],
  build: (rows: Row[]) => Compilable,
): Promise<void> {
  const insert = compiledInsert(engine, name, rows, build);
  if (insert) await tx.executeQuery(insert);
}

/** The statement insertRows runs, not run (undefined for no rows): for a caller that runs it inside another. */
export function compiledInsert<Row extends Record<string, unknown>>(
  engine: EngineCapabilities['name'],
  name: string,
  rows: readonly Row[],
  build: (rows: Row[]) => Compilable,
): CompiledQuery | undefined {
  const first = rows[0];
  if (!first) return undefined;
  const columns = Object.keys(first);
  const key = `${engine}:${name}:${rows.length}`;
  let text = texts.get(key);
  if (text === undefined) {
    const compiled = build([...rows]).compile();
    // Every value must be a parameter: a value written into the text would be reused for other rows.
    if (compiled.parameters.length !== rows.length * columns.length)
      throw new Error(`${name}: a value was not bound as a parameter`);
    text = compiled.sql;
    texts.set(key, text);
  }
  const params: unknown[] = [];
  for (const row of rows) for (const c of columns) params.push(row[c]);
  return CompiledQuery.raw(text, params);
}
