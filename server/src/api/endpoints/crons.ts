/**
 * Crons (behaviour notes §3.20): save_cron, update_cron_status, get_cron_list, get_cron_detail,
 * delete_cron. Saving (create or update) always leaves the cron disabled, as BK-JOB does;
 * update_cron_status 1 enables it. Times are in seconds. Status is 1/2 in the save reply and 1/0
 * in list and detail, as BK-JOB answers.
 *
 * Jobfleet extensions: save_cron takes `end_time` (seconds; after it the cron disables itself)
 * and `misfire_grace_seconds` (default 300); get_cron_detail adds `execute_time`, `end_time`,
 * `misfire_grace_seconds`, `next_run_times` (the next five, seconds) and `last_runs` (latest
 * firings: due time, outcome fired/skipped/failed, job id and status, reason).
 */
import { z } from 'zod';
import { expressionError, isTimeZone, nextTimes, serverTimeZone } from '../../crons/cron-schedule.js';
import { setCronEnabled } from '../../crons/cron-status.js';
import { cronVarView, parseCronVars, scheduleOf, sealCronVar } from '../../crons/cron-values.js';
import type { StoredCronVar } from '../../crons/cron-values.js';
import { arrayValueProblem, cipherValue, parseTemplateBody } from '../../plans/plan-documents.js';
import { lookUpHosts, serverView } from '../../plans/plan-hosts.js';
import { VarType } from '../../plans/plan-shapes.js';
import type { CronFields, CronRow, CronSchedule } from '../../store/cron-store.js';
import type { EndpointContext } from '../endpoint.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetServer, zInt, zLong, zVarValue } from '../input-types.js';
import { PageFields, pageParams, pageReply } from '../paging.js';
import { planInScope } from './job-plans.js';
import { editUntilSaved, ListFilters, listFilterOf } from './job-templates.js';

const DEFAULT_GRACE_SECONDS = 300;
const LAST_RUNS = 10;

const GlobalVar = z.object({
  id: zLong.pipe(z.number().min(1)).nullable().optional(),
  name: z.string().nullable().optional(),
  value: zVarValue.nullable().optional(),
  server: TargetServer.nullable().optional(),
});

const SaveInput = z.object({
  id: zLong.pipe(z.number().min(1)).optional(),
  job_plan_id: zLong.pipe(z.number().min(1)).nullable().optional(),
  name: z.string().max(60).nullable().optional(),
  expression: z.string().max(256).nullable().optional(),
  execute_time: zLong.pipe(z.number().min(1)).nullable().optional(),
  execute_time_zone: z.string().max(64).nullable().optional(),
  global_var_list: z.array(GlobalVar).max(100).nullable().optional(),
  end_time: zLong.pipe(z.number().min(1)).nullable().optional(),
  misfire_grace_seconds: zInt.pipe(z.number().min(0).max(86_400)).nullable().optional(),
});
type SaveInput = z.output<typeof SaveInput>;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function scopeFields(row: Pick<CronRow, 'scope_type' | 'scope_id'>): Record<string, unknown> {
  return { bk_scope_type: row.scope_type, bk_scope_id: row.scope_id };
}

async function cronInScope(
  ctx: EndpointContext,
  id: number,
  missing: 'CRON_JOB_NOT_EXIST' | 'DELETE_CRON_FAILED' = 'CRON_JOB_NOT_EXIST',
): Promise<CronRow> {
  const row = await ctx.services.store.crons.get(id);
  if (!row || row.scope_type !== ctx.scope.type || row.scope_id !== String(ctx.scope.id))
    throw new ApiError(missing, { id });
  return row;
}

const badParam = (param: string, reason: string): ApiError =>
  new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON', { param, reason });

/**
 * Values by variable id, as the plan's template defines them; cipher values sealed. A cipher
 * value given as the mask (`******`, what the plan detail and get_cron_detail show) keeps the
 * cron's own value (`previous`, the same plan's), else none: the plan's then applies.
 */
function resolveVars(
  ctx: EndpointContext,
  defs: ReturnType<typeof parseTemplateBody>['vars'],
  given: z.output<typeof GlobalVar>[],
  previous: StoredCronVar[],
): StoredCronVar[] {
  return given.map((g, i) => {
    if ((g.id === undefined || g.id === null) && !g.name)
      throw new ApiError('ILLEGAL_PARAM_WITH_REASON', {
        reason: `global_var_list[${i}]: give the variable's id or name`,
      });
    const def = defs.find((d) => (g.id ? d.id === g.id : d.name === g.name));
    if (!def)
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `global_var_list[${i}]`,
        reason: `the plan has no variable ${g.id ?? g.name ?? ''}`,
      });
    const v: StoredCronVar = { id: def.id, name: def.name, type: def.type, value: null, server: null };
    if (def.type === VarType.HOST_LIST) v.server = g.server ?? null;
    else if (def.type === VarType.CIPHER) {
      const given = cipherValue(
        g.value,
        previous.find((p) => p.id === def.id),
        (plain) => sealCronVar(ctx.services, plain),
      );
      if (given.sealed) v.sealed = given.sealed;
    } else v.value = g.value ?? null;
    // A value the plan would refuse at each firing is refused now.
    const problem = v.value === null ? undefined : arrayValueProblem(def.type, v.value);
    if (problem)
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `global_var_list[${i}]`,
        reason: problem,
      });
    return v;
  });
}

function checkSchedule(
  ctx: EndpointContext,
  input: SaveInput,
): { expression?: string; executeTime?: number; timeZone?: string } {
  const out: { expression?: string; executeTime?: number; timeZone?: string } = {};
  if (input.expression) {
    const expression = input.expression.trim().replace(/\s+/g, ' ');
    const error = expressionError(expression, ctx.services.config.cronSecondsField);
    if (error) throw badParam('expression', `"${input.expression}": ${error}`);
    out.expression = expression;
  } else if (input.execute_time) {
    out.executeTime = input.execute_time;
  }
  if (input.execute_time_zone) {
    if (!isTimeZone(input.execute_time_zone))
      throw badParam('execute_time_zone', `"${input.execute_time_zone}" is not an IANA time zone`);
    out.timeZone = input.execute_time_zone;
  }
  return out;
}

function listItem(row: CronSchedule): Record<string, unknown> {
  return {
    id: row.id,
    name: row.name,
    status: row.enabled ? 1 : 0,
    ...scopeFields(row),
    job_plan_id: row.job_plan_id,
    expression: row.expression,
    creator: row.creator,
    create_time: row.create_time,
    last_modify_user: row.last_modify_user,
    last_modify_time: row.last_modify_time,
  };
}

/** A cron's values as the API shows them, a host variable's hosts as get_job_plan_detail shows them. */
async function varsView(ctx: EndpointContext, row: CronRow): Promise<Record<string, unknown>[]> {
  const vars = parseCronVars(row);
  const hosts = await lookUpHosts(
    ctx.services.store.inventory,
    vars.map((v) => v.server),
    ctx.scope.bizIds,
  );
  return vars.map((v) => ({ ...cronVarView(v), server: v.server ? serverView(v.server, hosts) : null }));
}

/** The save reply: the list item with its variables, and status 1 running / 2 paused. */
async function saveReply(ctx: EndpointContext, row: CronRow): Promise<Record<string, unknown>> {
  return {
    ...listItem(row),
    status: row.enabled ? 1 : 2,
    execute_time_zone: row.time_zone,
    global_var_list: await varsView(ctx, row),
  };
}

/** The row a save writes: what is given, else what the cron had (`old`), else the defaults. */
async function cronFields(
  ctx: EndpointContext,
  input: SaveInput,
  old: CronRow | undefined,
): Promise<CronFields> {
  if (!old) {
    if (!input.job_plan_id) throw new ApiError('BAD_REQUEST', { reason: 'job_plan_id is required' });
    if (!input.name) throw new ApiError('BAD_REQUEST', { reason: 'name is required' });
    if (!input.expression && !input.execute_time)
      throw new ApiError('BAD_REQUEST', { reason: 'give expression or execute_time' });
  }
  const schedule = checkSchedule(ctx, input);
  const planId = input.job_plan_id ?? old?.job_plan_id ?? 0;
  const { template } = await planInScope(ctx, planId);
  const defs = parseTemplateBody(template).vars;
  const planChanged = old !== undefined && old.job_plan_id !== planId;
  const previous = planChanged || !old ? [] : parseCronVars(old);
  const vars = input.global_var_list ? resolveVars(ctx, defs, input.global_var_list, previous) : previous;
  const now = nowSeconds();
  const user = ctx.caller.username;
  return {
    job_plan_id: planId,
    // An empty name is "not given", as an empty expression is: a cron keeps a name.
    name: input.name ? input.name : (old?.name ?? ''),
    expression:
      schedule.expression ?? (schedule.executeTime !== undefined ? null : (old?.expression ?? null)),
    execute_time:
      schedule.executeTime ?? (schedule.expression !== undefined ? null : (old?.execute_time ?? null)),
    // BK-JOB: the scope's time zone, else the server's (behaviour notes §3.20).
    time_zone:
      schedule.timeZone ??
      old?.time_zone ??
      (await ctx.services.store.inventory.scopeTimeZone(ctx.scope.type, ctx.scope.id)) ??
      serverTimeZone(),
    // Saving pauses the cron (BK-JOB's saveCron); update_cron_status enables it.
    enabled: 0,
    end_time: input.end_time === undefined ? (old?.end_time ?? null) : input.end_time,
    misfire_grace_seconds: input.misfire_grace_seconds ?? old?.misfire_grace_seconds ?? DEFAULT_GRACE_SECONDS,
    vars: JSON.stringify(vars),
    app_code: ctx.caller.appCode,
    last_modify_user: user,
    last_modify_time: now,
  };
}

export const saveCron = defineEndpoint({
  name: 'save_cron',
  kind: 'write',
  permission: 'manage',
  input: SaveInput,
  fieldErrors: {
    expression: 'ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON',
    execute_time: 'ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON',
    execute_time_zone: 'ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON',
  },
  // Saved compare-and-set on the row as read, the edit redone on a fresh read when another
  // save came first: two partial saves at once keep both.
  handle: (ctx, input) =>
    editUntilSaved(async () => {
      const old = input.id !== undefined ? await cronInScope(ctx, input.id) : undefined;
      const saved = await ctx.services.store.crons.save(old, await cronFields(ctx, input, old), {
        scope_type: ctx.scope.type,
        scope_id: String(ctx.scope.id),
        enabled_at: Date.now(),
        creator: ctx.caller.username,
        create_time: nowSeconds(),
      });
      if (saved === 'changed') return undefined;
      if (saved === 'cron gone') throw new ApiError('CRON_JOB_NOT_EXIST', { id: input.id ?? 0 });
      if (saved === 'plan gone')
        throw new ApiError('TASK_PLAN_NOT_EXIST', { id: input.job_plan_id ?? old?.job_plan_id ?? 0 });
      const row = await ctx.services.store.crons.get(saved);
      // Deleted since it was written.
      if (!row) throw new ApiError('CRON_JOB_NOT_EXIST', { id: saved });
      return saveReply(ctx, row);
    }),
});

export const updateCronStatus = defineEndpoint({
  name: 'update_cron_status',
  kind: 'write',
  permission: 'manage',
  input: z.object({ id: zLong.pipe(z.number().min(1)), status: zInt.pipe(z.number().min(0)) }),
  async handle(ctx, input) {
    const row = await cronInScope(ctx, input.id);
    // 1 enables; any other value disables (BK-JOB).
    await setCronEnabled(ctx.services.store, row, input.status === 1, ctx.caller.username);
    return { id: row.id };
  },
});

export const getCronList = defineEndpoint({
  name: 'get_cron_list',
  kind: 'read',
  permission: 'read',
  input: z.object({ ...ListFilters, ...PageFields, id: zLong.optional(), status: zInt.optional() }),
  async handle(ctx, input) {
    // As BK-JOB's cron list request reads them: a negative start is 0, a length of 0 or less
    // is 20, no cap on the length; a time range applies only when both of its bounds are given.
    const page = pageParams(input, Number.POSITIVE_INFINITY);
    if (input.id !== undefined && input.id > 0) {
      const row = await ctx.services.store.crons.get(input.id);
      const mine = row && row.scope_type === ctx.scope.type && row.scope_id === String(ctx.scope.id);
      // Only the first page holds it, as BK-JOB answers: a client paging until the data is
      // empty would otherwise never stop.
      return pageReply(page, mine ? 1 : 0, mine && page.start === 0 ? [listItem(row)] : []);
    }
    const createdRange = input.create_time_start !== undefined && input.create_time_end !== undefined;
    const modifiedRange =
      input.last_modify_time_start !== undefined && input.last_modify_time_end !== undefined;
    const { total, rows } = await ctx.services.store.crons.list({
      ...listFilterOf(ctx, input, page),
      ...(createdRange ? {} : { createTimeStart: undefined, createTimeEnd: undefined }),
      ...(modifiedRange ? {} : { lastModifyTimeStart: undefined, lastModifyTimeEnd: undefined }),
      // 1 enabled, 0 disabled; any other value (2 included) filters nothing, as BK-JOB does.
      enabled: input.status === 1 ? true : input.status === 0 ? false : undefined,
    });
    return pageReply(page, total, rows.map(listItem));
  },
});

export const getCronDetail = defineEndpoint({
  name: 'get_cron_detail',
  kind: 'read',
  permission: 'read',
  input: z.object({ id: zLong.pipe(z.number().min(1)) }),
  async handle(ctx, input) {
    const row = await cronInScope(ctx, input.id);
    const runs = await ctx.services.store.crons.lastFirings(row.id, LAST_RUNS);
    return {
      ...listItem(row),
      execute_time: row.execute_time,
      execute_time_zone: row.time_zone,
      global_var_list: await varsView(ctx, row),
      end_time: row.end_time,
      misfire_grace_seconds: row.misfire_grace_seconds,
      next_run_times: row.enabled
        ? nextTimes(scheduleOf(row), Date.now(), 5).map((t) => Math.floor(t / 1000))
        : [],
      last_runs: runs.map((r) => ({
        scheduled_time: r.scheduled_time,
        outcome: r.outcome,
        job_instance_id: r.job_instance_id,
        status: r.job_status,
        reason: r.reason,
      })),
    };
  },
});

export const deleteCron = defineEndpoint({
  name: 'delete_cron',
  kind: 'write',
  permission: 'manage',
  input: z.object({ id: zLong.pipe(z.number().min(1)) }),
  async handle(ctx, input) {
    const row = await cronInScope(ctx, input.id, 'DELETE_CRON_FAILED');
    await ctx.services.store.crons.delete(row.id);
    return null;
  },
});
