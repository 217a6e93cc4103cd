/**
 * Normalisers for grouping hosts by output: what varies from host to host without meaning
 * anything (the host's own address and name, timestamps, numbers such as PIDs and durations)
 * is replaced by a placeholder, so that "the same output" means the same thing to a person.
 *
 * Every subset of normalisers gets its own fingerprint while the output streams in, so a
 * request may pick any subset without a log being read again. The order they apply in is
 * fixed: host (an IP is made of numbers), then timestamps (made of numbers), then numbers.
 */
export const NORMALISERS = ['host', 'timestamps', 'numbers'] as const;
export type Normaliser = (typeof NORMALISERS)[number];

export interface HostIdentity {
  ip: string;
  hostname: string;
}

const TIMESTAMP =
  /\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}\b/g;
const NUMBER = /\d+/g;

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The key naming a set of normalisers: sorted names joined by commas ("" for none). */
export function normaliserKey(set: Iterable<Normaliser>): string {
  return [...new Set(set)].sort().join(',');
}

/** Every subset of the normalisers, each as its ordered list. */
export const NORMALISER_SETS: readonly Normaliser[][] = Array.from(
  { length: 1 << NORMALISERS.length },
  (_, mask) => NORMALISERS.filter((_n, i) => mask & (1 << i)),
);

/** A line transformer for one host and one set of normalisers. */
export function lineNormaliser(set: readonly Normaliser[], host: HostIdentity): (line: string) => string {
  const steps: ((s: string) => string)[] = [];
  if (set.includes('host')) {
    const names = [host.ip, host.hostname].filter((n) => n.length > 0).sort((a, b) => b.length - a.length);
    if (names.length > 0) {
      const re = new RegExp(names.map(escape).join('|'), 'g');
      steps.push((s) => s.replace(re, '<host>'));
    }
  }
  if (set.includes('timestamps')) steps.push((s) => s.replace(TIMESTAMP, '<time>'));
  if (set.includes('numbers')) steps.push((s) => s.replace(NUMBER, '<n>'));
  return (line) => steps.reduce((s, f) => f(s), line);
}

/** A whole output, normalised. */
export function normaliseText(text: string, set: readonly Normaliser[], host: HostIdentity): string {
  if (set.length === 0) return text;
  const f = lineNormaliser(set, host);
  return text
    .split('\n')
    .map((l) => f(l))
    .join('\n');
}
