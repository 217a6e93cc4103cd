/**
 * Filters the list APIs share: a part of a text column (ignoring case, LIKE's wildcards taken
 * literally), and who changed a row and when.
 */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';

/** The right-hand side of `lower(column) LIKE ...` matching `part` anywhere (SQLite has no default escape). */
export function containsLike(part: string): RawBuilder<string> {
  const pattern = `%${part.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return sql<string>`${pattern} escape '\\'`;
}

/** Exact users and inclusive time ranges (ms); an absent bound does not filter. */
export interface ChangeFilter {
  creator?: string | undefined;
  lastModifyUser?: string | undefined;
  createTimeStart?: number | undefined;
  createTimeEnd?: number | undefined;
  lastModifyTimeStart?: number | undefined;
  lastModifyTimeEnd?: number | undefined;
}

/** The comparisons a ChangeFilter asks for, given the names of the four columns. */
export function changeConditions(
  f: ChangeFilter,
  cols: { creator: string; createTime: string; lastModifyUser: string; lastModifyTime: string },
): [column: string, op: '=' | '>=' | '<=', value: string | number][] {
  const out: [string, '=' | '>=' | '<=', string | number][] = [];
  if (f.creator) out.push([cols.creator, '=', f.creator]);
  if (f.lastModifyUser) out.push([cols.lastModifyUser, '=', f.lastModifyUser]);
  if (f.createTimeStart !== undefined) out.push([cols.createTime, '>=', f.createTimeStart]);
  if (f.createTimeEnd !== undefined) out.push([cols.createTime, '<=', f.createTimeEnd]);
  if (f.lastModifyTimeStart !== undefined) out.push([cols.lastModifyTime, '>=', f.lastModifyTimeStart]);
  if (f.lastModifyTimeEnd !== undefined) out.push([cols.lastModifyTime, '<=', f.lastModifyTimeEnd]);
  return out;
}
