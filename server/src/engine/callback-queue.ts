/**
 * Delivers job callbacks from a queue kept in the store, so a restart loses none.
 *
 * Each callback is POSTed until the receiver answers HTTP 200, at most `callbackMaxAttempts`
 * times, waiting base * 2^(attempt-1) (capped) between attempts. Like BK-JOB, the second
 * attempt sends the same JSON body with a form content type, for receivers that only read
 * forms; the others send application/json. Every attempt is recorded with its outcome.
 */
import type { Services } from '../services.js';
import type { Callback } from '../store/execution-store.js';
import { callbackUrlAllowed } from './callback-allow-list.js';

const BATCH = 50;
/** Cluster mode: a claimed callback is due again this long after its POST would have timed out. */
const LEASE_MARGIN_MS = 2000;

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(not a URL)';
  }
}

export class CallbackQueue {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private again = false;

  constructor(private readonly services: Services) {}

  start(): void {
    this.stopped = false;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  async enqueue(jobInstanceId: number, url: string, payload: string, now: number): Promise<void> {
    await this.services.store.executions.enqueueCallback({ jobInstanceId, url, payload, now });
    this.kick();
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = true;
    void this.drain()
      .catch((err: unknown) => this.services.log.error({ err }, 'callback delivery loop failed'))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        } else {
          void this.armTimer();
        }
      });
  }

  private async armTimer(): Promise<void> {
    if (this.stopped) return;
    let next = await this.services.store.executions.nextCallbackDue().catch(() => Date.now() + 5000);
    // In a cluster callbacks are queued by other servers too, and one claimed by a server that
    // died is due again when its lease runs out: nobody kicks this queue then, so it polls.
    if (this.services.cluster)
      next = Math.min(next ?? Infinity, Date.now() + this.services.config.clusterPollMs);
    if (next === undefined || this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    for (;;) {
      const executions = this.services.store.executions;
      // Several servers send from one queue in a cluster: each claims what it sends, under a lease.
      const due = this.services.cluster
        ? await executions.claimDueCallbacks(
            Date.now(),
            BATCH,
            this.services.config.callbackTimeoutMs + LEASE_MARGIN_MS,
          )
        : await executions.dueCallbacks(Date.now(), BATCH);
      if (due.length === 0 || this.stopped) return;
      await Promise.all(due.map((c) => this.attempt(c)));
    }
  }

  private async attempt(c: Callback): Promise<void> {
    if (!callbackUrlAllowed(this.services.config.callbackAllowList, c.url)) return this.refuse(c);
    const cfg = this.services.config;
    const attempt = c.attempts + 1;
    let httpStatus: number | null = null;
    let error = '';
    try {
      const res = await fetch(c.url, {
        method: 'POST',
        headers: { 'content-type': attempt === 2 ? 'application/x-www-form-urlencoded' : 'application/json' },
        body: c.payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(cfg.callbackTimeoutMs),
      });
      httpStatus = res.status;
      await res.body?.cancel();
      if (res.status !== 200) error = `HTTP ${res.status}`;
    } catch (err) {
      error = (err as Error).message;
    }
    const delivered = httpStatus === 200;
    const exhausted = !delivered && attempt >= cfg.callbackMaxAttempts;
    const wait = Math.min(cfg.callbackBackoffCapMs, cfg.callbackBackoffBaseMs * 2 ** (attempt - 1));
    await this.services.store.executions.recordCallbackAttempt({
      callbackId: c.id,
      attempt,
      at: Date.now(),
      httpStatus,
      error,
      state: delivered ? 'delivered' : exhausted ? 'failed' : 'pending',
      nextAttemptAt: Date.now() + wait,
    });
    this.services.log[delivered ? 'info' : 'warn'](
      // The origin only: a webhook's path or query often is its credential.
      { job: c.job_instance_id, origin: originOf(c.url), attempt, httpStatus, error: error || undefined },
      delivered
        ? 'callback delivered'
        : exhausted
          ? 'callback failed; giving up'
          : 'callback failed; will retry',
    );
  }

  /**
   * The allow-list changed after the job was accepted: the URL is not called. Retrying cannot
   * help (the list is fixed for this process), so the callback fails with this one attempt.
   */
  private async refuse(c: Callback): Promise<void> {
    const attempt = c.attempts + 1;
    const now = Date.now();
    await this.services.store.executions.recordCallbackAttempt({
      callbackId: c.id,
      attempt,
      at: now,
      httpStatus: null,
      error: 'not sent: callback_url is not in the allowed list (callbackAllowList)',
      state: 'failed',
      nextAttemptAt: now,
    });
    this.services.log.warn(
      { job: c.job_instance_id, origin: originOf(c.url), attempt },
      'callback not sent: url is not in the allowed list',
    );
  }
}
