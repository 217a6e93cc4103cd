/**
 * get_job_instance_callback_list (Jobfleet extension; not in BK-JOB): every callback of a job
 * with each delivery attempt, so an operator can see whether the receiver got it.
 */
import { z } from 'zod';
import { tryOpenCallbackUrl } from '../../engine/callback-url.js';
import { defineEndpoint } from '../endpoint.js';
import { zLong } from '../input-types.js';
import { jobInScope } from './job-lookup.js';

const urlOf = (opened: { url: string } | { error: string }) => ('url' in opened ? opened.url : null);

export const getJobInstanceCallbackList = defineEndpoint({
  name: 'get_job_instance_callback_list',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_instance_id: zLong.pipe(z.number().min(1)) }),
  fieldErrors: { job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const callbacks = await ctx.services.store.executions.callbacksOfJob(job.id);
    return {
      job_instance_id: job.id,
      callback_list: callbacks.map((c) => ({
        // Null when it does not open: its attempts say why it was not sent.
        url: urlOf(tryOpenCallbackUrl(ctx.services.secretBox, c.url)),
        state: c.state,
        attempts: c.attempts,
        next_attempt_time: c.state === 'pending' ? c.next_attempt_at : null,
        payload: JSON.parse(c.payload) as unknown,
        attempt_list: c.attempt_log,
      })),
    };
  },
});
