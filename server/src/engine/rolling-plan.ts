/**
 * Rolling execution (behaviour notes §4.7): the target hosts run in batches whose sizes come
 * from an expression of space-separated parts, the last part repeating until every host has a
 * batch:
 *   N    N hosts          N%   N percent of all hosts (rounded up, at least 1)
 *   +N   previous + N     *N   previous times N
 * e.g. "1 10% *2" runs 1 host, then 10%, then doubling batches.
 */
import { ApiError } from '../api/error-catalogue.js';

export const MAX_BATCHES = 500;

type Part = { kind: 'count' | 'percent' | 'plus' | 'times'; n: number };

function parsePart(text: string): Part | undefined {
  const m = /^([+*]?)(\d+)(%?)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n) || n < 1) return undefined;
  if (m[1] && m[3]) return undefined;
  if (m[1] === '+') return { kind: 'plus', n };
  if (m[1] === '*') return n >= 2 ? { kind: 'times', n } : undefined;
  if (m[3]) return n <= 100 ? { kind: 'percent', n } : undefined;
  return { kind: 'count', n };
}

/** Batch sizes for `total` hosts; throws 1244026 for a bad expression, 1244027 past 500 batches. */
export function batchSizes(expression: string, total: number): number[] {
  const parts = expression.trim().split(/\s+/).filter(Boolean).map(parsePart);
  if (parts.length === 0 || parts.some((p) => p === undefined)) {
    throw new ApiError('INVALID_ROLLING_EXPR', { expression });
  }
  const plan = parts as Part[];
  const sizes: number[] = [];
  let assigned = 0;
  let previous = 0;
  for (let i = 0; assigned < total; i++) {
    const p = plan[Math.min(i, plan.length - 1)] as Part;
    if ((p.kind === 'plus' || p.kind === 'times') && previous === 0)
      throw new ApiError('INVALID_ROLLING_EXPR', { expression });
    let size =
      p.kind === 'count'
        ? p.n
        : p.kind === 'percent'
          ? Math.max(1, Math.ceil((total * p.n) / 100))
          : p.kind === 'plus'
            ? previous + p.n
            : previous * p.n;
    size = Math.min(size, total - assigned);
    sizes.push(size);
    if (sizes.length > MAX_BATCHES) throw new ApiError('ROLLING_BATCH_LIMIT', { limit: MAX_BATCHES });
    assigned += size;
    previous = size;
  }
  return sizes;
}

/** The failure budget: a count, or a percentage of the step's hosts (rounded down). */
export function failureBudget(value: number | string | undefined, total: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  const pct = Number(value.slice(0, -1));
  return Math.floor((total * pct) / 100);
}
