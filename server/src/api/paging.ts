/**
 * start/length of BK-JOB's list APIs (`adjustPageParam`): start defaults to 0, length to 20,
 * and a length above 1000 is silently cut to 1000.
 */
import { zInt } from './input-types.js';

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

export function pageParams(input: { start?: number | undefined; length?: number | undefined }): PageParams {
  const start = input.start !== undefined && input.start > 0 ? input.start : 0;
  const asked = input.length !== undefined && input.length > 0 ? input.length : DEFAULT_PAGE_LENGTH;
  return { start, length: Math.min(asked, MAX_PAGE_LENGTH) };
}

/** BK-JOB's page envelope: `{data, start, length, total}`. */
export function pageReply<T>(page: PageParams, total: number, data: T[]) {
  return { data, start: page.start, length: page.length, total };
}
