/**
 * execute_job_plan (behaviour notes §3.4): runs a plan's enabled steps in order, with its
 * variable values overridden by `global_var_list` (by id or name). Everything is resolved
 * (variables, accounts, hosts, files, dangerous-command rules) before the job is stored, so a
 * refusal creates nothing.
 */
import { z } from 'zod';
import { callbackUrlAtRest, sealCallbackUrl } from '../../engine/callback-url.js';
import { expandStrings } from '../../engine/job-variables.js';
import type { VarState } from '../../engine/job-variables.js';
import { sealStepParam } from '../../engine/sensitive-params.js';
import { JobType, LaunchMode, StepType } from '../../engine/statuses.js';
import type { ScriptLanguageCode } from '../../engine/statuses.js';
import type { StepSpec } from '../../engine/step-spec.js';
import { resolveTargets, resolveTargetsKeepingMissing } from '../../inventory/target-resolution.js';
import { citedScript } from '../../plans/library-scripts.js';
import {
  arrayValueProblem,
  cipherValue,
  parsePlanBody,
  parseTemplateBody,
  planSeal,
  runnableParam,
} from '../../plans/plan-documents.js';
import { VarType, planValueOf } from '../../plans/plan-shapes.js';
import type { StepServer, StoredStep } from '../../plans/plan-shapes.js';
import type { NewJob, NewStep } from '../../store/execution-store.js';
import type { EndpointContext } from '../endpoint.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetServer, zBool, zLong, zVarValue } from '../input-types.js';
import { assertScopeQuota } from '../scope-quota.js';
import { assertCallbackAllowed, enforceDangerousRules } from '../submission-checks.js';
import type { ScreenedScript } from '../submission-checks.js';
import { resolveDatabaseAccount } from './fast-execute-sql.js';
import { assertFileTaskLimit, resolveSources } from './fast-transfer-file.js';
import { checkTargetPath } from './file-paths.js';
import { planInScope } from './job-plans.js';
import {
  checkCallbackUrl,
  hostTasksOf,
  priorSubmission,
  resolveAccount,
  resolveScriptTargets,
  rollingSpecOf,
} from './job-submission.js';

const SQL_LANGUAGE = 6;

const Input = z.object({
  job_plan_id: zLong.pipe(z.number().min(1)),
  global_var_list: z
    .array(
      z.object({
        id: zLong.pipe(z.number().min(1)).optional(),
        name: z.string().optional(),
        value: zVarValue.nullable().optional(),
        server: TargetServer.nullable().optional(),
      }),
    )
    .max(100)
    .default([]),
  callback_url: z.string().max(2048).optional(),
  start_task: zBool.optional(),
  client_request_id: z.string().min(1).max(128).optional(),
});
type Input = z.output<typeof Input>;

function hasHosts(s: StepServer | TargetServer | null | undefined): boolean {
  return Boolean(
    s &&
    ((s.host_id_list?.length ?? 0) > 0 ||
      (s.ip_list?.length ?? 0) > 0 ||
      (s.dynamic_group_list?.length ?? 0) > 0 ||
      (s.topo_node_list?.length ?? 0) > 0),
  );
}

/** The job's variables: template definitions, then the plan's values, then the request's. */
function jobVars(
  ctx: EndpointContext,
  defs: ReturnType<typeof parseTemplateBody>['vars'],
  plan: ReturnType<typeof parsePlanBody>,
  given: Input['global_var_list'],
): VarState {
  const overrides = new Map<number, Input['global_var_list'][number]>();
  for (const [i, g] of given.entries()) {
    if (g.id === undefined && !g.name)
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `global_var_list[${i}]`,
        reason: 'give its id or name',
      });
    const def = defs.find((d) => (g.id !== undefined ? d.id === g.id : d.name === g.name));
    if (!def)
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `global_var_list[${i}]`,
        reason: `the plan has no variable ${g.id ?? g.name ?? ''}`,
      });
    overrides.set(def.id, g);
  }
  const missing: string[] = [];
  const state: VarState = defs.map((def) => {
    const pv = planValueOf(plan.vars, def) ?? def;
    const g = overrides.get(def.id);
    const v: VarState[number] = { name: def.name, type: def.type };
    if (def.type === VarType.HOST_LIST) {
      // A host list given replaces the plan's, an empty one too: the step using it is then
      // refused, not run on the plan's hosts that the caller meant to replace.
      const server = g?.server ? g.server : pv.server;
      if (server) v.server = server;
      if (!hasHosts(server)) missing.push(def.name);
    } else if (def.type === VarType.CIPHER) {
      // The mask get_job_plan_detail shows is no new value: a client sending back what it read
      // runs with the plan's secret, not with `******`.
      const given = cipherValue(g?.value, pv, planSeal(ctx, def.name));
      const sealed = given.sealed ?? pv.sealed;
      if (sealed) v.sealed = sealed;
      if (!v.sealed) missing.push(def.name);
    } else {
      v.value = g?.value ?? pv.value ?? '';
      if (v.value === '') missing.push(def.name);
      const problem = arrayValueProblem(def.type, v.value);
      if (problem)
        throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
          param: `global_var_list.${def.name}`,
          reason: problem,
        });
    }
    return v;
  });
  const required = missing.filter((n) => defs.find((d) => d.name === n)?.required === 1);
  if (required.length > 0) throw new ApiError('REQUIRED_VARIABLE_MISSING', { names: required.join(', ') });
  return state;
}

function targetOf(at: string, server: StepServer, vars: VarState): TargetServer {
  const name = server.variable;
  const resolved = name ? vars.find((v) => v.name === name)?.server : server;
  if (resolved && hasHosts(resolved)) return resolved;
  if (name) throw new ApiError('TASK_INSTANCE_RELATED_HOST_VAR_SERVER_EMPTY', { name });
  throw new ApiError('SERVER_EMPTY', { param: at });
}

async function buildStep(
  ctx: EndpointContext,
  step: StoredStep,
  vars: VarState,
  screened: ScreenedScript[],
  keepMissing: boolean,
): Promise<NewStep> {
  const inv = ctx.services.store.inventory;
  if (step.script_info) {
    const si = step.script_info;
    const cited = si.script_type === 1 ? undefined : await citedScript(ctx, si);
    const content = cited?.content ?? si.script_content ?? '';
    const language = (cited?.language ?? si.script_language) as ScriptLanguageCode;
    screened.push(await enforceDangerousRules(ctx, language, content));
    const targetServer = targetOf(`step ${step.name}: server`, si.server, vars);
    const { hosts, missing } = await resolveScriptTargets(ctx, targetServer, keepMissing);
    // A SQL step (language 6) names its database account; the client runs as that account's system account.
    const sql = language === SQL_LANGUAGE ? await resolveDatabaseAccount(ctx, si.account.id) : undefined;
    const spec: StepSpec = sealStepParam(ctx.services.secretBox, {
      kind: 'script',
      scriptContent: content,
      language,
      // Variables are put in as the step starts (script-step.ts): earlier steps may change them.
      scriptParam: runnableParam(ctx.services.secretBox, si),
      isParamSensitive: si.is_param_sensitive === 1,
      timeout: si.script_timeout,
      account: sql?.runAs ?? (await resolveAccount(ctx, si.account.id, undefined)),
      targetServer,
      ignoreError: si.is_ignore_error === 1,
      vars: true,
      ...(sql ? { database: sql.database } : {}),
      ...(cited
        ? {
            library: {
              source: cited.source,
              scriptId: cited.scriptId,
              scriptVersionId: cited.scriptVersionId,
            },
          }
        : {}),
      ...rollingSpecOf(si.rolling_config),
    });
    const type = sql ? StepType.SQL : StepType.SCRIPT;
    return { name: step.name, type, spec, hosts: hostTasksOf(hosts, si.rolling_config, missing) };
  }
  if (step.file_info) {
    const fi = step.file_info;
    const dest = fi.file_destination;
    const targetServer = targetOf(`step ${step.name}: file_destination.server`, dest.server, vars);
    const sources = await resolveSources(
      ctx,
      fi.file_source_list.map((s) => ({
        file_list: s.file_list.map((f) => expandStrings(f, vars)),
        file_type: s.file_type,
        ...(s.server
          ? { server: targetOf(`step ${step.name}: file_source_list.server`, s.server, vars) }
          : {}),
        ...(s.account ? { account: { id: s.account.id } } : {}),
      })),
    );
    // A cron's job marks missing targets; missing source hosts (above) are refused even then.
    const { hosts, missing } = keepMissing
      ? await resolveTargetsKeepingMissing(inv, ctx.scope, targetServer)
      : { hosts: await resolveTargets(inv, ctx.scope, targetServer), missing: [] };
    assertFileTaskLimit(sources, hosts.length + missing.length);
    const files = fi.file_source_list.map((s) => s.file_list);
    const named = [dest.path, ...files.flat()].some((p) => expandStrings(p, vars) !== p);
    const spec: StepSpec = {
      kind: 'file',
      sources,
      targetPath: checkTargetPath(`step ${step.name}: file_destination.path`, expandStrings(dest.path, vars)),
      targetName: '',
      account: await resolveAccount(ctx, dest.account.id, undefined),
      timeout: fi.timeout,
      uploadSpeedLimit: fi.source_speed_limit ?? 0,
      downloadSpeedLimit: fi.destination_speed_limit ?? 0,
      transferMode: fi.transfer_mode,
      targetServer,
      ignoreError: fi.is_ignore_error === 1,
      ...rollingSpecOf(fi.rolling_config),
      ...(named ? { pathTemplates: { targetPath: dest.path, files } } : {}),
    };
    return {
      name: step.name,
      type: StepType.FILE,
      spec,
      hosts: hostTasksOf(hosts, fi.rolling_config, missing),
    };
  }
  const ai = step.approval_info;
  const spec: StepSpec = {
    kind: 'confirm',
    approvers: ai?.approval_user.user_list ?? [],
    message: ai?.approval_message ?? '',
    notifyChannels: ai?.notify_channel ?? [],
    // Sealed as the template holds it (a template stored before webhook URLs were sealed: now).
    webhookUrl: ai?.webhook_url ? callbackUrlAtRest(ctx.services.secretBox, ai.webhook_url) : null,
  };
  return { name: step.name, type: StepType.CONFIRM, spec, hosts: [] };
}

/** Plan variable values given at execution (execute_job_plan's global_var_list, a cron's values). */
export type GivenVars = Input['global_var_list'];

/**
 * A plan's job as the caller would start it, with everything resolved (variables, accounts,
 * hosts, files, dangerous-command rules); throws the refusal before anything is stored.
 * `keepMissingHosts` is for a cron's job: target hosts named by id that no longer exist are
 * marked (status 2) instead of refusing the job with 1244030, as BK-JOB does for crons only
 * (behaviour notes §5); execute_job_plan keeps the refusal.
 */
export async function preparePlanJob(
  ctx: EndpointContext,
  planId: number,
  given: GivenVars,
  keepMissingHosts = false,
): Promise<{
  job: Omit<NewJob, 'launchMode' | 'callbackUrl' | 'clientRequestId'>;
  screened: ScreenedScript[];
}> {
  const { plan, template } = await planInScope(ctx, planId, 'EXECUTE_TASK_PLAN_NOT_EXIST');
  const tb = parseTemplateBody(template);
  const pb = parsePlanBody(plan);
  const steps = tb.steps.filter((s) => pb.enabled.includes(s.id));
  if (steps.length === 0) throw new ApiError('EXECUTE_TASK_PLAN_ILLEGAL', { id: plan.id });
  const vars = jobVars(ctx, tb.vars, pb, given);
  const screened: ScreenedScript[] = [];
  const newSteps: NewStep[] = [];
  for (const s of steps) newSteps.push(await buildStep(ctx, s, vars, screened, keepMissingHosts));
  return {
    job: {
      scopeType: ctx.scope.type,
      scopeId: String(ctx.scope.id),
      name: plan.name,
      type: JobType.PLAN,
      operator: ctx.caller.username,
      appCode: ctx.caller.appCode,
      steps: newSteps,
      plan: { planId: plan.id, templateId: template.id, vars: JSON.stringify(vars) },
    },
    screened,
  };
}

/** The scope's running-jobs and running-hosts quota, for a plan's job about to start. */
export async function assertPlanJobQuota(ctx: EndpointContext, job: Pick<NewJob, 'steps'>): Promise<void> {
  await assertScopeQuota(ctx, Math.max(0, ...job.steps.map((s) => s.hosts.length)));
}

export const executeJobPlan = defineEndpoint({
  name: 'execute_job_plan',
  kind: 'write',
  permission: 'run',
  input: Input,
  fieldErrors: { job_plan_id: 'ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const prior = await priorSubmission(ctx, input.client_request_id);
    if (prior) return { ...prior, step_instance_id: null };
    const callbackUrl = checkCallbackUrl(input.callback_url);
    assertCallbackAllowed(ctx, callbackUrl);
    const { job, screened } = await preparePlanJob(ctx, input.job_plan_id, input.global_var_list);
    if (input.start_task ?? true) await assertPlanJobQuota(ctx, job);
    const { jobInstanceId } = await ctx.services.engine.submit(
      {
        ...job,
        launchMode: LaunchMode.API,
        // Stored sealed (callback-url.ts); the callback queue opens it to send.
        callbackUrl: sealCallbackUrl(ctx.services.secretBox, callbackUrl),
        clientRequestId: input.client_request_id ?? null,
      },
      input.start_task ?? true,
    );
    for (const s of screened) await s.recordHits(jobInstanceId);
    return { job_instance_id: jobInstanceId, job_instance_name: job.name, step_instance_id: null };
  },
});
