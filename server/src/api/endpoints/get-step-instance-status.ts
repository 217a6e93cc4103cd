/** get_step_instance_status (behaviour notes §3.6): a step's hosts grouped by (status, tag). */
import { z } from 'zod';
import { HOST_STATUS_DESC } from '../../engine/statuses.js';
import type { HostTask } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import { zInt, zLong } from '../input-types.js';
import { RawJson } from '../raw-json.js';
import { jobInScope, stepOfJob, totalTime } from './job-lookup.js';
import { cachedReply, rememberReply } from './status-reply-cache.js';

interface Group {
  result_type: number;
  result_type_desc: string;
  tag: string;
  host_size: number;
  host_result_list: ReturnType<typeof hostResult>[];
}

function hostResult(t: HostTask) {
  return {
    bk_host_id: t.host_id,
    ip: t.ip,
    ipv6: t.ipv6,
    bk_agent_id: t.agent_id ?? '',
    bk_cloud_id: t.cloud_id,
    bk_cloud_name: t.cloud_id === 0 ? 'Default Area' : `Cloud ${t.cloud_id}`,
    status: t.status,
    status_desc: HOST_STATUS_DESC[t.status] ?? 'Unknown',
    tag: t.tag,
    exit_code: t.exit_code ?? 0,
    start_time: t.start_time,
    end_time: t.end_time,
    total_time: totalTime(t.start_time, t.end_time),
  };
}

export const getStepInstanceStatus = defineEndpoint({
  name: 'get_step_instance_status',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    execute_count: zInt.pipe(z.number().min(0)).optional(),
    batch: zInt.pipe(z.number().min(0)).optional(),
    max_host_num_per_group: zInt.pipe(z.number().min(1)).optional(),
    keyword: z.string().optional(),
    search_ip: z.string().optional(),
    status: zInt.optional(),
    tag: z.string().optional(),
  }),
  // Required query parameters of BK-JOB's Spring handler: missing or bad, 1240003 (§2.2).
  fieldErrors: { job_instance_id: 'BAD_REQUEST', step_instance_id: 'BAD_REQUEST' },
  async handle(ctx, input) {
    const ex = ctx.services.store.executions;
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepOfJob(ctx, job, input.step_instance_id);
    const executeCount = input.execute_count ?? step.execute_count;
    // The step as read (its hosts_version moves with every host result of it, its
    // execute_count with a retry) and the question asked make the reply; a keyword search
    // reads the hosts' output, which they do not cover. A poll of a large step then reads no
    // host (10,000 hosts: a reply of 2.5 MB built each time).
    const key = input.keyword === undefined ? JSON.stringify(['step status', step, input]) : undefined;
    const cached = key === undefined ? undefined : cachedReply(ctx.services.store, key);
    if (cached !== undefined) return new RawJson(cached);
    let tasks = await ex.listHostTasks(step.id, executeCount);
    // Rolling steps: no batch = the current batch only, 0 = every batch, n = batch n (behaviour notes §3.6).
    if (step.current_batch > 0 && input.batch !== 0) {
      const batch = input.batch ?? step.current_batch;
      tasks = tasks.filter((t) => t.batch === batch);
    }
    if (input.search_ip) tasks = tasks.filter((t) => t.ip.includes(input.search_ip ?? ''));
    if (input.keyword) {
      const found = new Set<number>();
      // A host kept as "last success" has its output in the attempt that ran it.
      for (const [attempt, inAttempt] of await ctx.services.outputs.outputAttempts(tasks)) {
        const ids = inAttempt.map((t) => t.host_id);
        for (const id of await ex.hostsWithLogContaining(step.id, attempt, ids, input.keyword)) found.add(id);
      }
      tasks = tasks.filter((t) => found.has(t.host_id));
    }
    const groups = new Map<string, Group>();
    for (const t of tasks) {
      const key = `${t.status}\u0000${t.tag}`;
      let g = groups.get(key);
      if (!g) {
        g = {
          result_type: t.status,
          result_type_desc: HOST_STATUS_DESC[t.status] ?? 'Unknown',
          tag: t.tag,
          host_size: 0,
          host_result_list: [],
        };
        groups.set(key, g);
      }
      g.host_size++;
      const listed = input.status === undefined || input.status === t.status;
      const room =
        input.max_host_num_per_group === undefined ||
        g.host_result_list.length < input.max_host_num_per_group;
      if (listed && room && (input.tag === undefined || input.tag === t.tag))
        g.host_result_list.push(hostResult(t));
    }
    const data: Record<string, unknown> = {
      step_instance_id: step.id,
      execute_count: executeCount,
      name: step.name,
      type: step.type,
      status: step.status,
      create_time: step.create_time,
      start_time: step.start_time,
      end_time: step.end_time,
      total_time: totalTime(step.start_time, step.end_time),
    };
    if (groups.size > 0) data.step_result_group_list = [...groups.values()];
    const bytes = Buffer.from(JSON.stringify(data));
    if (key !== undefined) rememberReply(ctx.services.store, key, bytes);
    return new RawJson(bytes);
  },
});
