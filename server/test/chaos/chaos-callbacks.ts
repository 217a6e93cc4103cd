/**
 * The chaos run's callback receiver: some jobs carry a callback_url pointing here. Most POSTs are
 * answered 200 at once; some get a 500, and some are held past the servers' callback timeout
 * (then answered), so that redelivery runs alongside the run's faults. The checker requires, for
 * every job with a callback, a POST carrying the job's final status: a job's end, acknowledged
 * in the store, never loses its callback, whichever server ended it and whatever happened next.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cluster } from '../helpers/cluster.js';

/** The servers' callback settings for the run: a short timeout, quick retries, many attempts. */
export const CALLBACK_ENV = {
  JOBFLEET_CALLBACK_TIMEOUT_MS: '2000',
  JOBFLEET_CALLBACK_BACKOFF_BASE_MS: '200',
  JOBFLEET_CALLBACK_BACKOFF_CAP_MS: '2000',
  JOBFLEET_CALLBACK_MAX_ATTEMPTS: '30',
};
const HELD_MS = 2500;

export interface CallbackReceiver {
  url: string;
  /** Job id -> the job statuses its callbacks carried, in the order they came. */
  received: Map<number, number[]>;
  posts: number;
  close(): Promise<void>;
}

export async function startCallbackReceiver(): Promise<CallbackReceiver> {
  const received = new Map<number, number[]>();
  const receiver: CallbackReceiver = {
    url: '',
    received,
    posts: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      receiver.posts++;
      const draw = Math.random();
      if (draw < 0.1) {
        res.statusCode = 500;
        res.end('not now');
        return;
      }
      // The second attempt is sent as a form, with the same JSON body (as BK-JOB does).
      const cb = JSON.parse(body) as { job_instance_id: number; status: number };
      received.set(cb.job_instance_id, [...(received.get(cb.job_instance_id) ?? []), cb.status]);
      if (draw < 0.2) setTimeout(() => res.end('ok'), HELD_MS).unref();
      else res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/chaos-callback`;
  return receiver;
}

/**
 * Waits (up to `timeoutMs` in all) until each job's final status arrived in a callback; returns
 * a line for each job whose did not.
 */
export async function checkCallbacks(
  c: Cluster,
  jobIds: readonly number[],
  receiver: CallbackReceiver,
  timeoutMs = 60_000,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const missing = async () => {
    const out: string[] = [];
    for (const id of jobIds) {
      const [job] = await c.db<{ status: number }>('select status from job_instance where id = $1', [id]);
      assert.ok(job, `job ${id} not found`);
      const got = receiver.received.get(id) ?? [];
      if (!got.includes(Number(job.status)))
        out.push(`job ${id}: final status ${job.status}, callbacks received ${JSON.stringify(got)}`);
    }
    return out;
  };
  for (;;) {
    const out = await missing();
    if (out.length === 0 || Date.now() > deadline) return out;
    await new Promise((r) => setTimeout(r, 500));
  }
}
