/**
 * get_job_plan_sync_preview (Jobfleet extension): what sync_job_plan would change in a plan,
 * shown before it is run, as BK-JOB's console shows a template-vs-plan diff and then the crons
 * that use the plan. Read-only; cipher values are never answered.
 */
import { z } from 'zod';
import { parsePlanBody, parseTemplateBody } from '../../plans/plan-documents.js';
import { VarType, planValueOf } from '../../plans/plan-shapes.js';
import { defineEndpoint } from '../endpoint.js';
import { zLong } from '../input-types.js';
import { planInScope } from './job-plans.js';

/** kept: runs before and after; disabled: stays off; added: new in the template, sync enables it. */
type StepChange = 'kept' | 'disabled' | 'added';
/** kept: the plan's value stays; added: new in the template, its value applies; dropped: gone from the template. */
type VarChange = 'kept' | 'added' | 'dropped';

export const getJobPlanSyncPreview = defineEndpoint({
  name: 'get_job_plan_sync_preview',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_plan_id: zLong.pipe(z.number().min(1)) }),
  fieldErrors: { job_plan_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const { plan, template } = await planInScope(ctx, input.job_plan_id);
    const tb = parseTemplateBody(template);
    const pb = parsePlanBody(plan);
    const steps = tb.steps.map((s) => {
      const change: StepChange = pb.enabled.includes(s.id)
        ? 'kept'
        : pb.known.includes(s.id)
          ? 'disabled'
          : 'added';
      return { id: s.id, name: s.name, type: s.type, change };
    });
    const removedSteps = pb.known.filter((id) => !tb.steps.some((s) => s.id === id));
    const shown = (type: number, value: string | undefined, sealed: string | undefined) =>
      type === VarType.CIPHER ? (sealed ? '******' : '') : (value ?? '');
    const vars = tb.vars.map((def) => {
      const own = planValueOf(pb.vars, def);
      const change: VarChange = own ? 'kept' : 'added';
      const hostList = def.type === VarType.HOST_LIST;
      return {
        id: def.id,
        name: def.name,
        type: def.type,
        change,
        template_value: hostList ? null : shown(def.type, def.value, def.sealed),
        plan_value: !own || hostList ? null : shown(def.type, own.value, own.sealed),
      };
    });
    const dropped = pb.vars
      .filter((v) => !tb.vars.some((d) => d.id === v.id && d.name === v.name))
      .map((v) => ({ id: v.id, name: v.name, change: 'dropped' as VarChange }));
    const crons = await ctx.services.store.crons.citingPlans([plan.id]);
    return {
      job_plan_id: plan.id,
      job_template_id: template.id,
      need_update: plan.template_version !== template.version,
      step_list: steps,
      removed_step_id_list: removedSteps,
      global_var_list: [...vars, ...dropped],
      cron_list: crons.map((c) => ({ id: c.id, name: c.name })),
    };
  },
});
