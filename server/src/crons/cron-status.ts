/** Enabling and disabling a cron, for update_cron_status and the admin API alike. */
import { ApiError } from '../api/error-catalogue.js';
import type { CronRow } from '../store/cron-store.js';
import type { Store } from '../store/store.js';
import { nextTimes } from './cron-schedule.js';
import { scheduleOf } from './cron-values.js';

export async function setCronEnabled(
  store: Store,
  row: CronRow,
  enable: boolean,
  user: string,
): Promise<void> {
  if (enable && nextTimes(scheduleOf(row), Date.now(), 1).length === 0)
    throw new ApiError('UPDATE_CRON_JOB_FAILED', {
      id: row.id,
      reason: 'it has no run time left (its execute_time or end_time has passed)',
    });
  await store.crons.update(row.id, {
    enabled: enable ? 1 : 0,
    // Times before enabling are not due: a cron that was off does not catch up.
    ...(enable && !row.enabled ? { enabled_at: Date.now() } : {}),
    last_modify_user: user,
    last_modify_time: Math.floor(Date.now() / 1000),
  });
}
