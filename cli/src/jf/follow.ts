/**
 * Following a job until it ends. The job's event stream drives it: each connection resumes from
 * the last event id it saw, so a dropped connection or a server restart repeats and loses
 * nothing. Where no stream is served (an older server, a proxy that refuses it) it polls
 * get_job_instance_status instead, with a backoff (0.3 s doubling to 2 s). Both survive up to
 * 30 failed attempts in a row. This is the one place that decides how a job is watched.
 */
import type { ApiClient, JobStatus } from './api-client.js';
import { CliError, Exit } from './exit-codes.js';
import type { JobEvent } from './job-events.js';

export interface FollowOptions {
  /** Give up after this long (exit 5); the job keeps running. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal;
  /** Stream events in order, one network read at a time (awaited: the stream waits meanwhile). */
  onEvents?: (events: JobEvent[]) => Promise<void> | void;
  /** A status snapshot, when polling (no stream). */
  onSnapshot?: (st: JobStatus) => Promise<void> | void;
  /** Resume the stream after this event id (a cursor printed by -o ndjson). */
  cursor?: number | undefined;
  /** Poll instead of reading the stream (JOBFLEET_NO_STREAM=1 does the same). */
  poll?: boolean;
}

const MAX_FAILURES = 30;
/**
 * A status read that takes longer is given up (and retried, as a dropped connection is): a
 * stalled server would otherwise hold a read for fetch's own 300 s.
 */
const STATUS_TIMEOUT_MS = 30_000;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** A dropped connection (server restart, network) or a rate limit: worth another try. */
function isTransient(err: unknown): boolean {
  return (
    err instanceof CliError &&
    (err.message.startsWith('cannot reach') ||
      err.message.includes('(code 1240429)') ||
      err.message.includes('did not answer as a Jobfleet server'))
  );
}

/** The job's status, retried with the backoff while the server is out of reach. */
export async function statusRetrying(
  client: ApiClient,
  jobId: number,
  signal?: AbortSignal,
): Promise<JobStatus> {
  let delay = 300;
  for (let failures = 0; ; failures++) {
    try {
      return await client.jobStatus(jobId, { signal, timeoutMs: STATUS_TIMEOUT_MS });
    } catch (err) {
      if (!isTransient(err) || failures >= MAX_FAILURES || signal?.aborted) throw err;
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 2000);
  }
}

export async function followJob(
  client: ApiClient,
  jobId: number,
  opts: FollowOptions = {},
): Promise<JobStatus> {
  const stop = new AbortController();
  let timedOut = false;
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          stop.abort();
        }, opts.timeoutMs);
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const check = () => {
    if (opts.signal?.aborted) throw new CliError('detached', Exit.INTERRUPTED);
    if (timedOut)
      throw new CliError(
        `job ${jobId} still running after the wait timeout; it continues (jf watch ${jobId})`,
        Exit.TIMED_OUT,
      );
  };
  try {
    let polling = Boolean(opts.poll) || process.env.JOBFLEET_NO_STREAM === '1';
    // The stream client (and its parser) loads only when a command follows a job.
    const { readJobStream } = await import('./job-events.js');
    let cursor = opts.cursor;
    let failures = 0;
    let delay = 300;
    while (!polling) {
      let got = false;
      const end = await readJobStream(
        client,
        jobId,
        cursor,
        async (events) => {
          got = true;
          for (const e of events) if (e.id !== undefined) cursor = e.id;
          await opts.onEvents?.(events);
        },
        stop.signal,
      );
      check();
      if (end === 'finished') return await statusRetrying(client, jobId, stop.signal);
      if (end === 'unavailable') {
        polling = true;
        break;
      }
      if (got) {
        failures = 0;
        delay = 300;
      } else if (++failures > MAX_FAILURES) {
        // One more request, for the operator's error message (cannot reach ..., or the refusal).
        await client.jobStatus(jobId, { signal: stop.signal, timeoutMs: STATUS_TIMEOUT_MS });
        throw new CliError(`lost the event stream of job ${jobId} ${MAX_FAILURES} times in a row`);
      }
      await sleep(delay, stop.signal);
      delay = Math.min(delay * 2, 2000);
      check();
    }
    for (;;) {
      let st: JobStatus | undefined;
      try {
        st = await client.jobStatus(jobId, { signal: stop.signal, timeoutMs: STATUS_TIMEOUT_MS });
        failures = 0;
      } catch (err) {
        if (!isTransient(err) || ++failures > MAX_FAILURES) throw err;
      }
      if (st) {
        await opts.onSnapshot?.(st);
        if (st.finished) return st;
      }
      check();
      await sleep(delay, stop.signal);
      delay = Math.min(delay * 2, 2000);
      check();
    }
  } catch (err) {
    // A read cut short by Ctrl-C or the wait timeout fails; the reason it was stopped is the answer.
    check();
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
