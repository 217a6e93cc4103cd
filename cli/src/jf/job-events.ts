/**
 * One connection to a job's event stream (get_job_event_stream, Server-Sent Events). The
 * caller keeps the cursor (the last event id) and reconnects with it as Last-Event-ID, so a
 * dropped connection or a server restart loses and repeats nothing (docs/event-stream.md).
 */
import { createParser } from 'eventsource-parser';
import { authHeaders } from './api-client.js';
import type { ApiClient } from './api-client.js';
import { CliError, Exit } from './exit-codes.js';
import { isAuthCode } from './api-client.js';

export interface JobEvent {
  /** The event's cursor; `end` has none. */
  id: number | undefined;
  event: string;
  data: Record<string, unknown>;
}

/**
 * How a connection ended: `finished` (the job is over and every event was sent), `dropped`
 * (reconnect from the cursor) or `unavailable` (this server or a proxy in front of it serves no
 * stream: poll instead).
 */
export type StreamEnd = 'finished' | 'dropped' | 'unavailable';

/** A connection that carries not even a keepalive for this long is taken as dead (the server sends one every 15 s). */
const IDLE_MS = 45_000;

export async function readJobStream(
  client: ApiClient,
  jobId: number,
  cursor: number | undefined,
  onEvents: (events: JobEvent[]) => Promise<void>,
  signal: AbortSignal,
): Promise<StreamEnd> {
  const scope = client.scope();
  const q = new URLSearchParams({
    bk_scope_type: scope.type,
    bk_scope_id: scope.id,
    job_instance_id: String(jobId),
  });
  const idle = new AbortController();
  let idleTimer = setTimeout(() => idle.abort(), IDLE_MS);
  const alive = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(), IDLE_MS);
  };
  try {
    let res: Response;
    try {
      res = await fetch(`${client.conn.server}/api/v3/get_job_event_stream?${q}`, {
        headers: {
          accept: 'text/event-stream',
          ...authHeaders(client.conn),
          ...(cursor === undefined ? {} : { 'last-event-id': String(cursor) }),
        },
        signal: AbortSignal.any([signal, idle.signal]),
      });
    } catch {
      return 'dropped';
    }
    if (res.status === 204) return 'finished';
    if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const text = await res.text().catch(() => '');
      let env: { result?: boolean; code?: number; message?: string } | undefined;
      try {
        env = JSON.parse(text) as typeof env;
      } catch {
        env = undefined;
      }
      // Too many streams open for this caller (1240430): follow by polling instead. Rate limited
      // (1240429): try again after a pause. Neither is the job's failure.
      if (env?.code === 1240430) return 'unavailable';
      if (env?.code === 1240429) return 'dropped';
      if (env?.result === false && typeof env.code === 'number' && env.code !== 1240004) {
        // The server refused (credentials, scope, unknown job): polling would be refused too.
        throw new CliError(
          `${env.message ?? ''} (code ${env.code})`,
          isAuthCode(env.code) ? Exit.AUTH : Exit.FAILED,
        );
      }
      if (res.status >= 500) return 'dropped';
      return 'unavailable';
    }
    let ended = false;
    let batch: JobEvent[] = [];
    const parser = createParser({
      onEvent(m) {
        let data: Record<string, unknown> = {};
        try {
          data = JSON.parse(m.data) as Record<string, unknown>;
        } catch {
          return;
        }
        const event = m.event ?? 'message';
        if (event === 'end') ended = true;
        batch.push({ id: m.id === undefined || m.id === '' ? undefined : Number(m.id), event, data });
      },
    });
    if (!res.body) return 'dropped';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        alive();
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        if (batch.length > 0) {
          const events = batch;
          batch = [];
          await onEvents(events);
        }
        if (ended) return 'finished';
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      return 'dropped';
    }
    return ended ? 'finished' : 'dropped';
  } finally {
    clearTimeout(idleTimer);
  }
}
