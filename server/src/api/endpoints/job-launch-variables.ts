/**
 * get_job_instance_variable_list (Jobfleet extension): the global variables of a plan's job as
 * they were at launch, every type (get_job_instance_global_var_value answers string variables
 * only, as BK-JOB does). Cipher values are masked; a namespace variable gives each host's value,
 * a host-list variable its hosts.
 */
import type { VarState } from '../../engine/job-variables.js';
import { CIPHER_MASK, VarType } from '../../plans/plan-shapes.js';
import { defineEndpoint } from '../endpoint.js';
import { JobInstanceRead, jobInScope } from './job-lookup.js';

export const getJobInstanceVariableList = defineEndpoint({
  name: 'get_job_instance_variable_list',
  kind: 'read',
  permission: 'read',
  ...JobInstanceRead,
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const states = await ctx.services.store.plans.varStates(job.id);
    const launch = states.find((s) => s.stepInstanceId === 0)?.body;
    const vars = launch ? (JSON.parse(launch) as VarState) : [];
    return {
      job_instance_id: job.id,
      global_var_list: vars.map((v) => ({
        name: v.name,
        type: v.type,
        value: v.type === VarType.CIPHER ? (v.sealed ? CIPHER_MASK : '') : (v.value ?? ''),
        ...(v.hosts ? { host_values: v.hosts } : {}),
        ...(v.server ? { server: v.server } : {}),
      })),
    };
  },
});
