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
/**
 * What every timestamp above holds: a '-' (dates), a ':' (times) or a month name and a space.
 * Text with none of them (much program output) skips the timestamp pattern, which tries a
 * match at every digit and costs several times these scans.
 */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].map(
  (m) => `${m} `,
);
/** String searches, not a pattern: a pattern of the twelve names costs twice as much here. */
const mayHoldTimestamp = (s: string) =>
  s.includes(':') || s.includes('-') || MONTHS.some((m) => s.includes(m));

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

/** Each normaliser as a text transformer for one host (`host` leaves text as it is when the host has no name). */
function normaliserSteps(host: HostIdentity): Record<Normaliser, (s: string) => string> {
  const names = [host.ip, host.hostname].filter((n) => n.length > 0).sort((a, b) => b.length - a.length);
  const re = names.length > 0 ? new RegExp(names.map(escape).join('|'), 'g') : undefined;
  return {
    host: (s) => (re ? s.replace(re, '<host>') : s),
    timestamps: (s) => (mayHoldTimestamp(s) ? s.replace(TIMESTAMP, '<time>') : s),
    numbers: (s) => s.replace(NUMBER, '<n>'),
  };
}

/** A line transformer for one host and one set of normalisers. */
export function lineNormaliser(set: readonly Normaliser[], host: HostIdentity): (line: string) => string {
  const steps = normaliserSteps(host);
  return (line) => set.reduce((s, n) => steps[n](s), line);
}

/**
 * One text under many sets of normalisers at once. Sets share their steps: each normaliser
 * runs once per distinct text it is given (`numbers` of the host-normalised text is that of
 * the text itself when the host does not occur in it), not once per set.
 */
export class SetsNormaliser {
  private readonly steps: Record<Normaliser, (s: string) => string>;

  constructor(
    private readonly sets: readonly (readonly Normaliser[])[],
    host: HostIdentity,
  ) {
    this.steps = normaliserSteps(host);
  }

  /** The text under each set, in the order of the sets given. */
  apply(text: string): string[] {
    const done: { input: string; step: Normaliser; output: string }[] = [];
    const run = (input: string, step: Normaliser): string => {
      const hit = done.find((d) => d.step === step && d.input === input);
      if (hit) return hit.output;
      const output = this.steps[step](input);
      done.push({ input, step, output });
      return output;
    };
    return this.sets.map((set) => set.reduce(run, text));
  }
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
