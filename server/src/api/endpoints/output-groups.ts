/**
 * Jobfleet extensions: hosts grouped by identical output, and diffs between outputs.
 * - get_step_output_groups: the groups of a step attempt, largest first, each with its host
 *   count, one representative output and a page of its hosts (`group_id` + `start`/`length`
 *   pages through one group); `group_start`/`group_length` page the groups.
 * - get_output_diff: a unified diff between two hosts, two groups (their representatives) or
 *   two attempts of one host.
 * `normalisers` (host, timestamps, numbers) pick what counts as the same; the reply names them.
 * See docs/output-groups.md.
 */
import { createTwoFilesPatch } from 'diff';
import { z } from 'zod';
import type { JobInstance, StepHead } from '../../store/execution-store.js';
import type { OutputGroup } from '../../outputs/output-groups.js';
import { NORMALISERS, normaliseText, normaliserKey } from '../../outputs/output-normalisers.js';
import type { Normaliser } from '../../outputs/output-normalisers.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zInt, zLong } from '../input-types.js';
import { jobInScope, stepOfJob } from './job-lookup.js';

/** How long one diff may run before it gives up. */
const DIFF_BUDGET_MS = 1000;

/** Representative outputs and diffed texts are cut here (the reply says so). */
const TEXT_LIMIT = 256 * 1024;

/** Groups per reply: each carries a representative output, so a step of 50,000 different outputs is paged. */
const DEFAULT_GROUP_PAGE = 100;
const MAX_GROUP_PAGE = 1000;

/** "host,numbers" or ["host", "numbers"]. */
const zNormalisers = z
  .preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : v,
    z.array(z.enum(NORMALISERS)),
  )
  .optional();

/** The fields that name a step attempt, shared by the endpoints that read one. */
export const AttemptFields = {
  job_instance_id: zLong.pipe(z.number().min(1)),
  step_instance_id: zLong.pipe(z.number().min(1)),
  execute_count: zInt.pipe(z.number().min(0)).optional(),
  normalisers: zNormalisers,
};

/** The head of a reply about one step attempt. */
export function attemptHead(job: JobInstance, step: StepHead, executeCount: number) {
  return {
    job_instance_id: job.id,
    step_instance_id: step.id,
    execute_count: executeCount,
    step_execute_count: step.execute_count,
    status: step.status,
    current_batch: step.current_batch,
  };
}

/** The job, step and attempt the input names, or the API's refusal. */
export async function attemptOf(
  ctx: EndpointContext,
  input: { job_instance_id: number; step_instance_id: number; execute_count?: number | undefined },
): Promise<{ job: JobInstance; step: StepHead; executeCount: number }> {
  const job = await jobInScope(ctx, input.job_instance_id);
  const step = await stepOfJob(ctx, job, input.step_instance_id);
  const executeCount = input.execute_count ?? step.execute_count;
  if (executeCount > step.execute_count)
    throw new ApiError('BAD_REQUEST', {
      reason: `execute_count ${executeCount} has not run (the step is at ${step.execute_count})`,
    });
  return { job, step, executeCount };
}

/** A normalised text held to TEXT_LIMIT characters (a normaliser may lengthen it). */
function cut(text: string): { text: string; truncated: boolean } {
  return text.length > TEXT_LIMIT
    ? { text: text.slice(0, TEXT_LIMIT), truncated: true }
    : { text, truncated: false };
}

/**
 * The start of a host's output in an attempt (the attempt that ran it, for a host kept as "last
 * success"): at most TEXT_LIMIT bytes are read, and whether there is more.
 */
async function outputOf(
  ctx: EndpointContext,
  stepInstanceId: number,
  executeCount: number,
  hostId: number,
): Promise<{ text: string; truncated: boolean } | undefined> {
  const ex = ctx.services.store.executions;
  const task = await ex.getHostTask(stepInstanceId, executeCount, hostId);
  if (!task) return undefined;
  const attempt = await ctx.services.outputs.outputAttempt(task);
  const head = Buffer.concat(await ex.readLogRange(stepInstanceId, attempt, hostId, 0, TEXT_LIMIT + 1));
  return { text: head.subarray(0, TEXT_LIMIT).toString('utf8'), truncated: head.length > TEXT_LIMIT };
}

function hostRef(t: { host_id: number; cloud_id: number; ip: string }) {
  return { bk_host_id: t.host_id, bk_cloud_id: t.cloud_id, ip: t.ip };
}

export const getStepOutputGroups = defineEndpoint({
  name: 'get_step_output_groups',
  kind: 'read',
  permission: 'read',
  input: z.object({
    ...AttemptFields,
    /** Only this group, with `start`/`length` paging its hosts. */
    group_id: z.string().optional(),
    start: zInt.pipe(z.number().min(0)).optional(),
    length: zInt.pipe(z.number().min(1).max(1000)).optional(),
    /** The page of groups (largest first): each carries a representative output of up to 256 KiB. */
    group_start: zInt.pipe(z.number().min(0)).optional(),
    group_length: zInt.pipe(z.number().min(1).max(MAX_GROUP_PAGE)).optional(),
  }),
  async handle(ctx, input) {
    const { job, step, executeCount } = await attemptOf(ctx, input);
    const normalisers = normaliserKey(input.normalisers ?? []);
    let groups = await ctx.services.outputs.groups(step.id, executeCount, normalisers);
    const total = groups.reduce((n, g) => n + g.hosts.length, 0);
    if (input.group_id !== undefined) {
      groups = groups.filter((g) => g.groupId === input.group_id);
      if (groups.length === 0)
        throw new ApiError('BAD_REQUEST', {
          reason: `no group ${input.group_id} in this attempt with normalisers "${normalisers}"`,
        });
    }
    const start = input.start ?? 0;
    const length = input.length ?? 20;
    const groupStart = input.group_start ?? 0;
    const groupLength = input.group_length ?? DEFAULT_GROUP_PAGE;
    const described = [];
    for (const g of groups.slice(groupStart, groupStart + groupLength)) {
      const rep = g.hosts[0];
      const shown = (rep && (await outputOf(ctx, step.id, executeCount, rep.host_id))) || {
        text: '',
        truncated: false,
      };
      described.push({
        group_id: g.groupId,
        status: g.status,
        tag: g.tag,
        exit_code: g.exitCode,
        fingerprint: g.fingerprint,
        host_count: g.hosts.length,
        representative:
          rep && g.fingerprint !== null
            ? { ...hostRef(rep), log_content: shown.text, truncated: shown.truncated }
            : null,
        start,
        length,
        host_list: g.hosts.slice(start, start + length).map(hostRef),
      });
    }
    return {
      job_instance_id: job.id,
      step_instance_id: step.id,
      execute_count: executeCount,
      normalisers: normalisers === '' ? [] : normalisers.split(','),
      total_hosts: total,
      group_count: groups.length,
      group_start: groupStart,
      group_length: groupLength,
      groups: described,
    };
  },
});

/** One side of a diff: a host (in the attempt, or in its own `execute_count`) or a group. */
interface Side {
  bk_host_id?: number | undefined;
  group_id?: string | undefined;
  execute_count?: number | undefined;
}
const zAttempt = zInt.pipe(z.number().min(0)).optional();

export const getOutputDiff = defineEndpoint({
  name: 'get_output_diff',
  kind: 'read',
  permission: 'read',
  input: z.object({
    ...AttemptFields,
    left_host_id: zLong.optional(),
    left_group_id: z.string().optional(),
    left_execute_count: zAttempt,
    right_host_id: zLong.optional(),
    right_group_id: z.string().optional(),
    right_execute_count: zAttempt,
    context_lines: zInt.pipe(z.number().min(0).max(1000)).optional(),
  }),
  async handle(ctx, input) {
    const { step, executeCount } = await attemptOf(ctx, input);
    const set: Normaliser[] = input.normalisers ?? [];
    const key = normaliserKey(set);
    let groups: OutputGroup[] | undefined;
    const resolve = async (side: Side, name: 'left' | 'right') => {
      const attempt = side.execute_count ?? executeCount;
      if (attempt > step.execute_count)
        throw new ApiError('BAD_REQUEST', { reason: `${name}_execute_count ${attempt} has not run` });
      let hostId = side.bk_host_id;
      if (side.group_id !== undefined) {
        groups ??= await ctx.services.outputs.groups(step.id, executeCount, key);
        const g = groups.find((x) => x.groupId === side.group_id);
        if (!g) throw new ApiError('BAD_REQUEST', { reason: `${name}: no group ${side.group_id}` });
        hostId = g.hosts[0]?.host_id;
      }
      if (hostId === undefined)
        throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
          param: `${name}_host_id|${name}_group_id`,
          reason: 'name a host or a group',
        });
      const output = await outputOf(ctx, step.id, attempt, hostId);
      if (output === undefined)
        throw new ApiError('BAD_REQUEST', {
          reason: `${name}: host ${hostId} is not a target of attempt ${attempt}`,
        });
      const who = await ctx.services.outputs.identity(hostId);
      const compared = cut(normaliseText(output.text, set, who));
      const label = `${side.group_id !== undefined ? `group ${side.group_id} ` : ''}host ${hostId} attempt ${attempt}`;
      return {
        ref: {
          bk_host_id: hostId,
          execute_count: attempt,
          ...(side.group_id ? { group_id: side.group_id } : {}),
        },
        label,
        text: compared.text,
        truncated: compared.truncated || output.truncated,
      };
    };
    const left = await resolve(
      {
        bk_host_id: input.left_host_id,
        group_id: input.left_group_id,
        execute_count: input.left_execute_count,
      },
      'left',
    );
    const right = await resolve(
      {
        bk_host_id: input.right_host_id,
        group_id: input.right_group_id,
        execute_count: input.right_execute_count,
      },
      'right',
    );
    // The line diff is quadratic on outputs that share little and runs on the server's thread:
    // past DIFF_BUDGET_MS it gives up (no diff, too_different) rather than hold every request
    // and agent heartbeat for minutes.
    const diff =
      left.text === right.text
        ? ''
        : createTwoFilesPatch(left.label, right.label, left.text, right.text, undefined, undefined, {
            context: input.context_lines ?? 3,
            timeout: DIFF_BUDGET_MS,
          });
    return {
      step_instance_id: step.id,
      normalisers: set.length === 0 ? [] : key.split(','),
      left: left.ref,
      right: right.ref,
      identical: left.text === right.text,
      truncated: left.truncated || right.truncated,
      too_different: diff === undefined,
      diff: diff ?? '',
    };
  },
});
