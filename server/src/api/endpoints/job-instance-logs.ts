/**
 * get_job_instance_ip_log and batch_get_job_instance_ip_log (behaviour notes §3.8, §3.9, §6):
 * the full stored log of each host for the step's latest execution.
 */
import { z } from 'zod';
import type { HostTask, StepInstance } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { IpEntry, zLong } from '../input-types.js';
import { jobInScope, stepOfJob } from './job-lookup.js';

const MAX_BATCH_HOSTS = 500;

async function logOf(
  ctx: EndpointContext,
  step: StepInstance,
  task: HostTask | undefined,
): Promise<string | null> {
  if (!task || task.log_bytes === 0) return null;
  const bytes = await ctx.services.store.executions.readLog(step.id, step.execute_count, task.host_id);
  return bytes.toString('utf8');
}

export const getJobInstanceIpLog = defineEndpoint({
  name: 'get_job_instance_ip_log',
  kind: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    bk_host_id: zLong.optional(),
    bk_cloud_id: zLong.optional(),
    ip: z.string().optional(),
  }),
  fieldErrors: {
    job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    step_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    if (input.bk_host_id === undefined && (input.bk_cloud_id === undefined || !input.ip)) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'bk_host_id|(bk_cloud_id,ip)',
        reason: 'give bk_host_id, or bk_cloud_id and ip',
      });
    }
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepOfJob(ctx, job, input.step_instance_id, 'TASK_INSTANCE_NOT_EXIST');
    const tasks = await ctx.services.store.executions.listHostTasks(step.id, step.execute_count);
    const task =
      input.bk_host_id !== undefined
        ? tasks.find((t) => t.host_id === input.bk_host_id)
        : tasks.find((t) => t.cloud_id === input.bk_cloud_id && t.ip === input.ip);
    return {
      log_type: 1,
      bk_host_id: task?.host_id ?? input.bk_host_id ?? null,
      bk_cloud_id: task?.cloud_id ?? input.bk_cloud_id ?? null,
      ip: task?.ip ?? input.ip ?? null,
      log_content: await logOf(ctx, step, task),
      file_logs: null,
    };
  },
});

export const batchGetJobInstanceIpLog = defineEndpoint({
  name: 'batch_get_job_instance_ip_log',
  kind: 'write',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    host_id_list: z.array(zLong).optional(),
    ip_list: z.array(IpEntry).optional(),
  }),
  fieldErrors: {
    job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    step_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    host_id_list: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    ip_list: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    const byId = input.host_id_list !== undefined && input.host_id_list.length > 0;
    const wanted = byId ? (input.host_id_list ?? []) : (input.ip_list ?? []);
    if (wanted.length === 0) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'host_id_list|ip_list',
        reason: 'give host_id_list or ip_list',
      });
    }
    if (wanted.length > MAX_BATCH_HOSTS) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: byId ? 'host_id_list' : 'ip_list',
        reason: `at most ${MAX_BATCH_HOSTS} hosts per call`,
      });
    }
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepOfJob(ctx, job, input.step_instance_id, 'TASK_INSTANCE_NOT_EXIST');
    const tasks = await ctx.services.store.executions.listHostTasks(step.id, step.execute_count);
    const picked = byId
      ? [...new Set(input.host_id_list)].map((id) => tasks.find((t) => t.host_id === id))
      : (input.ip_list ?? []).map((p) => tasks.find((t) => t.cloud_id === p.bk_cloud_id && t.ip === p.ip));
    const logs = [];
    for (const t of picked) {
      if (!t) continue;
      logs.push({
        host_id: t.host_id,
        bk_host_id: t.host_id,
        bk_cloud_id: t.cloud_id,
        ip: t.ip,
        ipv6: t.ipv6,
        log_content: await logOf(ctx, step, t),
      });
    }
    return {
      job_instance_id: job.id,
      step_instance_id: step.id,
      log_type: 1,
      script_task_logs: logs,
      file_task_logs: null,
    };
  },
});
