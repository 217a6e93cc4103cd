/**
 * One JSON POST over node:http(s), for the agent's registration. Not `fetch`: loading fetch
 * (undici) costs a process about 14 MiB that it keeps for its whole life, and an agent lives as
 * long as its host; node:http is loaded anyway for the WebSocket.
 */
import http from 'node:http';
import https from 'node:https';

/** Largest answer read; registration answers are a few hundred bytes. */
const MAX_ANSWER_BYTES = 1024 * 1024;

export function postJson(
  url: URL,
  body: unknown,
  timeoutMs: number,
  localAddress?: string,
): Promise<{ status: number; json: unknown }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
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
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch {
          reject(new Error(`HTTP ${res.statusCode ?? 0}: not a JSON answer`));
        }
      });
    });
    req.end(payload);
  });
}
