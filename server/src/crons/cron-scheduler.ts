/**
 * The scheduler: every tick it looks for due times of enabled crons and fires each through the
 * plan-execution path as launch mode 3. Every server of a cluster runs one; a due time is
 * claimed by the unique firing row written in the job's own transaction, so it starts one job
 * whichever server gets there first, and a crash either commits both or neither.
 *
 * After downtime (or a tick that came late) the most recent missed time fires if it is at most
 * the cron's misfire grace old; every older missed time, and a latest one past the grace, is
 * recorded as skipped. Times before the cron was (last) enabled are never due.
 *
 * Hosts the plan names by id that no longer exist do not stop a firing (behaviour notes §5):
 * the job runs on the others and shows the missing ones at per-host status 2, which fails
 * their step; a step whose hosts are all gone fails at once, so the firing still shows a job.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LaunchMode } from '../engine/statuses.js';
import type { EndpointContext } from '../api/endpoint.js';
import { ApiError } from '../api/error-catalogue.js';
import { resolveScope } from '../api/scope.js';
import { assertPlanJobQuota, preparePlanJob } from '../api/endpoints/execute-job-plan.js';
import type { Services } from '../services.js';
import type { CronRow, DueCron } from '../store/cron-store.js';
import { isUniqueViolation } from '../store/constraint-errors.js';
import { cronVarsToGiven, scheduleOf } from './cron-values.js';
import { nextTimes, timesBetween } from './cron-schedule.js';
import { assertCronOwnerMayRun } from './cron-owner-access.js';

/** Missed times are looked for this far back at most; older ones are neither fired nor recorded. */
const LOOKBACK_MS = 24 * 3600_000;
/** Skipped times recorded one by one per catch-up, the latest ones. */
const MAX_RECORDED_SKIPS = 100;
/** The longest a tick computes before it lets other work run. */
const YIELD_AFTER_MS = 10;
/**
 * Crons are read whole again at least this often, changed or not: in a cluster, another
 * server's word that it wrote one is lost while this server's listening connection is down.
 */
const READ_ALL_EVERY_MS = 60_000;

/**
 * A cron's next due time as its last visit computed it, and what it was computed from: while
 * that is unchanged and the time has not come, the cron has nothing to do. Computing due times
 * takes croner some 70 µs a cron; each tick doing it for every cron held the server's thread
 * for 1.5 s a second at 10,000 crons.
 */
interface NextDue {
  basis: string;
  /** ms; null when no time is due any more. */
  at: number | null;
}

/** What a cron's due times follow from: its schedule, when it was (re)enabled or saved, its last firing. */
function basisOf(cron: DueCron): string {
  return [
    cron.expression,
    cron.execute_time,
    cron.time_zone,
    cron.end_time,
    cron.enabled_at,
    cron.last_modify_time,
    cron.last_time,
  ].join('|');
}

export class CronScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The previous tick's start: a time due after it is new to the current tick. */
  private seenUpTo = 0;
  /** When the current tick was meant to start. */
  private plannedStart = 0;
  /** By cron id, for the enabled crons of the last tick. */
  private readonly nextDue = new Map<number, NextDue>();
  /**
   * The enabled crons as last read whole, with the store's change count and the time of that
   * read. Each tick read them all (10,000 crons: 17 ms a second on SQLite, 41 ms on PostgreSQL)
   * to find the few whose time had come; now only a tick after a change does.
   */
  private read: { crons: DueCron[]; changes: number; at: number } | undefined;

  constructor(private readonly services: Services) {}

  start(): void {
    this.seenUpTo = this.plannedStart = Date.now();
    const tick = (): void => {
      this.running = this.tick()
        .catch((err: unknown) => this.services.log.error({ err }, 'cron scheduler tick failed'))
        .finally(() => {
          this.running = undefined;
          if (this.stopped) return;
          this.plannedStart = Date.now() + this.services.config.cronTickMs;
          this.timer = setTimeout(tick, this.services.config.cronTickMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async tick(): Promise<void> {
    const tickStart = Date.now();
    try {
      const store = this.services.store.crons;
      const changes = store.changes;
      const fresh =
        this.read === undefined ||
        this.read.changes !== changes ||
        tickStart - this.read.at >= READ_ALL_EVERY_MS;
      if (fresh) {
        // The change count is taken before the read: a write that lands during it moves the count.
        const all = await store.enabledWithLastTime();
        this.read = { crons: all, changes, at: tickStart };
        const enabled = new Set(all.map((c) => c.id));
        for (const id of this.nextDue.keys()) if (!enabled.has(id)) this.nextDue.delete(id);
      }
      const crons = this.read?.crons ?? [];
      let turnStart = performance.now();
      let now = Date.now();
      let unclocked = 0;
      for (const cron of crons) {
        // The clocks are read every 64 crons and after each visit: read for each of 10,000 crons
        // none of which was due, they took most of the tick.
        if (++unclocked >= 64) {
          unclocked = 0;
          if (this.stopped) return;
          // Visits that compute due times run without waiting on anything: the first tick over
          // 10,000 crons would otherwise hold the server's thread for over a second.
          if (performance.now() - turnStart > YIELD_AFTER_MS) {
            await nextTurn();
            turnStart = performance.now();
          }
          now = Date.now();
        }
        const known = this.nextDue.get(cron.id);
        // Crons not read this tick are unchanged (but for their firings, which move no next time).
        if (known && known.at !== null && known.at > now && (!fresh || known.basis === basisOf(cron)))
          continue;
        try {
          // A cron read on an earlier tick is read again: its latest firing may be another server's.
          const current = fresh ? cron : (await store.enabledWithLastTime(cron.id))[0];
          // Stopping (the server closes, or a cluster declared it dead): start no firing.
          if (this.stopped) return;
          if (current) await this.visit(current, Date.now(), tickStart);
          // Disabled or deleted where this server did not see it: the next tick reads every cron.
          else this.read = undefined;
        } catch (err) {
          this.services.log.error({ err, cron: cron.id }, 'cron scheduling failed; retried next tick');
        }
        unclocked = 64;
      }
    } finally {
      // Times this tick could not handle (a failed read or visit) count as missed next time.
      this.seenUpTo = tickStart;
    }
  }

  /**
   * How late a due time is reached. One that came due since the previous tick began is late only
   * by how much later than planned this tick began: the tick period and the other crons fired in
   * this tick are not lateness, so a grace of 0 fires every time a running scheduler reaches on
   * schedule. Any other time was missed (server down, a failed tick) and is late since it was due.
   */
  private lateness(due: number, now: number, tickStart: number): number {
    return due > this.seenUpTo ? tickStart - Math.max(due, this.plannedStart) : now - due;
  }

  private async visit(cron: DueCron, now: number, tickStart: number): Promise<void> {
    const store = this.services.store.crons;
    const schedule = scheduleOf(cron);
    const since = Math.max(cron.enabled_at, (cron.last_time ?? 0) * 1000, now - LOOKBACK_MS);
    const due = timesBetween(schedule, since, now, MAX_RECORDED_SKIPS + 1);
    const latest = due.pop();
    for (const t of due) await store.recordNotFired(cron.id, t / 1000, 'skipped', 'a later time was due');
    if (latest !== undefined) {
      // The grace counts whole seconds, as cron times do: a timer's milliseconds are no lateness.
      if (this.lateness(latest, now, tickStart) < (cron.misfire_grace_seconds + 1) * 1000)
        await this.fire(cron, latest / 1000);
      else
        await store.recordNotFired(
          cron.id,
          latest / 1000,
          'skipped',
          `missed by more than the misfire grace of ${cron.misfire_grace_seconds} s`,
        );
    }
    // The next time after this visit; a firing above changes the basis, so that is computed again.
    const next = nextTimes(schedule, Math.max(now, since), 1)[0] ?? null;
    this.nextDue.set(cron.id, { basis: basisOf(cron), at: next });
    if (next === null && (await store.disableIfUnchanged(cron)))
      this.services.log.info({ cron: cron.id }, 'cron has no further run time; disabled');
  }

  private async fire(cron: DueCron, scheduledTime: number): Promise<void> {
    const store = this.services.store.crons;
    if (await store.hasFiring(cron.id, scheduledTime)) return;
    // The tick read its crons a while ago: one disabled or saved since fires no more from that read.
    const current = await store.get(cron.id);
    if (
      !current?.enabled ||
      current.enabled_at !== cron.enabled_at ||
      current.last_modify_time !== cron.last_modify_time
    )
      return;
    let prepared;
    try {
      const ctx = await this.contextOf(current, scheduledTime);
      await assertCronOwnerMayRun(this.services, ctx.caller, ctx.scope);
      prepared = await preparePlanJob(
        ctx,
        current.job_plan_id,
        cronVarsToGiven(this.services, current),
        true,
      );
      await assertPlanJobQuota(ctx, prepared.job);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      await store.recordNotFired(cron.id, scheduledTime, 'failed', `${err.code}: ${err.message}`);
      this.services.log.warn({ cron: cron.id, code: err.code }, 'cron could not start its plan');
      return;
    }
    try {
      const { jobInstanceId } = await this.services.engine.submit(
        {
          ...prepared.job,
          launchMode: LaunchMode.CRON,
          callbackUrl: null,
          clientRequestId: null,
          cron: { cronId: cron.id, scheduledTime },
        },
        true,
      );
      for (const s of prepared.screened) await s.recordHits(jobInstanceId);
      this.services.log.info({ cron: cron.id, scheduledTime, job: jobInstanceId }, 'cron fired');
    } catch (err) {
      // Another server committed this time first.
      if (isUniqueViolation(err)) return;
      throw err;
    }
  }

  private async contextOf(cron: CronRow, scheduledTime: number): Promise<EndpointContext> {
    const scope = await resolveScope(this.services.store.inventory, {
      bk_scope_type: cron.scope_type as 'biz' | 'biz_set',
      bk_scope_id: cron.scope_id,
    });
    return {
      services: this.services,
      caller: { appCode: cron.app_code, username: cron.last_modify_user, scopes: 'all' },
      scope,
      requestId: `cron-${cron.id}-${scheduledTime}`,
      baseUrl: '',
      log: this.services.log,
    };
  }
}
