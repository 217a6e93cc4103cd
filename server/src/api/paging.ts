/**
 * start/length of BK-JOB's list APIs (`adjustPageParam`): start defaults to 0, length to 20,
 * and a length above 1000 is silently cut to 1000 (the plan, template and cron lists pass no
 * cap). Also the filters by who changed an item and when, which the script and account lists
 * take as BK-JOB's plan and cron lists do (here in ms, the unit of those lists' times).
 */
import { z } from 'zod';
import type { ChangeFilter } from '../store/list-filters.js';
import { zInt, zLong } from './input-types.js';

export const DEFAULT_PAGE_LENGTH = 20;
export const MAX_PAGE_LENGTH = 1000;

export const PageFields = {
  start: zInt.optional(),
  length: zInt.optional(),
};

export interface PageParams {
  start: number;
  length: number;
}

export function pageParams(
  input: { start?: number | undefined; length?: number | undefined },
  maxLength = MAX_PAGE_LENGTH,
): PageParams {
  const start = input.start !== undefined && input.start > 0 ? input.start : 0;
  const asked = input.length !== undefined && input.length > 0 ? input.length : DEFAULT_PAGE_LENGTH;
  return { start, length: Math.min(asked, maxLength) };
}

/** BK-JOB's page envelope: `{data, start, length, total}`. */
export function pageReply<T>(page: PageParams, total: number, data: T[]) {
  return { data, start: page.start, length: page.length, total };
}

/** creator, last_modify_user (exact) and create_time_* / last_modify_time_* bounds in ms (inclusive). */
export const ChangeFilterFields = {
  creator: z.string().nullish(),
  last_modify_user: z.string().nullish(),
  create_time_start: zLong.nullish(),
  create_time_end: zLong.nullish(),
  last_modify_time_start: zLong.nullish(),
  last_modify_time_end: zLong.nullish(),
};

export function changeFilterOf(input: {
  creator?: string | null | undefined;
  last_modify_user?: string | null | undefined;
  create_time_start?: number | null | undefined;
  create_time_end?: number | null | undefined;
  last_modify_time_start?: number | null | undefined;
  last_modify_time_end?: number | null | undefined;
}): ChangeFilter {
  return {
    creator: input.creator ?? undefined,
    lastModifyUser: input.last_modify_user ?? undefined,
    createTimeStart: input.create_time_start ?? undefined,
    createTimeEnd: input.create_time_end ?? undefined,
    lastModifyTimeStart: input.last_modify_time_start ?? undefined,
    lastModifyTimeEnd: input.last_modify_time_end ?? undefined,
  };
}
