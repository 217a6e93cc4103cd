/** SQLite binds at most 32,766 values a statement and PostgreSQL 65,535: long `in` lists go in parts. */
const IN_LIST_MAX = 5000;

export function* idChunks<T>(list: readonly T[], size = IN_LIST_MAX): Generator<readonly T[]> {
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
}
