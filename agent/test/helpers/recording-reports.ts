/**
 * A TaskReports that keeps everything a TaskRunner reported, checks the stream contract as it
 * goes (contiguous offsets per task), and lets tests await a task's result or output.
 */
import { EventEmitter } from 'node:events';
import type { RunScript } from '@jobfleet/protocol';
import type { FilesServed } from '@jobfleet/protocol';
import type { TaskReports } from '../../src/task-runner-api.js';
import type { FileReport, FinishedReport } from '../../src/task-spool.js';

export type ServedAnswer = Omit<FilesServed, 'v' | 'type'>;

export type Reported =
  | { type: 'started'; key: string; startTime: number }
  | { type: 'output'; key: string; offset: number; data: Buffer }
  | { type: 'finished'; key: string; result: FinishedReport }
  | { type: 'file'; key: string; report: FileReport };

export class RecordingReports implements TaskReports {
  readonly events: Reported[] = [];
  /** Contract violations seen; tests assert this stays empty. */
  readonly violations: string[] = [];
  private readonly nextOffset = new Map<string, number>();
  private readonly emitter = new EventEmitter();

  started(key: string, startTime: number): void {
    this.events.push({ type: 'started', key, startTime });
    this.emitter.emit('event');
  }

  output(key: string, offset: number, data: Buffer): void {
    const expected = this.nextOffset.get(key) ?? 0;
    // A resend may restart below what was seen (the server drops what it has), never skip ahead.
    if (offset > expected) this.violations.push(`${key}: output at ${offset}, expected at most ${expected}`);
    this.nextOffset.set(key, Math.max(expected, offset + data.length));
    this.events.push({ type: 'output', key, offset, data: Buffer.from(data) });
    this.emitter.emit('event');
  }

  finished(result: FinishedReport): void {
    const expected = this.nextOffset.get(result.key) ?? 0;
    if (result.outputBytes !== expected)
      this.violations.push(`${result.key}: finished with ${result.outputBytes} bytes, reported ${expected}`);
    this.events.push({ type: 'finished', key: result.key, result });
    this.emitter.emit('event');
  }

  fileProgress(report: FileReport): void {
    this.events.push({ type: 'file', key: report.key, report });
    this.emitter.emit('event');
  }

  readonly answers: ServedAnswer[] = [];

  /** What `backlog` says: bytes queued on a pretend connection, undefined for none. */
  queued: number | undefined = 0;

  backlog(): number | undefined {
    return this.queued;
  }

  served(answer: ServedAnswer): void {
    this.answers.push(answer);
    this.emitter.emit('event');
  }

  /** The n-th answer to a `file.serve` of `serveId` (1-based). */
  servedAnswer(serveId: string, n = 1): Promise<ServedAnswer> {
    return this.until(
      () => this.answers.filter((a) => a.serveId === serveId)[n - 1],
      `answer #${n} for ${serveId}`,
    );
  }

  fileReports(key: string): FileReport[] {
    return this.of(key).flatMap((e) => (e.type === 'file' ? [e.report] : []));
  }

  of(key: string): Reported[] {
    return this.events.filter((e) => e.key === key);
  }

  count(key: string, type: Reported['type']): number {
    return this.of(key).filter((e) => e.type === type).length;
  }

  results(key: string): FinishedReport[] {
    return this.of(key).flatMap((e) => (e.type === 'finished' ? [e.result] : []));
  }

  /** The output stream as the server would store it: each byte at its offset. */
  outputOf(key: string): Buffer {
    const parts = this.of(key).flatMap((e) => (e.type === 'output' ? [e] : []));
    const size = Math.max(0, ...parts.map((p) => p.offset + p.data.length));
    const out = Buffer.alloc(size);
    for (const p of parts) p.data.copy(out, p.offset);
    return out;
  }

  text(key: string): string {
    return this.outputOf(key).toString('utf8');
  }

  /** Resolves when `check` holds, re-checked after every report. */
  until<T>(check: () => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.emitter.off('event', on);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const on = () => {
        const v = check();
        if (v === undefined) return;
        clearTimeout(timer);
        this.emitter.off('event', on);
        resolve(v);
      };
      this.emitter.on('event', on);
    });
  }

  /** The n-th result reported for `key` (1-based). */
  finishedResult(key: string, n = 1): Promise<FinishedReport> {
    return this.until(() => this.results(key)[n - 1], `result #${n} of ${key}`);
  }

  outputMatching(key: string, pattern: RegExp): Promise<RegExpMatchArray> {
    return this.until(
      () => this.text(key).match(pattern) ?? undefined,
      `output of ${key} matching ${pattern}`,
    );
  }
}

let nextStep = 1 + Math.floor(Math.random() * 1_000_000) * 1000;

/** A fresh task key; unique per test process so temp directories never collide. */
export function newKey(): string {
  return `${process.pid}${nextStep++}:0:1`;
}

export function runMsg(
  body: string,
  opts: Partial<Omit<RunScript, 'v' | 'type' | 'script'>> = {},
): RunScript {
  return {
    v: 1,
    type: 'task.run',
    key: opts.key ?? newKey(),
    language: opts.language ?? 'shell',
    script: Buffer.from(body).toString('base64'),
    params: opts.params ?? '',
    timeoutSeconds: opts.timeoutSeconds ?? 60,
    user: opts.user ?? '',
    logCapBytes: opts.logCapBytes ?? 1024 * 1024,
    ...(opts.database ? { database: opts.database } : {}),
  };
}

/** The result of a task that exited 0 after writing `outputBytes`. */
export function exitedResult(key: string, outputBytes: number): FinishedReport {
  return {
    key,
    outcome: 'exited',
    exitCode: 0,
    startTime: 1,
    endTime: 2,
    outputBytes,
    droppedBytes: 0,
    message: '',
  };
}
