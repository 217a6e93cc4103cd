/** Finding a job or step the caller may see: another scope's job is as unknown as a missing one. */
import { z } from 'zod';
import type { JobInstance, StepHead, StepInstance } from '../../store/execution-store.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zLong } from '../input-types.js';

export async function jobInScope(ctx: EndpointContext, jobInstanceId: number): Promise<JobInstance> {
  return inScope(ctx, jobInstanceId, await ctx.services.store.executions.getJob(jobInstanceId));
}

/** The job with its steps but their definitions, read together (see ExecutionStore.getJobWithStepHeads). */
export async function jobWithStepsInScope(
  ctx: EndpointContext,
  jobInstanceId: number,
): Promise<{ job: JobInstance; steps: StepHead[] }> {
  const found = await ctx.services.store.executions.getJobWithStepHeads(jobInstanceId);
  return { job: inScope(ctx, jobInstanceId, found?.job), steps: found?.steps ?? [] };
}

function inScope(ctx: EndpointContext, jobInstanceId: number, job: JobInstance | undefined): JobInstance {
  if (!job || job.scope_type !== ctx.scope.type || job.scope_id !== String(ctx.scope.id)) {
    throw new ApiError('TASK_INSTANCE_NOT_EXIST', { jobInstanceId });
  }
  return job;
}

/**
 * The step of a job without its definition (what the status and log reads need); `missing`
 * picks the code, since the log APIs answer 1244006 for a missing step.
 */
export async function stepOfJob(
  ctx: EndpointContext,
  job: JobInstance,
  stepInstanceId: number,
  missing: MissingStep = 'STEP_INSTANCE_NOT_EXIST',
): Promise<StepHead> {
  return ofJob(await ctx.services.store.executions.getStepHead(stepInstanceId), job, stepInstanceId, missing);
}

/** The step of a job with its definition. */
export async function stepWithSpecOfJob(
  ctx: EndpointContext,
  job: JobInstance,
  stepInstanceId: number,
): Promise<StepInstance> {
  return ofJob(await ctx.services.store.executions.getStep(stepInstanceId), job, stepInstanceId);
}

type MissingStep = 'TASK_INSTANCE_NOT_EXIST' | 'STEP_INSTANCE_NOT_EXIST';

function ofJob<S extends StepHead>(
  step: S | undefined,
  job: JobInstance,
  stepInstanceId: number,
  missing: MissingStep = 'STEP_INSTANCE_NOT_EXIST',
): S {
  if (!step || step.job_instance_id !== job.id) {
    throw missing === 'STEP_INSTANCE_NOT_EXIST'
      ? new ApiError('STEP_INSTANCE_NOT_EXIST', { stepInstanceId })
      : new ApiError('TASK_INSTANCE_NOT_EXIST', { jobInstanceId: job.id });
  }
  return step;
}

/** Elapsed milliseconds, once both ends are known. */
export function totalTime(start: number | null, end: number | null): number | null {
  return start !== null && end !== null ? end - start : null;
}

/** Scope fields echoed in replies; bk_biz_id too for business scopes, as older clients read it. */
export function scopeFieldsOf(job: JobInstance): {
  bk_scope_type: string;
  bk_scope_id: string;
  bk_biz_id?: number;
} {
  return job.scope_type === 'biz'
    ? { bk_scope_type: job.scope_type, bk_scope_id: job.scope_id, bk_biz_id: Number(job.scope_id) }
    : { bk_scope_type: job.scope_type, bk_scope_id: job.scope_id };
}

/** The input of a read about one job (`job_instance_id` only), with its error code. */
export const JobInstanceRead = {
  input: z.object({ job_instance_id: zLong.pipe(z.number().min(1)) }),
  fieldErrors: { job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
} as const;
