/**
 * Due times across daylight-saving changes in Europe/Berlin (spring forward 2026-03-29 02:00 ->
 * 03:00, fall back 2026-10-25 03:00 -> 02:00), computed by croner and collected the way the
 * scheduler does: window after window, each strictly after the last time handled.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expressionError, isTimeZone, nextTimes, timesBetween } from '../src/crons/cron-schedule.js';
import type { Schedule } from '../src/crons/cron-schedule.js';

const berlin = (expression: string): Schedule => ({
  expression,
  executeTime: null,
  timeZone: 'Europe/Berlin',
  endTime: null,
});

/** Every time due between two instants, as ticks `stepMs` apart (ten minutes unless given) would find them. */
function collect(s: Schedule, fromIso: string, toIso: string, stepMs = 600_000): string[] {
  const out: number[] = [];
  let last = Date.parse(fromIso);
  for (let now = last; now <= Date.parse(toIso); now += stepMs) {
    const due = timesBetween(s, last, now, 1000);
    out.push(...due);
    last = Math.max(last, ...due);
  }
  return out.map((t) => new Date(t).toISOString());
}

describe('cron times across DST in Europe/Berlin', () => {
  test('spring forward: a daily 02:30 runs once at 03:00 on the short day, no day lost', () => {
    const times = collect(berlin('30 2 * * *'), '2026-03-27T12:00:00Z', '2026-03-31T00:00:00Z');
    assert.deepEqual(times, [
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: the first valid time after it, 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  test('fall back: a daily 02:30 runs once on the long day although 02:30 happens twice', () => {
    const times = collect(berlin('30 2 * * *'), '2026-10-23T12:00:00Z', '2026-10-27T00:00:00Z');
    assert.deepEqual(times, [
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // the first 02:30 (CEST) only
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  test('a list of fixed hours is fixed wall time too: 02:30 and 14:30 once each, both days', () => {
    const spring = collect(berlin('30 2,14 * * *'), '2026-03-28T23:00:00Z', '2026-03-29T22:00:00Z');
    assert.deepEqual(spring, ['2026-03-29T01:00:00.000Z', '2026-03-29T12:30:00.000Z']);
    const fall = collect(berlin('30 2,14 * * *'), '2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z');
    assert.deepEqual(fall, ['2026-10-25T00:30:00.000Z', '2026-10-25T13:30:00.000Z']);
  });

  test('hourly: 23 runs on the 23-hour day and 25 on the 25-hour day, none doubled', () => {
    const spring = collect(berlin('0 * * * *'), '2026-03-28T23:00:00Z', '2026-03-29T22:00:00Z');
    assert.equal(spring.length, 23);
    assert.equal(new Set(spring).size, 23);
    const fall = collect(berlin('0 * * * *'), '2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z');
    assert.equal(new Set(fall).size, fall.length);
    // An hourly cron runs every real hour (as Vixie cron does): the long day holds 25 of them.
    // A fixed-time cron (above) runs the repeated wall-clock time once.
    assert.equal(fall.length, 25);
  });

  test('each day in Europe/Berlin keeps exactly one run of a daily cron through both changes', () => {
    const times = collect(berlin('15 1 * * *'), '2026-03-01T00:00:00Z', '2026-11-30T00:00:00Z', 3_600_000);
    assert.equal(times.length, new Set(times).size);
    assert.equal(times.length, 274);
  });
});

describe('cron expressions and zones', () => {
  test('5 fields; "?" and bad values refused; seconds only with the test hook', () => {
    assert.equal(expressionError('0 0/5 * * *', false), undefined);
    assert.equal(expressionError('*/5 1-3 * 1,6 1-5', false), undefined);
    assert.ok(expressionError('0 0 ? * *', false));
    assert.ok(expressionError('61 * * * *', false));
    assert.ok(expressionError('* 0/5 * * * * *', false));
    assert.ok(expressionError('*/2 * * * * *', false));
    assert.equal(expressionError('*/2 * * * * *', true), undefined);
  });

  test('IANA zones', () => {
    assert.ok(isTimeZone('Europe/Berlin'));
    assert.ok(isTimeZone('Asia/Shanghai'));
    assert.ok(!isTimeZone('Mars/Olympus_Mons'));
  });

  test('an end time bounds the next times; a one-shot cron has one', () => {
    const s = { ...berlin('0 12 * * *'), endTime: Date.parse('2026-01-03T12:00:00Z') / 1000 };
    // 12:00 in Berlin is 11:00Z in winter: Jan 1, 2 and 3 fall before the end time.
    assert.equal(nextTimes(s, Date.parse('2026-01-01T00:00:00Z'), 5).length, 3);
    const once: Schedule = { expression: null, executeTime: 2_000_000_000, timeZone: 'UTC', endTime: null };
    assert.deepEqual(nextTimes(once, 0, 5), [2_000_000_000_000]);
    assert.deepEqual(nextTimes(once, 2_000_000_000_000, 5), []);
  });
});
