/**
 * get_job_instance_operation_list (Jobfleet extension): who did what to a job, for the console's
 * operation records (BK-JOB's job page has such a panel; its API has no call for it). The launch
 * comes from the job itself (so a cron's start is there too); the operations after it (start,
 * terminate, retry, skip, ignore error, confirm...) from the audit log, which records every API
 * write with its operation code, refused ones included.
 */
import { defineEndpoint } from '../endpoint.js';
import { JobInstanceRead, jobInScope } from './job-lookup.js';

/** Most entries one reply carries (a job retried this often is already unusual). */
const MAX_RECORDS = 1000;

const JOB_OPERATIONS: Record<number, string> = { 1: 'terminate', 2: 'start' };
const STEP_OPERATIONS: Record<number, string> = {
  2: 'retry_failed',
  3: 'ignore_error',
  6: 'confirm_continue',
  8: 'retry_all',
  9: 'confirm_terminate',
  10: 'confirm_restart',
  11: 'next_step',
  12: 'force_skip',
  13: 'rolling_continue',
};
/** Calls that create the job: the job row already tells its launch. */
const LAUNCHES = new Set([
  'fast_execute_script',
  'fast_execute_sql',
  'fast_transfer_file',
  'push_config_file',
  'execute_job_plan',
]);

function operationOf(action: string, code: number | undefined): string {
  const table =
    action === 'operate_job_instance'
      ? JOB_OPERATIONS
      : action === 'operate_step_instance'
        ? STEP_OPERATIONS
        : undefined;
  if (!table) return action;
  return (code !== undefined ? table[code] : undefined) ?? `${action}:${code ?? '?'}`;
}

export const getJobInstanceOperationList = defineEndpoint({
  name: 'get_job_instance_operation_list',
  kind: 'read',
  permission: 'read',
  ...JobInstanceRead,
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const entries = await ctx.services.store.audit.listForTarget(
      `job_instance:${job.id}`,
      { type: job.scope_type, id: String(job.scope_id) },
      job.create_time,
      MAX_RECORDS,
    );
    const list = [
      {
        time: job.create_time,
        operator: job.operator,
        app_code: job.app_code,
        operation: 'launch',
        launch_mode: job.launch_mode,
        step_instance_id: null as number | null,
        result: true,
        code: 0,
      },
    ];
    for (const e of entries) {
      if (!LAUNCHES.has(e.action) && !e.action.startsWith('operate_')) continue;
      if (LAUNCHES.has(e.action) && e.outcome === 'ok') continue;
      const detail = JSON.parse(e.detail || '{}') as { operation_code?: number };
      const step = /(?:^| )step_instance:(\d+)/.exec(e.target);
      list.push({
        time: e.at,
        operator: e.username,
        app_code: e.app_code,
        operation: operationOf(e.action, detail.operation_code),
        launch_mode: job.launch_mode,
        step_instance_id: step ? Number(step[1]) : null,
        result: e.outcome === 'ok',
        code: e.code,
      });
    }
    return { job_instance_id: job.id, operation_list: list };
  },
});
