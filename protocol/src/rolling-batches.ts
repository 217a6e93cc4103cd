/**
 * Rolling execution (behaviour notes §4.7): the target hosts run in batches whose sizes come
 * from an expression of space-separated parts, the last part repeating until every host has a
 * batch:
 *   N    N hosts          N%   N percent of all hosts (rounded up, at least 1)
 *   +N   previous + N     *N   previous times N
 * e.g. "1 10% *2" runs 1 host, then 10%, then doubling batches. As the first part, +N and *N
 * start with N hosts (as BK-JOB reads them).
 *
 * Shared by the server (which refuses a bad expression with its error codes) and the web console
 * (which previews the batches before launch), so both compute the same sizes. Browser-safe: no
 * Node.js module and no dependency.
 */
export const MAX_BATCHES = 500;

type Part = { kind: 'count' | 'percent' | 'plus' | 'times'; n: number };

/** Why an expression gives no batches: not an expression, or more than MAX_BATCHES batches. */
export type RollingRefusal = 'invalid' | 'too-many-batches';

function parsePart(text: string): Part | undefined {
  const m = /^([+*]?)(\d+)(%?)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n) || n < 1 || (m[1] && m[3])) return undefined;
  if (m[1] === '+') return { kind: 'plus', n };
  if (m[1] === '*') return { kind: 'times', n };
  if (m[3]) return n <= 100 ? { kind: 'percent', n } : undefined;
  return { kind: 'count', n };
}

/** Batch sizes for `total` hosts, or why the expression is refused. */
export function rollingBatchSizes(expression: string, total: number): number[] | RollingRefusal {
  const parts = expression.trim().split(/\s+/).filter(Boolean).map(parsePart);
  if (parts.length === 0 || parts.some((p) => p === undefined)) return 'invalid';
  const plan = parts as Part[];
  const sizes: number[] = [];
  let assigned = 0;
  let previous = 0;
  for (let i = 0; assigned < total; i++) {
    const p = plan[Math.min(i, plan.length - 1)] as Part;
    const step = p.kind === 'plus' || p.kind === 'times';
    let size =
      p.kind === 'count' || (step && previous === 0)
        ? p.n
        : p.kind === 'percent'
          ? Math.max(1, Math.ceil((total * p.n) / 100))
          : p.kind === 'plus'
            ? previous + p.n
            : previous * p.n;
    size = Math.min(size, total - assigned);
    sizes.push(size);
    if (sizes.length > MAX_BATCHES) return 'too-many-batches';
    assigned += size;
    previous = size;
  }
  return sizes;
}
