/** get_job_instance_list (behaviour notes §3.10): newest first, at most 30 days per query. */
import { z } from 'zod';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zInt, zLong } from '../input-types.js';
import { scopeFieldsOf, totalTime } from './job-lookup.js';

const MAX_JOB_NAME_LENGTH = 512;
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

export const getJobInstanceList = defineEndpoint({
  name: 'get_job_instance_list',
  kind: 'read',
  permission: 'read',
  input: z.object({
    create_time_start: zLong.pipe(z.number().min(1)),
    create_time_end: zLong.pipe(z.number().min(1)),
    job_instance_id: zLong.optional(),
    job_cron_id: zLong.optional(),
    operator: z.string().optional(),
    // Job names are at most 512 characters (task_name), so a longer filter can match nothing; it
    // is refused rather than handed to the database as a pattern too large to compile.
    name: z.string().max(MAX_JOB_NAME_LENGTH).optional(),
    launch_mode: zInt.optional(),
    type: zInt.optional(),
    status: zInt.optional(),
    ip: z.string().optional(),
    // A negative start is the first page, as BK-JOB reads it.
    start: zInt.default(0).transform((n) => Math.max(0, n)),
    length: zInt.pipe(z.number().min(1).max(1000)).default(20),
  }),
  fieldErrors: {
    name: 'ILLEGAL_PARAM',
    create_time_start: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    create_time_end: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    if (input.create_time_end <= input.create_time_start) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'create_time_end',
        reason: 'must be after create_time_start',
      });
    }
    if (input.create_time_end - input.create_time_start > THIRTY_DAYS_MS) {
      throw new ApiError('ILLEGAL_PARAM', {
        reason: 'create_time_start..create_time_end spans more than 30 days',
      });
    }
    if (input.type !== undefined && ![0, 1, 2].includes(input.type)) {
      throw new ApiError('ILLEGAL_PARAM', { reason: 'type must be 0 plan, 1 script or 2 file' });
    }
    const scope = { scopeType: ctx.scope.type, scopeId: String(ctx.scope.id) };
    const paging = { start: input.start, length: input.length };
    // A job id names one job: BK-JOB then ignores every other criterion, the time range included
    // (its documents say so too), so a caller looking a job up by id finds it however old it is.
    const byId = input.job_instance_id !== undefined && input.job_instance_id > 0;
    const { total, jobs } = await ctx.services.store.executions.listJobs(
      byId
        ? { ...scope, jobInstanceId: input.job_instance_id, ...(input.ip ? { ip: input.ip } : {}), ...paging }
        : {
            ...scope,
            createTimeStart: input.create_time_start,
            createTimeEnd: input.create_time_end,
            // Blank text and a cron id of 0 filter nothing (BK-JOB's isNotBlank and > 0 checks):
            // clients that cannot leave a field out send them.
            ...(input.operator?.trim() ? { operator: input.operator } : {}),
            ...(input.name?.trim() ? { name: input.name } : {}),
            ...(input.launch_mode !== undefined ? { launchMode: input.launch_mode } : {}),
            ...(input.job_cron_id !== undefined && input.job_cron_id > 0
              ? { cronId: input.job_cron_id }
              : {}),
            ...(input.type !== undefined ? { type: input.type } : {}),
            ...(input.status !== undefined ? { status: input.status } : {}),
            ...(input.ip ? { ip: input.ip } : {}),
            ...paging,
          },
    );
    return {
      start: input.start,
      length: input.length,
      total,
      data: jobs.map((j) => ({
        ...scopeFieldsOf(j),
        // BK-JOB's code sends job_instance_id, its documents show id: clients read either.
        job_instance_id: j.id,
        id: j.id,
        job_plan_id: j.job_plan_id === null ? null : Number(j.job_plan_id),
        job_template_id: j.job_template_id === null ? null : Number(j.job_template_id),
        name: j.name,
        operator: j.operator,
        launch_mode: j.launch_mode,
        job_cron_id: j.cron_id ?? null,
        status: j.status,
        type: j.type,
        create_time: j.create_time,
        start_time: j.start_time,
        end_time: j.end_time,
        total_time: totalTime(j.start_time, j.end_time),
      })),
    };
  },
});
