/**
 * What every execute endpoint shares: the common request fields, idempotent submission,
 * callback URL and account checks, rolling batches, and turning resolved hosts into a job of
 * one step.
 */
import { z } from 'zod';
import { sealCallbackUrl } from '../../engine/callback-url.js';
import { batchSizes } from '../../engine/rolling-plan.js';
import { HostStatus, LaunchMode } from '../../engine/statuses.js';
import type { RollingSpec, StepSpec } from '../../engine/step-spec.js';
import type { NewHostTask } from '../../store/execution-store.js';
import { distinctAscending } from '../../store/host-tasks-by-id.js';
import type { HostsById } from '../../store/host-tasks-by-id.js';
import { resolveTargets, resolveTargetsKeepingMissing } from '../../inventory/target-resolution.js';
import type { MissingHost } from '../../inventory/target-resolution.js';
import type { TargetHost } from '../../store/inventory-store.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { assertScopeQuota } from '../scope-quota.js';
import { TargetServer, zBool, zInt, zLong } from '../input-types.js';

export const MAX_TIMEOUT = 259_200;
export const DEFAULT_TIMEOUT = 7200;
/** A repeated client_request_id within this window returns the first job. */
const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export const RollingConfig = z
  .object({
    type: zInt.pipe(z.literal(1, 'rolling by source files (type 2) is not supported')).default(1),
    mode: zInt.pipe(z.union([z.literal(1), z.literal(2), z.literal(3)])).default(1),
    execution_mode: zInt.pipe(z.literal(1, 'only serial rolling (1) is supported')).default(1),
    expression: z.string().min(1).max(1024),
    /** Jobfleet extension: stop the step once more hosts than this (a count or "N%") have failed. */
    max_failed_hosts: z
      .union([
        zInt.pipe(z.number().min(0)),
        z.string().regex(/^(100|[1-9]?\d)%$/, 'is not a count or a percentage like "10%"'),
      ])
      .optional(),
  })
  .nullable()
  .optional();
export type RollingConfig = z.output<typeof RollingConfig>;

/** Fields of fast_execute_script and fast_transfer_file that mean the same in both. */
export const CommonExecuteFields = {
  timeout: zInt.pipe(z.number().min(1).max(MAX_TIMEOUT)).optional(),
  account_id: zLong.optional(),
  account_alias: z.string().optional(),
  task_name: z.string().max(512).optional(),
  target_server: TargetServer.optional(),
  callback_url: z.string().max(2048).optional(),
  start_task: zBool.optional(),
  rolling_config: RollingConfig,
  /** Jobfleet extension: a retried submission with the same id returns the first job. */
  client_request_id: z.string().min(1).max(128).optional(),
};

export interface SubmitReply {
  job_instance_id: number;
  job_instance_name: string;
  step_instance_id: number | null;
}

/** The job a previous submission with this client_request_id created, if any. */
export async function priorSubmission(
  ctx: EndpointContext,
  clientRequestId: string | undefined,
): Promise<SubmitReply | undefined> {
  if (clientRequestId === undefined) return undefined;
  const ex = ctx.services.store.executions;
  // Per scope: the same id sent for another scope is another job (answering the first would
  // show a job of a scope the request is not about).
  const prior = await ex.findJobByClientRequestId(
    ctx.caller.appCode,
    { type: ctx.scope.type, id: String(ctx.scope.id) },
    clientRequestId,
    Date.now() - IDEMPOTENCY_WINDOW_MS,
  );
  if (!prior) return undefined;
  const [step] = await ex.getStepHeadsOfJob(prior.id);
  return { job_instance_id: prior.id, job_instance_name: prior.name, step_instance_id: step?.id ?? null };
}

/**
 * The task_name given, or when it is absent or blank (as BK-JOB decides) its default name
 * `<prefix>_yyyyMMddHHmmssSSS` (in English).
 */
export function jobNameOr(taskName: string | undefined, prefix: string, now = new Date()): string {
  if (taskName !== undefined && taskName.trim() !== '') return taskName;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${prefix}_${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}${p(now.getMilliseconds(), 3)}`;
}

/** http(s) with a host and no credentials in it (behaviour notes §7). */
export function checkCallbackUrl(url: string | undefined): string | null {
  if (url === undefined || url === '') return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ApiError('BAD_REQUEST', { reason: 'callback_url is not a valid URL' });
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || u.username || u.password) {
    throw new ApiError('BAD_REQUEST', {
      reason: 'callback_url must be an http(s) URL with a host and no user info',
    });
  }
  return url;
}

/** Whether a request names an account: an id above 0 or an alias not blank (BK-JOB's isBlank). */
export function accountGiven(id: number | undefined, alias: string | undefined): boolean {
  return (id !== undefined && id > 0) || (alias !== undefined && alias.trim() !== '');
}

/**
 * An execution account of the job's scope by id or alias: a system account (category 1) that
 * scripts and file transfers run as, or, for SQL steps, a database account (category 2).
 * An account_id above 0 wins; else the alias (behaviour notes §5): clients whose types cannot
 * leave a number out send 0 for "none".
 */
export async function resolveAccount(
  ctx: EndpointContext,
  id: number | undefined,
  alias: string | undefined,
  category: 1 | 2 = 1,
) {
  const inv = ctx.services.store.inventory;
  if (id !== undefined && id > 0) {
    const a = await inv.getAccount(id);
    if (!a || !ctx.scope.bizIds.includes(a.biz_id) || a.category !== category)
      throw new ApiError('ACCOUNT_NOT_EXIST', { account: id });
    return { id: a.id, alias: a.alias, osUser: a.os_user };
  }
  if (alias !== undefined && accountGiven(undefined, alias)) {
    const a = await inv.findSystemAccountByAlias(ctx.scope.bizIds, alias, category);
    if (!a) throw new ApiError('ACCOUNT_NOT_EXIST', { account: alias });
    return { id: a.id, alias: a.alias, osUser: a.os_user };
  }
  throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'account_id|account_alias' });
}

/** BK-JOB's limit on the targets of one script step (behaviour notes §5). */
const MAX_SCRIPT_TARGETS = 50_000;

/**
 * The hosts a script step targets, refused past BK-JOB's per-step limit; with `keepMissing`
 * (a cron's job) hosts named by id that no longer exist are returned to be marked, not refused.
 */
export async function resolveScriptTargets(
  ctx: EndpointContext,
  target: TargetServer,
  keepMissing = false,
): Promise<{ hosts: TargetHost[]; missing: MissingHost[] }> {
  const inv = ctx.services.store.inventory;
  const resolved = keepMissing
    ? await resolveTargetsKeepingMissing(inv, ctx.scope, target)
    : { hosts: await resolveTargets(inv, ctx.scope, target), missing: [] };
  const count = resolved.hosts.length + resolved.missing.length;
  if (count > MAX_SCRIPT_TARGETS) {
    throw new ApiError('SCRIPT_TASK_TARGET_EXCEEDS_LIMIT', { count, limit: MAX_SCRIPT_TARGETS });
  }
  return resolved;
}

export function rollingSpecOf(rolling: RollingConfig): { rolling?: RollingSpec } {
  if (!rolling) return {};
  return {
    rolling: {
      mode: rolling.mode,
      expression: rolling.expression,
      ...(rolling.max_failed_hosts !== undefined ? { maxFailedHosts: rolling.max_failed_hosts } : {}),
    },
  };
}

/** Maps the i-th host to its 1-based batch, given the batch sizes. */
function batchNumbers(sizes: number[]): (i: number) => number {
  const of: number[] = [];
  sizes.forEach((size, b) => {
    for (let k = 0; k < size; k++) of.push(b + 1);
  });
  return (i) => of[i] ?? sizes.length;
}

/**
 * One waiting task per resolved host (hosts without an agent fail at once), in rolling batches
 * if any; missing hosts come last, at status 2 (never submitted), so the others run first.
 * One object per task, made once: a step may have 50,000 hosts, and this runs before the answer.
 */
export function hostTasksOf(
  hosts: readonly TargetHost[],
  rolling: RollingConfig,
  missing: readonly MissingHost[] = [],
): NewHostTask[] {
  const total = hosts.length + missing.length;
  const batchOf = rolling ? batchNumbers(batchSizes(rolling.expression, total)) : () => 0;
  const tasks = new Array<NewHostTask>(total);
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i] as TargetHost;
    tasks[i] = {
      hostId: h.id,
      cloudId: h.cloud_id,
      ip: h.ip,
      ipv6: h.ipv6,
      agentId: h.agent_id,
      status: h.agent_id ? HostStatus.WAITING : HostStatus.AGENT_NOT_INSTALLED,
      batch: batchOf(i),
    };
  }
  for (let k = 0; k < missing.length; k++) {
    const m = missing[k] as MissingHost;
    const i = hosts.length + k;
    tasks[i] = { ...m, ipv6: '', agentId: null, status: HostStatus.INVALID, batch: batchOf(i) };
  }
  return tasks;
}

/**
 * A target that is a host id list alone (ip_list beside it is ignored, behaviour notes §5), as
 * the hosts the insert of the step's tasks reads itself (store/host-tasks-by-id.ts); undefined
 * for any other target, or more ids than a step may have (the long way refuses those).
 */
export function hostsByIdOf(
  ctx: EndpointContext,
  target: TargetServer,
  rolling: RollingConfig,
): HostsById | undefined {
  if (!target.host_id_list?.length || target.topo_node_list?.length || target.dynamic_group_list?.length)
    return undefined;
  // Without rolling batches the order named means nothing (tasks are a set): the ids are
  // deduplicated by the sort the insert wants anyway (inIdOrder), not by a Set and then sorted.
  if (!rolling) {
    const ids = distinctAscending(target.host_id_list);
    return ids.length > MAX_SCRIPT_TARGETS ? undefined : { ids, bizIds: ctx.scope.bizIds, batches: null };
  }
  const ids = [...new Set(target.host_id_list)];
  if (ids.length > MAX_SCRIPT_TARGETS) return undefined;
  let sizes: number[];
  try {
    sizes = batchSizes(rolling.expression, ids.length);
  } catch {
    return undefined; // the long way reports a bad expression after the targets' errors, as before
  }
  const batchOf = batchNumbers(sizes);
  return { ids, bizIds: ctx.scope.bizIds, batches: ids.map((_, i) => batchOf(i)) };
}

/** Stores a job of one step over the resolved hosts and starts it unless start_task is false. */
export async function submitOneStepJob(
  ctx: EndpointContext,
  job: {
    name: string;
    jobType: number;
    stepType: number;
    spec: StepSpec;
    hosts: TargetHost[] | HostsById;
    callbackUrl: string | null;
    clientRequestId: string | undefined;
    startTask: boolean | undefined;
    rolling: RollingConfig;
    /** The scope's usage, when read already (see readScopeUsage). */
    usage?: Promise<[number, number]>;
  },
): Promise<SubmitReply> {
  const named = job.hosts;
  const count = Array.isArray(named) ? named.length : named.ids.length;
  if (job.startTask ?? true) await assertScopeQuota(ctx, count, job.usage);
  const { jobInstanceId, stepInstanceIds } = await ctx.services.engine.submit(
    {
      scopeType: ctx.scope.type,
      scopeId: String(ctx.scope.id),
      name: job.name,
      type: job.jobType,
      launchMode: LaunchMode.API,
      operator: ctx.caller.username,
      appCode: ctx.caller.appCode,
      // Stored sealed (callback-url.ts); the callback queue opens it to send.
      callbackUrl: sealCallbackUrl(ctx.services.secretBox, job.callbackUrl),
      clientRequestId: job.clientRequestId ?? null,
      steps: [
        {
          name: job.name,
          type: job.stepType,
          spec: job.spec,
          ...(Array.isArray(named)
            ? { hosts: hostTasksOf(named, job.rolling) }
            : { hosts: [], hostsById: named }),
        },
      ],
    },
    job.startTask ?? true,
  );
  return {
    job_instance_id: jobInstanceId,
    job_instance_name: job.name,
    step_instance_id: stepInstanceIds[0] ?? null,
  };
}
