/** A plan a cron runs cannot be deleted (nor the template it belongs to). */
import { ApiError } from '../api/error-catalogue.js';
import type { CronCiter } from '../store/cron-store.js';
import { describeCiters } from '../store/library-references.js';

/** Refuses a delete that found crons running the plans it would delete (nothing was deleted). */
export function refuseIfCronsRun(citing: CronCiter[]): void {
  const first = citing[0];
  if (!first) return;
  throw new ApiError('JOB_PLAN_USED_BY_CRON', {
    id: first.job_plan_id,
    crons: describeCiters(citing.map((c) => `${c.id} (${c.name})`)),
  });
}
