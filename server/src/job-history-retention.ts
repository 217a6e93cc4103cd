/**
 * Job history retention: finished jobs older than the retention are removed with everything
 * recorded for them (store/job-history-store.ts), crons' firings older than it (each cron's
 * latest kept) and files the server holds that nothing named for as long
 * (files/stored-file-retention.ts), once at start and then hourly. Jobs that are not finished are
 * kept however long they run or wait.
 */
import type { FastifyBaseLogger } from 'fastify';
import { FINISHED_RUN_STATUSES } from './engine/statuses.js';
import type { FileBodies } from './files/file-bodies.js';
import { pruneUnusedFiles } from './files/stored-file-retention.js';
import { DAY_MS, startHourlyPrune } from './hourly-prune.js';
import type { CronStore } from './store/cron-store.js';
import type { FileStore } from './store/file-store.js';
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
  store: { history: JobHistoryStore; crons: CronStore; files: FileStore },
  bodies: FileBodies,
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
  const files = startHourlyPrune({
    what: 'unused stored files',
    retentionDays,
    prune: (before) => pruneUnusedFiles(store.files, bodies, before, FINISHED_RUN_STATUSES),
    log,
  });
  return {
    stop() {
      jobs.stop();
      firings.stop();
      files.stop();
    },
  };
}
