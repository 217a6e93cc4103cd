/**
 * Following a job until it ends: polls get_job_instance_status with a backoff (0.3 s doubling
 * to 2 s) and reports each snapshot. This is the one place that decides how a job is watched,
 * so the event stream can replace polling here alone.
 */
import type { ApiClient, JobStatus } from './api-client.js';
import { CliError, Exit } from './exit-codes.js';

export interface FollowOptions {
  /** Give up after this long (exit 5); the job keeps running. */
  timeoutMs?: number | undefined;
  onSnapshot?: (st: JobStatus) => void;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

export async function followJob(
  client: ApiClient,
  jobId: number,
  opts: FollowOptions = {},
): Promise<JobStatus> {
  const started = Date.now();
  let delay = 300;
  let failures = 0;
  for (;;) {
    let st: JobStatus | undefined;
    try {
      st = await client.jobStatus(jobId);
      failures = 0;
    } catch (err) {
      // A dropped connection (server restart, network) or a rate limit is retried; other refusals are not.
      const transient =
        err instanceof CliError &&
        (err.message.startsWith('cannot reach') || err.message.includes('(code 1240429)'));
      if (!transient || ++failures > 30) throw err;
    }
    if (st) {
      opts.onSnapshot?.(st);
      if (st.finished) return st;
    }
    if (opts.signal?.aborted) throw new CliError('detached', Exit.OK);
    if (opts.timeoutMs !== undefined && Date.now() - started > opts.timeoutMs)
      throw new CliError(
        `job ${jobId} still running after the wait timeout; it continues (jf watch ${jobId})`,
        Exit.TIMED_OUT,
      );
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, 2000);
  }
}
