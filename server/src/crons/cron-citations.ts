/** A plan a cron runs cannot be deleted (nor the template it belongs to). */
import { ApiError } from '../api/error-catalogue.js';
import { describeCiters } from '../store/library-references.js';
import type { Store } from '../store/store.js';

export async function assertNoCronRuns(store: Store, planIds: number[]): Promise<void> {
  const citing = await store.crons.citingPlans(planIds);
  const first = citing[0];
  if (!first) return;
  const planId = (await store.crons.get(first.id))?.job_plan_id ?? planIds[0] ?? 0;
  throw new ApiError('JOB_PLAN_USED_BY_CRON', {
    id: planId,
    crons: describeCiters(citing.map((c) => `${c.id} (${c.name})`)),
  });
}
