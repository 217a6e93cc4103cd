/**
 * Job event retention: the event log (what the job and scope streams replay) would otherwise
 * grow with every status change and output append forever. Events of a finished job older than
 * the retention are removed; a job that is not finished keeps all of its events, so a stream of
 * it resumes exactly however long it runs or waits. A finished job whose events are gone still
 * has its status and logs: only the replay of its changes is lost.
 */
import type { FastifyBaseLogger } from 'fastify';
import { FINISHED_RUN_STATUSES } from '../engine/statuses.js';
import { DAY_MS, startHourlyPrune } from '../hourly-prune.js';
import type { JobEventLog } from '../store/job-event-log.js';

export async function pruneJobEvents(
  events: JobEventLog,
  retentionDays: number,
  now = Date.now(),
): Promise<number> {
  if (retentionDays <= 0) return 0;
  return events.prune(now - retentionDays * DAY_MS, FINISHED_RUN_STATUSES);
}

export function startJobEventRetention(
  events: JobEventLog,
  retentionDays: number,
  log: FastifyBaseLogger,
): { stop(): void } {
  return startHourlyPrune({
    what: 'job events',
    retentionDays,
    prune: (before) => events.prune(before, FINISHED_RUN_STATUSES),
    log,
  });
}
