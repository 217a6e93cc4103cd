/** Reading the server's Server-Sent Events streams the way a browser's EventSource does. */
import http from 'node:http';
import type { ApiCreds } from './api-client.js';

export interface SseEvent {
  id: number;
  event: string;
  data: string;
}

export interface StreamRead {
  status: number;
  events: SseEvent[];
  /** The `end` message's data, when the server ended the stream. */
  end: Record<string, unknown> | undefined;
}

export function streamUrl(base: string, name: string, params: Record<string, string | number>): string {
  const q = new URLSearchParams(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])));
  return `${base}/api/v3/${name}?${q}`;
}

function authHeader(creds: ApiCreds): string {
  return JSON.stringify({
    bk_app_code: creds.appCode,
    bk_app_secret: creds.appSecret,
    bk_username: creds.username ?? 'tester',
  });
}

/**
 * Reads a stream until the server ends it, or until `stopAfter` events arrived or `until` holds
 * for one (then the
 * client disconnects abruptly, as a dropped network would). `lastEventId` is sent as the
 * Last-Event-ID header.
 */
export function readStream(
  url: string,
  creds: ApiCreds,
  opts: {
    lastEventId?: number;
    stopAfter?: number;
    until?: (e: SseEvent) => boolean;
    timeoutMs?: number;
  } = {},
): Promise<StreamRead> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-bkapi-authorization': authHeader(creds) };
    if (opts.lastEventId !== undefined) headers['last-event-id'] = String(opts.lastEventId);
    const req = http.get(url, { headers }, (res) => {
      const events: SseEvent[] = [];
      let end: Record<string, unknown> | undefined;
      let buf = '';
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`stream did not end in time; got ${events.length} events`));
      }, opts.timeoutMs ?? 60_000);
      const finish = () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, events, end });
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const fields = new Map<string, string>();
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            if (colon < 0) continue;
            fields.set(line.slice(0, colon), line.slice(colon + 1).replace(/^ /, ''));
          }
          const event = fields.get('event');
          const data = fields.get('data');
          if (event === 'end' && data !== undefined) end = JSON.parse(data) as Record<string, unknown>;
          else if (event !== undefined && data !== undefined && fields.has('id')) {
            events.push({ id: Number(fields.get('id')), event, data });
            const last = events[events.length - 1];
            if (
              (opts.stopAfter !== undefined && events.length >= opts.stopAfter) ||
              (last && opts.until?.(last))
            ) {
              res.destroy();
              finish();
              return;
            }
          }
        }
      });
      res.on('end', finish);
      res.on('error', () => finish());
    });
    req.on('error', reject);
  });
}
