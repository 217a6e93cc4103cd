/**
 * The agent's plain HTTP calls over node:http(s): its registration, and the health check of a
 * server it may move back to. Not `fetch`: loading fetch (undici) costs a process about 14 MiB
 * that it keeps for its whole life, and an agent lives as long as its host; node:http is loaded
 * anyway for the WebSocket.
 */
import http from 'node:http';
import https from 'node:https';

/** Largest answer read; registration answers are a few hundred bytes. */
const MAX_ANSWER_BYTES = 1024 * 1024;

function request(
  url: URL,
  method: 'GET' | 'POST',
  payload: Buffer | undefined,
  timeoutMs: number,
  localAddress: string | undefined,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method,
      headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      timeout: timeoutMs,
      ...(localAddress ? { localAddress } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error('answer too large'));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.end(payload);
  });
}

export async function postJson(
  url: URL,
  body: unknown,
  timeoutMs: number,
  localAddress?: string,
): Promise<{ status: number; json: unknown }> {
  const res = await request(url, 'POST', Buffer.from(JSON.stringify(body)), timeoutMs, localAddress);
  try {
    return { status: res.status, json: JSON.parse(res.body.toString('utf8')) };
  } catch {
    throw new Error(`HTTP ${res.status}: not a JSON answer`);
  }
}

/**
 * Whether the server at `base` says it takes agents: its `/healthz` answers 200 (a cluster
 * member that is draining, fenced or cut off from its database answers 503). Never throws.
 */
export async function serverHealthy(
  base: string,
  timeoutMs: number,
  localAddress?: string,
): Promise<boolean> {
  try {
    return (
      (await request(new URL('/healthz', base), 'GET', undefined, timeoutMs, localAddress)).status === 200
    );
  } catch {
    return false;
  }
}
