/**
 * The cron builder's model: a few common shapes (every N minutes, hourly, daily, weekly,
 * monthly) that turn into a 5-field expression, plus any expression typed by hand. The text a
 * person reads comes from cronstrue; the next fire times from croner with the options the
 * server's scheduler uses, so the page shows the times the server will fire.
 */
import { Cron } from 'croner';
import cronstrue from 'cronstrue';

export type Shape = 'minutes' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'custom';

export interface Builder {
  shape: Shape;
  /** minutes: every N minutes. */
  every: number;
  minute: number;
  hour: number;
  /** weekly: 0 (Sunday) .. 6. */
  weekdays: number[];
  /** monthly: 1..31. */
  monthDay: number;
  /** custom: the expression as typed. */
  expression: string;
}

export const DEFAULT_BUILDER: Builder = {
  shape: 'daily',
  every: 15,
  minute: 0,
  hour: 3,
  weekdays: [1],
  monthDay: 1,
  expression: '0 3 * * *',
};

export function expressionOf(b: Builder): string {
  switch (b.shape) {
    case 'minutes':
      return `*/${b.every} * * * *`;
    case 'hourly':
      return `${b.minute} * * * *`;
    case 'daily':
      return `${b.minute} ${b.hour} * * *`;
    case 'weekly':
      return `${b.minute} ${b.hour} * * ${[...b.weekdays].sort((x, y) => x - y).join(',') || '1'}`;
    case 'monthly':
      return `${b.minute} ${b.hour} ${b.monthDay} * *`;
    case 'custom':
      return b.expression.trim().replace(/\s+/g, ' ');
  }
}

const int = (s: string | undefined): number | undefined =>
  s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;

/** The builder shape an expression fits, so a saved cron opens in the shape it was made with. */
export function builderOf(expression: string): Builder {
  const f = expression.trim().split(/\s+/);
  const base = { ...DEFAULT_BUILDER, shape: 'custom' as Shape, expression };
  if (f.length !== 5) return base;
  const [mi, h, dom, mon, dow] = f as [string, string, string, string, string];
  const minute = int(mi);
  const hour = int(h);
  const step = /^\*\/(\d+)$/.exec(mi)?.[1];
  if (step && h === '*' && dom === '*' && mon === '*' && dow === '*')
    return { ...base, shape: 'minutes', every: Number(step) };
  if (minute === undefined || mon !== '*') return base;
  if (h === '*' && dom === '*' && dow === '*') return { ...base, shape: 'hourly', minute };
  if (hour === undefined) return base;
  if (dom === '*' && dow === '*') return { ...base, shape: 'daily', minute, hour };
  if (dom === '*' && /^[0-6](,[0-6])*$/.test(dow))
    return { ...base, shape: 'weekly', minute, hour, weekdays: dow.split(',').map(Number) };
  const day = int(dom);
  if (day !== undefined && dow === '*') return { ...base, shape: 'monthly', minute, hour, monthDay: day };
  return base;
}

/** What the expression means in words, or the reason it does not parse. */
export function describe(expression: string): { text: string } | { error: string } {
  const problem = expressionProblem(expression);
  if (problem) return { error: problem };
  try {
    return { text: cronstrue.toString(expression, { use24HourTimeFormat: true, verbose: true }) };
  } catch (err) {
    return { error: String(err) };
  }
}

function parse(expression: string, timeZone: string): Cron {
  return new Cron(expression, {
    paused: true,
    timezone: timeZone,
    mode: '5-part',
    domAndDow: false,
    sloppyRanges: true,
  });
}

/** Why the server would refuse the expression (the same rules), or undefined. */
export function expressionProblem(expression: string): string | undefined {
  const e = expression.trim();
  if (e.includes('?')) return '"?" is not supported';
  if (e.split(/\s+/).length !== 5) return 'give 5 fields: minute hour day-of-month month day-of-week';
  try {
    parse(e, 'UTC');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether the browser knows this IANA zone (croner and Intl throw on any other). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The next `count` fire times (ms) after now, stopping at `endMs` when given. */
export function nextFireTimes(expression: string, timeZone: string, count: number, endMs?: number): number[] {
  if (expressionProblem(expression)) return [];
  const cron = parse(expression.trim(), timeZone);
  const out: number[] = [];
  let from: Date | undefined = new Date();
  while (out.length < count) {
    const next: Date | null = cron.nextRun(from);
    if (!next || (endMs !== undefined && next.getTime() > endMs)) break;
    out.push(next.getTime());
    from = next;
  }
  return out;
}

/** A time shown in the cron's own zone, with the zone's name, e.g. "2026-12-01 03:00 Asia/Shanghai". */
export function formatInZone(ms: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    weekday: 'short',
    hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const p = (t: string) => parts.find((x) => x.type === t)?.value ?? '';
  return `${p('year')}-${p('month')}-${p('day')} ${p('weekday')} ${p('hour')}:${p('minute')}`;
}

export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}
