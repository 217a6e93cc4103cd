/**
 * Serving event streams (Server-Sent Events) from the job event log.
 *
 * A client's stream reads the log one page at a time after its cursor (its Last-Event-ID),
 * writes the page, and reads the next page only once the socket took the previous one: a
 * client that stops reading holds at most one page and the socket's buffers on the server,
 * however much happens meanwhile; it finds the rest in the log when it reads again.
 * A client gets at most `maxPerSecond` messages a second; past that, host and log events are
 * coalesced with exact counts (sse-coalescing.ts). Streams wake when this server appends
 * events and otherwise look every `pollMs`, which is how events of other servers arrive.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JobEventLog, JobEventRow } from '../store/job-event-log.js';
import { ApiError } from '../api/error-catalogue.js';
import { messagesOf } from './sse-coalescing.js';

export interface StreamPage {
  /** Events after the id asked for, oldest first. */
  rows: JobEventRow[];
  /**
   * How far the log was read: the last row's id, or past it when the source skips events it
   * does not send (a scope's host and log events), so the next read starts after those.
   */
  through: number;
}

export interface StreamSource {
  list(afterId: number, limit: number): Promise<StreamPage>;
  /** Set when the stream is complete once caught up (a finished job): the data of its `end` message. */
  finished(): Promise<Record<string, unknown> | undefined>;
}

export interface StreamStart {
  afterId: number;
  /** Whether the client named where it stopped (a reconnect rather than a first connect). */
  resumed: boolean;
  maxPerSecond: number;
  /** Whether the caller may still read: asked every RECHECK_MS; false ends the stream. */
  allowed: () => Promise<boolean>;
}

/**
 * The status events (job, step, batch) of every job of a scope. A read stops at the log's newest
 * id, taken first, so that a page short of the limit moves the cursor past every host and log
 * event up to it: the next read never walks them again (ids grow in commit order). Without
 * that, a scope stream kept its cursor at the last status event and read a running step's
 * every output event again at each wake, which a busy job makes continuous.
 */
export function scopeStatusEvents(events: JobEventLog, scopeType: string, scopeId: string): StreamSource {
  return {
    async list(afterId, limit) {
      const newest = await events.lastId();
      const rows = await events.listOfScope(scopeType, scopeId, afterId, newest, limit);
      const last = rows.at(-1)?.id ?? afterId;
      return { rows, through: rows.length < limit ? Math.max(afterId, newest) : last };
    },
    finished: () => Promise.resolve(undefined),
  };
}

const PAGE = 500;
/**
 * Least time between two reads of a stream that is caught up: every append on this server wakes
 * every stream, and a busy server appends hundreds of times a second.
 */
const MIN_READ_GAP_MS = 100;
const HEARTBEAT_MS = 15_000;
/** A revoked grant, app, session or token ends a stream within this time. */
const RECHECK_MS = 5000;

export class EventStreams {
  private readonly clients = new Set<ServerResponse>();
  private readonly listeners = new Set<() => void>();
  /** Streams open by each caller (app code). */
  private readonly openBy = new Map<string, number>();

  constructor(
    events: JobEventLog,
    private readonly pollMs: number,
  ) {
    events.onAppended(() => {
      for (const l of this.listeners) l();
    });
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * Counts a stream of `who` until the returned function is called; refused (1240430) when
   * `who` holds `limit` already. Taken before the stream's first read, so that streams opened
   * together count each other.
   */
  reserve(who: string, limit: number): () => void {
    const n = this.openBy.get(who) ?? 0;
    if (n >= limit) throw new ApiError('TOO_MANY_STREAMS', { who, limit });
    this.openBy.set(who, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.openBy.get(who) ?? 1) - 1;
      if (left > 0) this.openBy.set(who, left);
      else this.openBy.delete(who);
    };
  }

  /** Bytes written to streams and not yet taken by their clients (summed over clients). */
  bufferedBytes(): number {
    let n = 0;
    for (const c of this.clients) n += c.writableLength;
    return n;
  }

  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    source: StreamSource,
    start: StreamStart,
  ): Promise<void> {
    let cursor = start.afterId;
    let ended = await source.finished();
    let page = await source.list(cursor, PAGE);
    let rows = page.rows;
    if (ended && rows.length === 0 && start.resumed) {
      // Nothing more will come: 204 tells an EventSource to stop reconnecting.
      res.writeHead(204).end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    this.clients.add(res);
    let closed = false;
    /** Ends the current wait early: new events, or the client went away. */
    let wake: (() => void) | undefined;
    /** Ends a wait for the socket to drain or for the next read's time: only the client going away does. */
    let unblock: (() => void) | undefined;
    let dirty = false;
    const onClose = () => {
      closed = true;
      wake?.();
      unblock?.();
    };
    const onAppended = () => {
      dirty = true;
      wake?.();
    };
    this.listeners.add(onAppended);
    req.socket.on('close', onClose);
    res.on('close', onClose);
    const waitFor = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    let windowStart = Date.now();
    let sent = 0;
    let lastWrite = Date.now();
    let lastCheck = Date.now();
    let lastRead = Date.now();
    try {
      for (;;) {
        if (closed) return;
        if (Date.now() - lastCheck >= RECHECK_MS) {
          if (!(await start.allowed())) {
            // A reconnect gets the refusal as an envelope.
            res.write(': access withdrawn\n\n');
            return;
          }
          lastCheck = Date.now();
        }
        if (rows.length === 0) {
          if (ended) {
            res.write(`event: end\ndata: ${JSON.stringify(ended)}\n\n`);
            return;
          }
          if (!dirty) await waitFor(Math.min(this.pollMs, RECHECK_MS));
          else {
            const gap = lastRead + MIN_READ_GAP_MS - Date.now();
            if (gap > 0) {
              await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, gap);
                unblock = () => {
                  clearTimeout(t);
                  resolve();
                };
              });
              unblock = undefined;
            }
          }
          if (closed) return;
          if (Date.now() - lastWrite >= HEARTBEAT_MS) {
            res.write(': keepalive\n\n');
            lastWrite = Date.now();
          }
        } else {
          if (start.maxPerSecond > 0) {
            const now = Date.now();
            if (now - windowStart >= 1000) {
              windowStart = now;
              sent = 0;
            } else if (sent >= start.maxPerSecond) {
              await waitFor(windowStart + 1000 - now);
              continue;
            }
          }
          const budget = start.maxPerSecond > 0 ? start.maxPerSecond - sent : Infinity;
          const messages = messagesOf(rows, rows.length > budget);
          const ok = res.write(messages.join(''));
          sent += messages.length;
          lastWrite = Date.now();
          if (!ok) {
            await new Promise<void>((resolve) => {
              unblock = resolve;
              res.once('drain', resolve);
            });
            unblock = undefined;
          }
        }
        if (closed) return;
        cursor = Math.max(cursor, page.through);
        // Finished first, then the page: a job seen finished has all its events in the log.
        dirty = false;
        lastRead = Date.now();
        ended = await source.finished();
        page = await source.list(cursor, PAGE);
        rows = page.rows;
      }
    } finally {
      this.clients.delete(res);
      this.listeners.delete(onAppended);
      req.socket.off('close', onClose);
      if (!res.writableEnded) res.end();
    }
  }

  /** Ends every stream (server shutdown); clients reconnect with their Last-Event-ID. */
  close(): void {
    for (const c of this.clients) c.end();
  }
}
