/**
 * Job templates: get_job_template_list (behaviour notes §3.17) and Jobfleet's authoring
 * extensions create/update/delete_job_template and get_job_template_detail. Bodies take the
 * shapes get_job_plan_detail answers with.
 */
import { z } from 'zod';
import {
  buildTemplateBody,
  parseTemplateBody,
  scopeAndAudit,
  templateDetail,
} from '../../plans/plan-documents.js';
import { refuseIfCronsRun } from '../../crons/cron-citations.js';
import { TemplateInput } from '../../plans/plan-shapes.js';
import type { TemplateBody } from '../../plans/plan-shapes.js';
import { msFrom, msTo } from '../../plans/plan-times.js';
import { isUniqueViolation } from '../../store/constraint-errors.js';
import { CitedItemsGone } from '../../store/library-references.js';
import type { TemplateRow } from '../../store/plan-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zLong, zText } from '../input-types.js';
import { PageFields, pageParams, pageReply } from '../paging.js';
import type { PageParams } from '../paging.js';

const positiveId = zLong.pipe(z.number().min(1));

/** Filters shared by the template, plan and cron lists (behaviour notes §3.15, §3.17, §3.20). */
export const ListFilters = {
  creator: zText(1024).optional(),
  name: zText(1024).optional(),
  create_time_start: zLong.optional(),
  create_time_end: zLong.optional(),
  last_modify_user: zText(1024).optional(),
  last_modify_time_start: zLong.optional(),
  last_modify_time_end: zLong.optional(),
};
type ListFilterInput = z.output<z.ZodObject<typeof ListFilters>>;

/** The store's filter, the times as given (the cron list's, stored in seconds as it takes them). */
export function listFilterOf(ctx: EndpointContext, input: ListFilterInput, page: PageParams) {
  return {
    scopeType: ctx.scope.type,
    scopeId: String(ctx.scope.id),
    creator: input.creator,
    name: input.name,
    createTimeStart: input.create_time_start,
    createTimeEnd: input.create_time_end,
    lastModifyUser: input.last_modify_user,
    lastModifyTimeStart: input.last_modify_time_start,
    lastModifyTimeEnd: input.last_modify_time_end,
    start: page.start,
    length: page.length,
  };
}

/**
 * What get_job_plan_list and get_job_template_list read. Paging as BK-JOB's list requests
 * have it: a missing or non-positive length is 20, a negative start 0, and, unlike the script
 * and account lists, no cap on the length (behaviour notes §3.15: the docs say 1000, v3 does
 * not enforce it).
 */
export const PlanListInput = { ...ListFilters, ...PageFields };

export function planListQuery(
  ctx: EndpointContext,
  input: ListFilterInput & { start?: number | undefined; length?: number | undefined },
) {
  const page = pageParams(input, Number.POSITIVE_INFINITY);
  // The filters come in seconds, as the lists answer; the store holds ms (plan-times.ts).
  const filter = {
    ...listFilterOf(ctx, input, page),
    createTimeStart: msFrom(input.create_time_start),
    createTimeEnd: msTo(input.create_time_end),
    lastModifyTimeStart: msFrom(input.last_modify_time_start),
    lastModifyTimeEnd: msTo(input.last_modify_time_end),
  };
  return { page, filter };
}

export async function templateInScope(ctx: EndpointContext, id: number): Promise<TemplateRow> {
  const t = await ctx.services.store.plans.getTemplate(id);
  if (!t || t.scope_type !== ctx.scope.type || t.scope_id !== String(ctx.scope.id))
    throw new ApiError('JOB_TEMPLATE_NOT_EXIST', { id });
  return t;
}

/** Who changed a template or plan, and when. */
export function modified(ctx: EndpointContext) {
  return { last_modify_user: ctx.caller.username, last_modify_time: Date.now() };
}

/** A save the store refused: the name taken, or a cited script version or account deleted meanwhile. */
function refusedSave(err: unknown, name: string): unknown {
  if (isUniqueViolation(err)) return new ApiError('JOB_TEMPLATE_NAME_EXIST', { name });
  if (err instanceof CitedItemsGone)
    return err.kind === 'account'
      ? new ApiError('ACCOUNT_NOT_EXIST', { account: err.ids.join(', ') })
      : new ApiError('SCRIPT_NOT_EXIST', { ref: `version ${err.ids.join(', ')}` });
  return err;
}

export const createJobTemplate = defineEndpoint({
  name: 'create_job_template',
  kind: 'write',
  permission: 'manage',
  input: z.object(TemplateInput),
  async handle(ctx, input) {
    const body = await buildTemplateBody(ctx, input.step_list, input.global_var_list);
    const now = Date.now();
    try {
      const id = await ctx.services.store.plans.insertTemplate({
        scope_type: ctx.scope.type,
        scope_id: String(ctx.scope.id),
        name: input.name,
        description: input.description,
        creator: ctx.caller.username,
        create_time: now,
        last_modify_user: ctx.caller.username,
        last_modify_time: now,
        version: 1,
        body: JSON.stringify(body),
      });
      return { id };
    } catch (err) {
      throw refusedSave(err, input.name);
    }
  },
});

/**
 * Runs an edit on a fresh read until its save finds the row as it was read (the store's
 * compare-and-set; `edit` answers undefined when it did not): two edits at once, or an edit
 * during a key rotation's reseal, apply one after the other instead of the later one undoing
 * the earlier.
 */
export async function editUntilSaved<T>(edit: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const done = await edit();
    if (done !== undefined) return done;
  }
  throw new Error('the row changed under ten attempts in a row to save an edit');
}

/**
 * Saves a template's new content; the version moves only when something changed. False when
 * the template changed since `row` was read, and nothing was saved.
 */
async function saveTemplate(
  ctx: EndpointContext,
  row: TemplateRow,
  name: string,
  description: string,
  body: TemplateBody,
): Promise<boolean> {
  const text = JSON.stringify(body);
  if (text === row.body && name === row.name && description === row.description) return true;
  try {
    return await ctx.services.store.plans.updateTemplate(row.id, row, {
      name,
      description,
      ...modified(ctx),
      version: row.body === text ? row.version : row.version + 1,
      body: text,
    });
  } catch (err) {
    throw refusedSave(err, name);
  }
}

export const updateJobTemplate = defineEndpoint({
  name: 'update_job_template',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_template_id: positiveId, ...TemplateInput }),
  async handle(ctx, input) {
    return editUntilSaved(async () => {
      const row = await templateInScope(ctx, input.job_template_id);
      const body = await buildTemplateBody(
        ctx,
        input.step_list,
        input.global_var_list,
        parseTemplateBody(row),
      );
      const saved = await saveTemplate(ctx, row, input.name, input.description, body);
      return saved ? { id: row.id } : undefined;
    });
  },
});

export const deleteJobTemplate = defineEndpoint({
  name: 'delete_job_template',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_template_id: positiveId }),
  async handle(ctx, input) {
    const row = await templateInScope(ctx, input.job_template_id);
    // Its plans go with it, unless a cron runs one of them.
    refuseIfCronsRun(await ctx.services.store.plans.deleteTemplate(row.id));
    return { id: row.id };
  },
});

export const getJobTemplateDetail = defineEndpoint({
  name: 'get_job_template_detail',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_template_id: positiveId }),
  fieldErrors: { job_template_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    return templateDetail(ctx.services.secretBox, await templateInScope(ctx, input.job_template_id));
  },
});

export const getJobTemplateList = defineEndpoint({
  name: 'get_job_template_list',
  kind: 'read',
  permission: 'read',
  input: z.object(PlanListInput),
  async handle(ctx, input) {
    const { page, filter } = planListQuery(ctx, input);
    const { total, rows } = await ctx.services.store.plans.list('job_template', filter);
    return pageReply(
      page,
      total,
      rows.map((r) => ({ ...scopeAndAudit(r), id: r.id, name: r.name, description: r.description })),
    );
  },
});
