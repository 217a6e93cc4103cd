/**
 * get_job_instance_global_var_value (behaviour notes §3.11): the values each script step of a
 * plan's job ended with, as BK-JOB computes them: every script step is listed, a step not yet
 * run (or that changed nothing) with the values carried to it; file, confirmation and SQL steps
 * are not listed. Only string variables (type 1) are returned.
 */
import { z } from 'zod';
import type { VarState } from '../../engine/job-variables.js';
import { StepType } from '../../engine/statuses.js';
import { VarType } from '../../plans/plan-shapes.js';
import { defineEndpoint } from '../endpoint.js';
import { zLong } from '../input-types.js';
import { jobWithStepsInScope } from './job-lookup.js';

export const getJobInstanceGlobalVarValue = defineEndpoint({
  name: 'get_job_instance_global_var_value',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_instance_id: zLong.pipe(z.number().min(1)) }),
  fieldErrors: { job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const { job, steps } = await jobWithStepsInScope(ctx, input.job_instance_id);
    const states = await ctx.services.store.plans.varStates(job.id);
    let current = states.find((s) => s.stepInstanceId === 0)?.body;
    const list = [];
    for (const step of steps) {
      const mine = states.filter((s) => s.stepInstanceId === step.id).pop();
      if (mine) current = mine.body;
      if (step.type !== StepType.SCRIPT || current === undefined) continue;
      list.push({
        step_instance_id: step.id,
        global_var_list: (JSON.parse(current) as VarState)
          .filter((v) => v.type === VarType.STRING)
          .map((v) => ({ name: v.name, value: v.value ?? '', type: v.type })),
      });
    }
    return { job_instance_id: job.id, step_instance_var_list: list };
  },
});
