/**
 * Delivers job callbacks from a queue kept in the store, so a restart loses none.
 *
 * Each callback is POSTed until the receiver answers HTTP 200, at most `callbackMaxAttempts`
 * times, waiting base * 2^(attempt-1) (capped) between attempts. Like BK-JOB, the second
 * attempt sends the same JSON body with a form content type, for receivers that only read
 * forms; the others send application/json. Every attempt is recorded with its outcome.
 * SLOTS attempts run at once, at most PER_ORIGIN to one receiver. In a cluster every server sends
 * from the one queue, whose times (due, lease, next attempt) are the database's clock.
 *
 * URLs are stored sealed (callback-url.ts) and opened here only: to count a receiver's slots, to
 * check the allow-list and to send. One that does not open (sealed under a key this server does
 * not hold) is not sent: its callback fails at once with the reason recorded, as a step whose
 * secret does not open fails its hosts at once.
 */
import type { Services } from '../services.js';
import type { Callback } from '../store/execution-store.js';
import { callbackUrlAllowed } from './callback-allow-list.js';
import { callbackUrlAtRest, tryOpenCallbackUrl } from './callback-url.js';

/** Attempts in flight at once: each slot takes the next due callback as soon as it is free. */
const SLOTS = 50;
/**
 * Attempts in flight to one receiver (origin): a receiver that never answers holds this many
 * slots for a timeout each, not all of them, and the others' callbacks go on.
 */
const PER_ORIGIN = 10;
/** While attempts run, the queue is looked at again this often for callbacks come due. */
const RECHECK_MS = 1000;
/** Due callbacks looked at per pass, soonest first, to fill the free slots from. */
const CANDIDATES = 500;
/** After a write of an attempt failed, its callback (and the queue's timer) waits this long. */
const WRITE_FAILURE_PAUSE_MS = 5000;
/** Cluster mode: a claimed callback is due again this long after its POST would have timed out. */
const LEASE_MARGIN_MS = 2000;

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(not a URL)';
  }
}

/** The receiver's slots of callbacks whose URL does not open: they fail without a request. */
const UNOPENED_ORIGIN = '(sealed URL that does not open)';

/** A stored callback's URL opened, or why it does not open. */
type Opened = { url: string; origin: string } | { error: string };

export class CallbackQueue {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private again = false;
  /** Attempts running, by callback id, and their receivers' origins. */
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly origins = new Map<number, string>();
  /**
   * Receivers' origins of the due callbacks the last look saw, by callback id: a callback waiting
   * for a slot is seen by look after look, and its URL (which never changes) is opened once.
   */
  private dueOrigins = new Map<number, string>();
  /** Callbacks whose attempt could not be recorded, until when they are left alone. */
  private readonly paused = new Map<number, number>();
  private lastWriteFailure = 0;
  /** Wakes a drain waiting for a free slot: a callback was queued. */
  private wake: (() => void) | undefined;

  constructor(private readonly services: Services) {}

  start(): void {
    this.stopped = false;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * `url` as stored: a job's callback_url is passed on sealed as it is (or plain, from a job
   * stored before URLs were sealed, or a confirmation step's webhook URL) and queued sealed under
   * the current key. `queuedAt`: the time of the finish it announces.
   */
  async enqueue(jobInstanceId: number, url: string, payload: string, queuedAt: number): Promise<void> {
    await this.services.store.executions.enqueueCallback({
      jobInstanceId,
      url: callbackUrlAtRest(this.services.secretBox, url),
      payload,
      queuedAt,
    });
    this.kick();
  }

  private open(stored: string): Opened {
    const opened = tryOpenCallbackUrl(this.services.secretBox, stored);
    return 'url' in opened ? { url: opened.url, origin: originOf(opened.url) } : opened;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      this.wake?.();
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
    // The wait until the soonest callback is due, on the queue's clock (the database's, in a
    // cluster): a due time less this server's own clock would be off by however far it is off.
    let wait = await this.services.store.executions.nextCallbackDueInMs().catch(() => 5000);
    // In a cluster callbacks are queued by other servers too, and one claimed by a server that
    // died is due again when its lease runs out: nobody kicks this queue then, so it polls.
    if (this.services.cluster) wait = Math.min(wait ?? Infinity, this.services.config.clusterPollMs);
    // A due callback whose attempt could not be recorded is still due: not again at once.
    if (wait !== undefined)
      wait = Math.max(wait, this.lastWriteFailure + WRITE_FAILURE_PAUSE_MS - Date.now());
    if (wait === undefined || this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), Math.max(0, wait));
    this.timer.unref();
  }

  /**
   * Keeps SLOTS attempts in flight while callbacks are due: a slow receiver holds its own slot,
   * not a batch of everyone's. Returns once nothing is due and nothing runs.
   */
  private async drain(): Promise<void> {
    const executions = this.services.store.executions;
    for (let look = true; ;) {
      if (this.stopped) return;
      if (look && this.inFlight.size < SLOTS) {
        const now = Date.now();
        for (const [id, until] of this.paused) if (until <= now) this.paused.delete(id);
        const chosen = this.choose(await executions.dueCallbacks(CANDIDATES));
        // Several servers send from one queue in a cluster: each claims what it sends, under a lease.
        const lease = this.services.cluster
          ? this.services.config.callbackTimeoutMs + LEASE_MARGIN_MS
          : undefined;
        for (const c of await executions.takeDueCallbacks(chosen, lease)) this.begin(c);
      }
      if (this.inFlight.size === 0) return;
      // Until a slot frees, a callback is queued here (kick), or a second passed: callbacks
      // queued by other servers of a cluster, or paused after a failed write, come due meanwhile.
      // A freed slot looks again only once half of them are free: one read per wave of
      // attempts, not one per attempt.
      let recheck: NodeJS.Timeout | undefined;
      const woken = await Promise.race([
        ...[...this.inFlight.values()].map((p) => p.then(() => 'slot' as const)),
        new Promise<'kick' | 'time'>((resolve) => {
          this.wake = () => resolve('kick');
          recheck = setTimeout(() => resolve('time'), RECHECK_MS);
        }),
      ]);
      clearTimeout(recheck);
      this.wake = undefined;
      look = woken !== 'slot' || this.inFlight.size <= SLOTS / 2;
    }
  }

  /** Of the due callbacks, those to send now: free slots, at most PER_ORIGIN per receiver. */
  private choose(due: readonly { id: number; url: string }[]): number[] {
    const seen = this.dueOrigins;
    this.dueOrigins = new Map();
    for (const c of due) {
      let origin = seen.get(c.id);
      if (origin === undefined) {
        const opened = this.open(c.url);
        origin = 'url' in opened ? opened.origin : UNOPENED_ORIGIN;
      }
      this.dueOrigins.set(c.id, origin);
    }
    const perOrigin = new Map<string, number>();
    for (const c of this.inFlight.keys()) {
      const origin = this.origins.get(c);
      if (origin !== undefined) perOrigin.set(origin, (perOrigin.get(origin) ?? 0) + 1);
    }
    const chosen: number[] = [];
    for (const c of due) {
      if (this.inFlight.size + chosen.length >= SLOTS) break;
      if (this.inFlight.has(c.id) || this.paused.has(c.id)) continue;
      const origin = this.dueOrigins.get(c.id) ?? UNOPENED_ORIGIN;
      const n = perOrigin.get(origin) ?? 0;
      if (n >= PER_ORIGIN) continue;
      perOrigin.set(origin, n + 1);
      chosen.push(c.id);
    }
    return chosen;
  }

  private begin(c: Callback): void {
    const opened = this.open(c.url);
    this.origins.set(c.id, 'url' in opened ? opened.origin : UNOPENED_ORIGIN);
    const run = ('url' in opened ? this.attempt(c, opened) : this.unopened(c, opened.error))
      .catch((err: unknown) => {
        this.lastWriteFailure = Date.now();
        this.paused.set(c.id, this.lastWriteFailure + WRITE_FAILURE_PAUSE_MS);
        this.services.log.error({ err, job: c.job_instance_id }, 'callback attempt not recorded');
      })
      .finally(() => {
        this.inFlight.delete(c.id);
        this.origins.delete(c.id);
      });
    this.inFlight.set(c.id, run);
  }

  private async attempt(c: Callback, { url, origin }: { url: string; origin: string }): Promise<void> {
    if (!callbackUrlAllowed(this.services.config.callbackAllowList, url)) return this.refuse(c, origin);
    const cfg = this.services.config;
    const attempt = c.attempts + 1;
    let httpStatus: number | null = null;
    let error = '';
    try {
      const res = await fetch(url, {
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
    const recorded = await this.services.store.executions.recordCallbackAttempt({
      callbackId: c.id,
      attempt,
      httpStatus,
      error,
      state: delivered ? 'delivered' : exhausted ? 'failed' : 'pending',
      retryInMs: wait,
    });
    this.services.log[delivered ? 'info' : 'warn'](
      // The origin only: a webhook's path or query often is its credential.
      { job: c.job_instance_id, origin, attempt, httpStatus, error: error || undefined },
      !recorded
        ? 'callback attempt not recorded: another server recorded this attempt first'
        : delivered
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
  private async refuse(c: Callback, origin: string): Promise<void> {
    const attempt = c.attempts + 1;
    await this.fail(c, 'not sent: callback_url is not in the allowed list (callbackAllowList)');
    this.services.log.warn(
      { job: c.job_instance_id, origin, attempt },
      'callback not sent: url is not in the allowed list',
    );
  }

  /**
   * The stored URL does not open (sealed under a key this server does not hold: a key lost in a
   * rotation, or a server of a cluster started with another key). Nothing is sent to a guessed
   * address, and retrying cannot help, so the callback fails with this one attempt.
   */
  private async unopened(c: Callback, reason: string): Promise<void> {
    const attempt = c.attempts + 1;
    await this.fail(c, `not sent: callback_url does not open: ${reason}`);
    this.services.log.error(
      { job: c.job_instance_id, callback: c.id, attempt, reason },
      'callback not sent: its sealed url does not open',
    );
  }

  /** Records a last attempt that sent nothing: the callback fails. */
  private async fail(c: Callback, error: string): Promise<void> {
    await this.services.store.executions.recordCallbackAttempt({
      callbackId: c.id,
      attempt: c.attempts + 1,
      httpStatus: null,
      error,
      state: 'failed',
      retryInMs: 0,
    });
  }
}
