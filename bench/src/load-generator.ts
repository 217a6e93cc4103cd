/**
 * A closed-loop load generator: `connections` workers on keep-alive sockets, each sending the
 * same request as soon as its previous reply has been read in full. Bounded both in time and
 * in count, and it only ever talks to the loopback address it was given.
 */
import http from 'node:http';
import { percentile } from './stats.js';

export interface LoadTarget {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Size of the last reply body, to show both servers answered the same bytes. */
  replyBytes: number;
}

function once(agent: http.Agent, target: LoadTarget): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      target.url,
      {
        method: 'POST',
        agent,
        headers: { ...target.headers, 'content-length': Buffer.byteLength(target.body) },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(target.body);
  });
}

export async function runLoad(
  target: LoadTarget,
  opts: { connections: number; durationMs: number; maxRequests: number },
): Promise<LoadResult> {
  const host = new URL(target.url).hostname;
  if (!host.startsWith('127.')) throw new Error(`load is only sent to loopback addresses, not ${host}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  let replyBytes = 0;
  const start = performance.now();
  const end = start + opts.durationMs;
  const worker = async () => {
    while (performance.now() < end && issued < opts.maxRequests) {
      issued++;
      const t = performance.now();
      try {
        const r = await once(agent, target);
        if (r.status !== 200) errors++;
        else {
          latencies.push(performance.now() - t);
          replyBytes = r.bytes;
        }
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    replyBytes,
  };
}
