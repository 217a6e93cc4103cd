/**
 * When a cron is due: croner parses the expression and computes the times in the cron's own
 * IANA time zone, daylight-saving changes included (a wall time skipped by a spring-forward
 * runs at the first valid time after it; a wall time repeated by a fall-back runs once).
 */
import { Cron } from 'croner';

export interface Schedule {
  /** 5-field expression; null for a one-shot cron. */
  expression: string | null;
  /** One-shot time in seconds. */
  executeTime: number | null;
  timeZone: string;
  /** Seconds; no time after it is due. */
  endTime: number | null;
}

/** Why an expression is refused, or undefined when croner accepts it. */
export function expressionError(expression: string, secondsField: boolean): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (expression.includes('?')) return '"?" is not supported';
  const allowed = secondsField ? [5, 6] : [5];
  if (!allowed.includes(fields.length)) return 'give 5 fields: minute hour day-of-month month day-of-week';
  try {
    new Cron(expression, {
      paused: true,
      mode: fields.length === 6 ? '6-part' : '5-part',
      sloppyRanges: true,
    });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export function serverTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Parsed patterns by expression and zone: the scheduler asks for the same few every tick. */
const parsed = new Map<string, Cron>();
const MAX_PARSED = 10_000;

function cronOf(s: Schedule & { expression: string }): Cron {
  const key = `${s.timeZone} ${s.expression}`;
  let cron = parsed.get(key);
  if (!cron) {
    if (parsed.size >= MAX_PARSED) parsed.clear();
    cron = parse(s);
    parsed.set(key, cron);
  }
  return cron;
}

function parse(s: Schedule & { expression: string }): Cron {
  const parts = s.expression.trim().split(/\s+/).length;
  return new Cron(s.expression, {
    paused: true,
    timezone: s.timeZone,
    mode: parts === 6 ? '6-part' : '5-part',
    // Unix cron: a restricted day-of-month and day-of-week match when either does.
    domAndDow: false,
    sloppyRanges: true,
    // Vixie cron's rule: a list or range of hours (`30 2,14`) is fixed wall time as well.
    fixedTimeRule: 'no-wildcard',
  });
}

/**
 * Due times (ms) strictly after `afterMs` and at most `untilMs`, oldest first; at most `limit`
 * of them, the latest ones kept when there are more.
 */
export function timesBetween(s: Schedule, afterMs: number, untilMs: number, limit: number): number[] {
  const end = s.endTime === null ? untilMs : Math.min(untilMs, s.endTime * 1000);
  if (s.expression === null) {
    const t = (s.executeTime ?? 0) * 1000;
    return t > afterMs && t <= end ? [t] : [];
  }
  const cron = cronOf({ ...s, expression: s.expression });
  const out: number[] = [];
  let from = new Date(afterMs);
  for (;;) {
    const next = cron.nextRun(from);
    if (!next || next.getTime() > end) break;
    out.push(next.getTime());
    if (out.length > limit) out.shift();
    from = next;
  }
  return out;
}

/** The next `n` times (ms) after `afterMs`. */
export function nextTimes(s: Schedule, afterMs: number, n: number): number[] {
  if (s.expression === null) {
    const t = (s.executeTime ?? 0) * 1000;
    return t > afterMs && (s.endTime === null || t <= s.endTime * 1000) ? [t] : [];
  }
  const cron = cronOf({ ...s, expression: s.expression });
  return cron
    .nextRuns(n, new Date(afterMs))
    .map((d) => d.getTime())
    .filter((t) => s.endTime === null || t <= s.endTime * 1000);
}
