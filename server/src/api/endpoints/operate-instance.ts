/** operate_job_instance and operate_step_instance (behaviour notes §3.12, §3.13, §4.6). */
import { z } from 'zod';
import type { OperationRefusal } from '../../engine/engine.js';
import { RunStatus } from '../../engine/statuses.js';
import { parseStepSpec } from '../../engine/step-spec.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { assertScopeQuota } from '../scope-quota.js';
import { zInt, zLong } from '../input-types.js';
import { jobInScope, stepWithSpecOfJob } from './job-lookup.js';

const positiveId = zLong.pipe(z.number().min(1));
const ILLEGAL = {
  job_instance_id: 'ILLEGAL_PARAM',
  step_instance_id: 'ILLEGAL_PARAM',
  operation_code: 'ILLEGAL_PARAM',
} as const;

function refuse(r: OperationRefusal | undefined, what: string, jobInstanceId: number): void {
  if (r === undefined) return;
  if (r === 'repeat_start') throw new ApiError('REPEAT_START_JOB', { jobInstanceId });
  if (r === 'not_found') throw new ApiError('TASK_INSTANCE_NOT_EXIST', { jobInstanceId });
  throw new ApiError('UNSUPPORTED_OPERATION', { reason: what });
}

export const operateJobInstance = defineEndpoint({
  name: 'operate_job_instance',
  kind: 'write',
  permission: 'run',
  input: z.object({
    job_instance_id: positiveId,
    operation_code: zInt.pipe(z.union([z.literal(1), z.literal(2)])),
  }),
  fieldErrors: ILLEGAL,
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const engine = ctx.services.engine;
    if (input.operation_code === 1) {
      refuse(
        await engine.terminate(job.id),
        `job ${job.id} is not running (status ${job.status}); only running or waiting jobs can be terminated`,
        job.id,
      );
    } else {
      // A job created with start_task false counts against the quotas once it is started.
      if (job.status === RunStatus.PENDING)
        await assertScopeQuota(ctx, await ctx.services.store.quotas.hostsOfJob(job.id));
      refuse(await engine.start(job.id), '', job.id);
    }
    return { job_instance_id: job.id };
  },
});

const STEP_OPERATIONS = [2, 3, 8, 11, 12, 13] as const;
const PRECONDITION: Record<(typeof STEP_OPERATIONS)[number], string> = {
  2: 'retry failed hosts needs a failed, abnormal or terminated step (status 4, 9 or 11)',
  3: 'ignore error needs a failed or abnormal step (status 4 or 9)',
  8: 'retry all hosts needs a failed, abnormal or terminated step (status 4, 9 or 11)',
  11: 'next step needs a terminated step (status 11)',
  12: 'force skip needs a stopping step (status 10)',
  13: 'rolling continue needs a rolling step waiting for confirmation (status 7)',
};

const CONFIRM_PRECONDITION = {
  6: 'confirm continue needs a confirmation step waiting for its approvers (status 7)',
  9: 'confirm terminate needs a confirmation step waiting for its approvers (status 7)',
  10: 'confirm restart needs a terminated confirmation step (status 13)',
};

export const operateStepInstance = defineEndpoint({
  name: 'operate_step_instance',
  kind: 'write',
  permission: 'run',
  input: z.object({
    job_instance_id: positiveId,
    step_instance_id: positiveId,
    operation_code: zInt,
    /** Jobfleet extension: why a confirmation was continued or terminated (kept in step detail). */
    confirm_reason: z.string().max(1024).optional(),
  }),
  fieldErrors: ILLEGAL,
  async handle(ctx, input) {
    const op = input.operation_code;
    // BK-JOB checks the code before it looks anything up (1241002 before 1244007).
    if (op !== 6 && op !== 9 && op !== 10 && !STEP_OPERATIONS.includes(op as 2)) {
      throw new ApiError('ILLEGAL_PARAM', {
        reason: `operation_code ${op} is not one of 2, 3, 6, 8, 9, 10, 11, 12, 13`,
      });
    }
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepWithSpecOfJob(ctx, job, input.step_instance_id);
    if (op === 6 || op === 9 || op === 10) {
      const spec = parseStepSpec(step.spec);
      if (spec.kind !== 'confirm') {
        throw new ApiError('UNSUPPORTED_OPERATION', {
          reason: `operation ${op} applies to manual confirmation steps, and step ${step.id} is not one`,
        });
      }
      const user = ctx.caller.username;
      // A step that is not waiting is refused for its status first, approver or not (as BK-JOB).
      if (op !== 10 && step.status !== 7)
        refuse(
          'bad_state',
          `${CONFIRM_PRECONDITION[op]}; step ${step.id} is at status ${step.status}`,
          job.id,
        );
      if (op !== 10 && !spec.approvers.includes(user)) {
        throw new ApiError('NOT_IN_CONFIRM_USER_LIST', {
          user,
          stepInstanceId: step.id,
          approvers: spec.approvers.join(', '),
        });
      }
      const r = await ctx.services.engine.confirm(job.id, step.id, op, {
        operator: user,
        reason: input.confirm_reason ?? '',
      });
      refuse(r, `${CONFIRM_PRECONDITION[op]}; step ${step.id} is at status ${step.status}`, job.id);
      return { job_instance_id: job.id, step_instance_id: step.id };
    }
    const code = op as (typeof STEP_OPERATIONS)[number];
    const r = await ctx.services.engine.operateStep(job.id, step.id, code);
    refuse(r, `${PRECONDITION[code]}; step ${step.id} is at status ${step.status}`, job.id);
    return { job_instance_id: job.id, step_instance_id: step.id };
  },
});
