/**
 * get_job_instance_ip_log and batch_get_job_instance_ip_log (behaviour notes §3.8, §3.9, §6):
 * the full stored log of each host for the step's latest execution.
 */
import { z } from 'zod';
import type { HostTask, StepInstance } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { humanSize, humanSpeed, progressText } from '../../engine/file-log-line.js';
import { HostStatus, StepType } from '../../engine/statuses.js';
import type { FileLog } from '../../store/file-store.js';
import { IpEntry, zInt, zLong } from '../input-types.js';
import { jobInScope, stepOfJob } from './job-lookup.js';

const MAX_BATCH_HOSTS = 500;

/**
 * A host's log for one execution. A host kept as "last success" (3) by a retry did not run in
 * that execution: its log is the one of the execution that ran it (behaviour notes §6).
 */
async function logOf(
  ctx: EndpointContext,
  step: StepInstance,
  executeCount: number,
  task: HostTask | undefined,
): Promise<string | null> {
  if (!task) return null;
  const ex = ctx.services.store.executions;
  let count = executeCount;
  if (task.status === HostStatus.LAST_SUCCESS)
    count = (await ex.lastSuccessfulRun(step.id, task.host_id, executeCount)) ?? executeCount;
  const bytes = await ex.readLog(step.id, count, task.host_id);
  return bytes.length === 0 ? null : bytes.toString('utf8');
}

type Ip = { bk_host_id: number; bk_cloud_id: number | null; ip: string | null };

/** "cloud:ip" labels back into BK-JOB's ip objects (null parts when the label is not of that form). */
function ipOf(hostId: number, label: string): Ip {
  const m = /^(\d+):(.+)$/.exec(label);
  return { bk_host_id: hostId, bk_cloud_id: m ? Number(m[1]) : null, ip: m ? (m[2] ?? null) : null };
}

function fullIp(hostId: number, label: string) {
  return { ...ipOf(hostId, label), bk_cloud_name: null, ipv6: null, bk_agent_id: null, alive: null };
}

/** File logs of a host: its downloads (mode 1) and, when asked, the uploads of the sources (mode 0). */
function fileLogsOf(logs: readonly FileLog[], hostId: number, withSourceUploads: boolean, detailed: boolean) {
  return logs
    .filter(
      (l) =>
        (l.mode === 1 && l.host_id === hostId) ||
        (l.mode === 0 && (withSourceUploads || l.host_id === hostId)),
    )
    .map((l) => ({
      mode: l.mode,
      src_ip: detailed ? fullIp(l.src_host_id, l.src_label) : ipOf(l.src_host_id, l.src_label),
      src_path: l.src_path,
      ...(l.mode === 1
        ? {
            dest_ip: detailed ? fullIp(l.dest_host_id, l.dest_label) : ipOf(l.dest_host_id, l.dest_label),
            dest_path: l.dest_path,
          }
        : {}),
      status: l.status,
      log_content: l.content,
      size: detailed ? humanSize(l.size) : null,
      speed: detailed ? humanSpeed(l.speed) : null,
      process: detailed ? progressText(l.bytes, l.size) : null,
    }));
}

/** Jobfleet extension: `execute_count` picks an earlier attempt; the latest when omitted (BK-JOB behaviour). */
const ExecuteCount = zInt.pipe(z.number().min(0)).optional();

export const getJobInstanceIpLog = defineEndpoint({
  name: 'get_job_instance_ip_log',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    bk_host_id: zLong.optional(),
    bk_cloud_id: zLong.optional(),
    ip: z.string().optional(),
    execute_count: ExecuteCount,
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
    const executeCount = input.execute_count ?? step.execute_count;
    const tasks = await ctx.services.store.executions.listHostTasks(step.id, executeCount);
    const task =
      input.bk_host_id !== undefined
        ? tasks.find((t) => t.host_id === input.bk_host_id)
        : tasks.find((t) => t.cloud_id === input.bk_cloud_id && t.ip === input.ip);
    const hostId = task?.host_id ?? input.bk_host_id ?? null;
    const where = {
      bk_host_id: hostId,
      bk_cloud_id: task?.cloud_id ?? input.bk_cloud_id ?? null,
      ip: task?.ip ?? input.ip ?? null,
    };
    if (step.type === StepType.FILE) {
      const logs = await ctx.services.store.files.fileLogs(step.id, executeCount);
      return {
        log_type: 2,
        ...where,
        log_content: null,
        file_logs: hostId === null ? [] : fileLogsOf(logs, hostId, true, false),
      };
    }
    return {
      log_type: 1,
      ...where,
      log_content: await logOf(ctx, step, executeCount, task),
      file_logs: null,
    };
  },
});

export const batchGetJobInstanceIpLog = defineEndpoint({
  name: 'batch_get_job_instance_ip_log',
  kind: 'write',
  permission: 'read',
  // POST only, as BK-JOB serves it, but it changes nothing: no audit entry.
  audited: false,
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    host_id_list: z.array(zLong).optional(),
    ip_list: z.array(IpEntry).optional(),
    execute_count: ExecuteCount,
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
    const executeCount = input.execute_count ?? step.execute_count;
    const tasks = await ctx.services.store.executions.listHostTasks(step.id, executeCount);
    if (step.type === StepType.FILE) {
      // Sources are not tasks of the step: hosts named here may be sources, looked up in the inventory.
      const inv = ctx.services.store.inventory;
      const hosts = byId
        ? await inv.getHostsByIds([...new Set(input.host_id_list)])
        : await inv.getHostsByCloudIps(
            (input.ip_list ?? []).map((p) => ({ cloudId: p.bk_cloud_id, ip: p.ip })),
          );
      const logs = await ctx.services.store.files.fileLogs(step.id, executeCount);
      return {
        job_instance_id: job.id,
        step_instance_id: step.id,
        log_type: 2,
        script_task_logs: null,
        file_task_logs: hosts.map((h) => ({
          bk_host_id: h.id,
          bk_cloud_id: h.cloud_id,
          ip: h.ip,
          file_logs: fileLogsOf(logs, h.id, false, true),
        })),
      };
    }
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
        log_content: await logOf(ctx, step, executeCount, t),
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
