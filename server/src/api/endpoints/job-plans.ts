/**
 * Job plans: get_job_plan_list and get_job_plan_detail (behaviour notes §3.15, §3.16) and
 * Jobfleet's authoring extensions create/update/delete_job_plan and sync_job_plan. A plan is a
 * named selection of its template's steps with its own variable values; when the template
 * changes the plan reports `need_update` until it is synced.
 */
import { z } from 'zod';
import {
  buildPlanVars,
  parsePlanBody,
  parseTemplateBody,
  planDetail,
  scopeAndAudit,
} from '../../plans/plan-documents.js';
import { refuseIfCronsRun } from '../../crons/cron-citations.js';
import { StepServer } from '../../plans/plan-shapes.js';
import type { PlanBody, TemplateBody } from '../../plans/plan-shapes.js';
import { isUniqueViolation } from '../../store/constraint-errors.js';
import type { PlanRow, TemplateRow } from '../../store/plan-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zLong, zText, zVarValue } from '../input-types.js';
import { pageReply } from '../paging.js';
import { PlanListInput, editUntilSaved, modified, planListQuery, templateInScope } from './job-templates.js';

const positiveId = zLong.pipe(z.number().min(1));

const PlanVarInput = z.object({
  id: zLong.optional(),
  name: z.string().optional(),
  value: zVarValue.nullable().optional(),
  server: StepServer.nullable().optional(),
});
const PlanFields = {
  description: zText(4096).optional(),
  /** The template steps the plan runs (only `id` is read); all of them when absent. */
  step_list: z.array(z.object({ id: positiveId })).optional(),
  global_var_list: z.array(PlanVarInput).max(100).default([]),
};

export async function planInScope(
  ctx: EndpointContext,
  id: number,
  missing: 'TASK_PLAN_NOT_EXIST' | 'EXECUTE_TASK_PLAN_NOT_EXIST' = 'TASK_PLAN_NOT_EXIST',
): Promise<{ plan: PlanRow; template: TemplateRow }> {
  const plans = ctx.services.store.plans;
  const plan = await plans.getPlan(id);
  const template = plan && (await plans.getTemplate(plan.template_id));
  if (!plan || !template || plan.scope_type !== ctx.scope.type || plan.scope_id !== String(ctx.scope.id))
    throw new ApiError(missing, { id });
  return { plan, template };
}

/** A plan of the caller's scope to edit, with its template, both read as documents. */
async function planToEdit(ctx: EndpointContext, id: number) {
  const { plan, template } = await planInScope(ctx, id);
  return { plan, template, tb: parseTemplateBody(template), old: parsePlanBody(plan) };
}

function enabledSteps(template: TemplateBody, list: { id: number }[] | undefined): number[] {
  if (!list) return template.steps.map((s) => s.id);
  for (const [i, s] of list.entries()) {
    if (!template.steps.some((t) => t.id === s.id))
      throw new ApiError('JOB_TEMPLATE_INVALID', {
        reason: `step_list[${i}].id: ${s.id} is not a step of the template`,
      });
  }
  return template.steps.filter((t) => list.some((s) => s.id === t.id)).map((t) => t.id);
}

async function savePlan<T>(name: string, templateId: number, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isUniqueViolation(err)) throw new ApiError('JOB_PLAN_NAME_EXIST', { name, templateId });
    throw err;
  }
}

export const createJobPlan = defineEndpoint({
  name: 'create_job_plan',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_template_id: positiveId, name: zText(256).trim().min(1), ...PlanFields }),
  async handle(ctx, input) {
    const template = await templateInScope(ctx, input.job_template_id);
    const tb = parseTemplateBody(template);
    const body: PlanBody = {
      description: input.description ?? '',
      enabled: enabledSteps(tb, input.step_list),
      known: tb.steps.map((s) => s.id),
      vars: buildPlanVars(ctx, tb, input.global_var_list, []),
    };
    const now = Date.now();
    const id = await savePlan(input.name, template.id, () =>
      ctx.services.store.plans.insertPlan({
        template_id: template.id,
        scope_type: template.scope_type,
        scope_id: template.scope_id,
        name: input.name,
        creator: ctx.caller.username,
        create_time: now,
        last_modify_user: ctx.caller.username,
        last_modify_time: now,
        template_version: template.version,
        body: JSON.stringify(body),
      }),
    );
    // Deleted since it was read: the plan would have been deleted with it.
    if (id === undefined) throw new ApiError('JOB_TEMPLATE_NOT_EXIST', { id: template.id });
    return { id };
  },
});

export const updateJobPlan = defineEndpoint({
  name: 'update_job_plan',
  kind: 'write',
  permission: 'manage',
  input: z.object({
    job_plan_id: positiveId,
    name: zText(256).trim().min(1).optional(),
    ...PlanFields,
  }),
  handle: (ctx, input) =>
    editUntilSaved(async () => {
      const { plan, template, tb, old } = await planToEdit(ctx, input.job_plan_id);
      const body: PlanBody = {
        description: input.description ?? old.description,
        enabled: input.step_list ? enabledSteps(tb, input.step_list) : old.enabled,
        // A step list given decides about every step the template has now: a sync must not take
        // one left out of it for a step added since, and enable it.
        known: input.step_list ? [...new Set([...old.known, ...tb.steps.map((s) => s.id)])] : old.known,
        vars: buildPlanVars(ctx, tb, input.global_var_list, old.vars),
      };
      const name = input.name ?? plan.name;
      const text = JSON.stringify(body);
      const saved =
        (text === plan.body && name === plan.name) ||
        (await savePlan(name, template.id, () =>
          ctx.services.store.plans.updatePlan(plan.id, plan, { name, body: text, ...modified(ctx) }),
        ));
      return saved ? { id: plan.id } : undefined;
    }),
});

export const deleteJobPlan = defineEndpoint({
  name: 'delete_job_plan',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_plan_id: positiveId }),
  async handle(ctx, input) {
    const { plan } = await planInScope(ctx, input.job_plan_id);
    refuseIfCronsRun(await ctx.services.store.plans.deletePlan(plan.id));
    return { id: plan.id };
  },
});

/** Brings a plan up to its template: steps added since are enabled, removed ones dropped, values kept by variable. */
export const syncJobPlan = defineEndpoint({
  name: 'sync_job_plan',
  kind: 'write',
  permission: 'manage',
  input: z.object({ job_plan_id: positiveId }),
  handle: (ctx, input) =>
    editUntilSaved(async () => {
      const { plan, template, tb, old } = await planToEdit(ctx, input.job_plan_id);
      const body: PlanBody = {
        description: old.description,
        enabled: tb.steps
          .filter((s) => old.enabled.includes(s.id) || !old.known.includes(s.id))
          .map((s) => s.id),
        known: tb.steps.map((s) => s.id),
        vars: buildPlanVars(ctx, tb, [], old.vars),
      };
      const saved = await ctx.services.store.plans.updatePlan(plan.id, plan, {
        body: JSON.stringify(body),
        template_version: template.version,
        ...modified(ctx),
      });
      return saved ? { id: plan.id } : undefined;
    }),
});

export const getJobPlanList = defineEndpoint({
  name: 'get_job_plan_list',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_template_id: zLong.optional(), ...PlanListInput }),
  async handle(ctx, input) {
    const store = ctx.services.store.plans;
    const { page, filter } = planListQuery(ctx, input);
    const { total, rows } = await store.list('job_plan', { ...filter, templateId: input.job_template_id });
    const versions = await store.templateVersions(rows.map((r) => r.template_id));
    return pageReply(
      page,
      total,
      rows.map((r) => ({
        ...scopeAndAudit(r),
        id: r.id,
        job_template_id: r.template_id,
        name: r.name,
        need_update: versions.get(r.template_id) !== r.template_version,
      })),
    );
  },
});

export const getJobPlanDetail = defineEndpoint({
  name: 'get_job_plan_detail',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_plan_id: positiveId }),
  fieldErrors: { job_plan_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const { plan, template } = await planInScope(ctx, input.job_plan_id);
    return planDetail(ctx.services.secretBox, ctx.services.store.inventory, plan, template, ctx.scope.bizIds);
  },
});
