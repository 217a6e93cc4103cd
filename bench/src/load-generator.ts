/**
 * A closed-loop load generator: `connections` workers on keep-alive sockets, each sending the
 * same request as soon as its previous reply has been read in full. Bounded both in time and
 * in count, and it only ever talks to the loopback address it was given.
 */
import http from 'node:http';
import { postOnce } from './http-post.js';
import type { PostTarget } from './http-post.js';
import { percentile } from './stats.js';

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

export async function runLoad(
  target: PostTarget,
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
        const r = await postOnce(agent, target, { timeoutMs: 30_000, keepBody: false });
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
