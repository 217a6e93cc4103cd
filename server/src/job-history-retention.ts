/**
 * Job history retention: finished jobs older than the retention are removed with everything
 * recorded for them (store/job-history-store.ts), and crons' firings older than it (each cron's
 * latest kept), once at start and then hourly. Jobs that are not finished are kept however long
 * they run or wait.
 */
import type { FastifyBaseLogger } from 'fastify';
import { FINISHED_RUN_STATUSES } from './engine/statuses.js';
import { DAY_MS, startHourlyPrune } from './hourly-prune.js';
import type { CronStore } from './store/cron-store.js';
import type { JobHistoryStore } from './store/job-history-store.js';

export async function pruneJobHistory(
  history: JobHistoryStore,
  retentionDays: number,
  now = Date.now(),
  page?: number,
): Promise<number> {
  if (retentionDays <= 0) return 0;
  return history.pruneFinishedBefore(now - retentionDays * DAY_MS, FINISHED_RUN_STATUSES, page);
}

export function startJobHistoryRetention(
  store: { history: JobHistoryStore; crons: CronStore },
  retentionDays: number,
  log: FastifyBaseLogger,
): { stop(): void } {
  const jobs = startHourlyPrune({
    what: 'finished jobs',
    retentionDays,
    prune: (before) => store.history.pruneFinishedBefore(before, FINISHED_RUN_STATUSES),
    log,
  });
  const firings = startHourlyPrune({
    what: 'cron firings',
    retentionDays,
    prune: (before) => store.crons.pruneFiringsBefore(Math.floor(before / 1000)),
    log,
  });
  return {
    stop() {
      jobs.stop();
      firings.stop();
    },
  };
}
