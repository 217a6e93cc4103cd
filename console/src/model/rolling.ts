/**
 * Rolling batch sizes, computed as the server does (server/src/engine/rolling-plan.ts), so the
 * run pages can preview the batches before launch. Parts: N, N%, +N, *N; the last repeats.
 */
export const MAX_BATCHES = 500;

type Part = { kind: 'count' | 'percent' | 'plus' | 'times'; n: number };

function parsePart(text: string): Part | undefined {
  const m = /^([+*]?)(\d+)(%?)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n) || n < 1 || (m[1] && m[3])) return undefined;
  if (m[1] === '+') return { kind: 'plus', n };
  if (m[1] === '*') return n >= 2 ? { kind: 'times', n } : undefined;
  if (m[3]) return n <= 100 ? { kind: 'percent', n } : undefined;
  return { kind: 'count', n };
}

/** The batch sizes, or a reason the expression is refused. */
export function batchSizes(expression: string, total: number): number[] | string {
  const parts = expression.trim().split(/\s+/).filter(Boolean).map(parsePart);
  if (parts.length === 0 || parts.some((p) => p === undefined)) return 'not a rolling expression';
  const plan = parts as Part[];
  const sizes: number[] = [];
  let assigned = 0;
  let previous = 0;
  for (let i = 0; assigned < total; i++) {
    const p = plan[Math.min(i, plan.length - 1)] as Part;
    if ((p.kind === 'plus' || p.kind === 'times') && previous === 0)
      return '+N and *N need a batch before them';
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
    if (sizes.length > MAX_BATCHES) return `more than ${MAX_BATCHES} batches`;
    assigned += size;
    previous = size;
  }
  return sizes;
}
