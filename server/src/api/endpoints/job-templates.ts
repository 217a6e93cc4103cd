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
import { assertNoCronRuns } from '../../crons/cron-citations.js';
import { TemplateInput } from '../../plans/plan-shapes.js';
import type { TemplateBody } from '../../plans/plan-shapes.js';
import { isUniqueViolation } from '../../store/constraint-errors.js';
import type { TemplateRow } from '../../store/plan-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zInt, zLong } from '../input-types.js';

const positiveId = zLong.pipe(z.number().min(1));

/** Filters shared by the template and plan lists (behaviour notes §3.15). */
export const ListFilters = {
  creator: z.string().optional(),
  name: z.string().optional(),
  create_time_start: zLong.optional(),
  create_time_end: zLong.optional(),
  last_modify_user: z.string().optional(),
  last_modify_time_start: zLong.optional(),
  last_modify_time_end: zLong.optional(),
  start: zInt.pipe(z.number().min(0)).default(0),
  length: zInt.pipe(z.number().min(1).max(1000)).default(20),
};

export function listFilterOf(ctx: EndpointContext, input: z.output<z.ZodObject<typeof ListFilters>>) {
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
    start: input.start,
    length: input.length,
  };
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

function nameTaken(name: string): ApiError {
  return new ApiError('JOB_TEMPLATE_NAME_EXIST', { name });
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
      if (isUniqueViolation(err)) throw nameTaken(input.name);
      throw err;
    }
  },
});

/** Saves a template's new content; the version moves only when something changed. */
export async function saveTemplate(
  ctx: EndpointContext,
  row: TemplateRow,
  name: string,
  description: string,
  body: TemplateBody,
): Promise<boolean> {
  const text = JSON.stringify(body);
  if (text === row.body && name === row.name && description === row.description) return false;
  try {
    await ctx.services.store.plans.updateTemplate(row.id, {
      name,
      description,
      ...modified(ctx),
      version: row.body === text ? row.version : row.version + 1,
      body: text,
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(name);
    throw err;
  }
  return true;
}

export const updateJobTemplate = defineEndpoint({
  name: 'update_job_template',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_template_id: positiveId, ...TemplateInput }),
  async handle(ctx, input) {
    const row = await templateInScope(ctx, input.job_template_id);
    const body = await buildTemplateBody(ctx, input.step_list, input.global_var_list, parseTemplateBody(row));
    await saveTemplate(ctx, row, input.name, input.description, body);
    return { id: row.id };
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
    const plans = await ctx.services.store.plans.plansOfTemplate(row.id);
    await assertNoCronRuns(
      ctx.services.store,
      plans.map((p) => p.id),
    );
    await ctx.services.store.plans.deleteTemplate(row.id);
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
    return templateDetail(await templateInScope(ctx, input.job_template_id));
  },
});

export const getJobTemplateList = defineEndpoint({
  name: 'get_job_template_list',
  kind: 'read',
  permission: 'read',
  input: z.object(ListFilters),
  async handle(ctx, input) {
    const { total, rows } = await ctx.services.store.plans.list('job_template', listFilterOf(ctx, input));
    return {
      start: input.start,
      length: input.length,
      total,
      data: rows.map((r) => ({ ...scopeAndAudit(r), id: r.id, name: r.name, description: r.description })),
    };
  },
});
