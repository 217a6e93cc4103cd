/** get_job_instance_status (spec get_job_instance_status.md; behaviour notes §3.5). */
import { z } from 'zod';
import { isRunFinished } from '../../engine/statuses.js';
import { defineEndpoint } from '../endpoint.js';
import { RawJson } from '../raw-json.js';
import { hostResultsJson } from './host-results-cache.js';
import { cachedReply, rememberReply } from './status-reply-cache.js';
import { zBool, zLong } from '../input-types.js';
import { jobWithStepsInScope, scopeFieldsOf, totalTime } from './job-lookup.js';

export const getJobInstanceStatus = defineEndpoint({
  name: 'get_job_instance_status',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    return_ip_result: zBool.default(false),
  }),
  fieldErrors: { job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const ex = ctx.services.store.executions;
    // A job whose end is being committed right now is answered once it is stored: finished.
    await ctx.services.engine.endingCommit(input.job_instance_id);
    const { job, steps } = await jobWithStepsInScope(ctx, input.job_instance_id);
    const finished = isRunFinished(job.status);
    const jobJson = JSON.stringify({
      finished,
      job_instance: {
        job_instance_id: job.id,
        ...scopeFieldsOf(job),
        name: job.name,
        status: job.status,
        create_time: job.create_time,
        start_time: job.start_time,
        end_time: job.end_time,
        total_time: totalTime(job.start_time, job.end_time),
      },
    });
    const heads = steps.map((s) =>
      JSON.stringify({
        step_instance_id: s.id,
        name: s.name,
        status: s.status,
        type: s.type,
        execute_count: s.execute_count,
        create_time: s.create_time,
        start_time: s.start_time,
        end_time: s.end_time,
        total_time: totalTime(s.start_time, s.end_time),
      }),
    );
    // Everything the reply shows, and the version of each step's host results when it shows them.
    const key = JSON.stringify([
      jobJson,
      heads,
      input.return_ip_result ? steps.map((s) => Number(s.hosts_version)) : null,
    ]);
    const cached = cachedReply(ctx.services.store, key);
    if (cached !== undefined) return new RawJson(cached);
    const stepList: string[] = [];
    for (const [i, s] of steps.entries()) {
      const hosts = input.return_ip_result ? await hostResultsJson(ctx.services.store, ex, s) : 'null';
      stepList.push(`${heads[i]!.slice(0, -1)},"step_ip_result_list":${hosts}}`);
    }
    const bytes = Buffer.from(`${jobJson.slice(0, -1)},"step_instance_list":[${stepList.join(',')}]}`);
    rememberReply(ctx.services.store, key, bytes);
    return new RawJson(bytes);
  },
});
