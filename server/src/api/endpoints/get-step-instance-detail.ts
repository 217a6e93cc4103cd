/**
 * get_step_instance_detail (behaviour notes §3.7): the step's definition as submitted, a plan
 * step's parameters and file paths with the variables it starts with put in.
 */
import { z } from 'zod';
import { scriptParamOf, startingVars, withFilePaths } from '../../engine/job-variables.js';
import type { VarState } from '../../engine/job-variables.js';
import { parseStepSpec } from '../../engine/step-spec.js';
import type { StepInstance } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { zLong } from '../input-types.js';
import type { TargetServer } from '../input-types.js';
import { jobInScope, stepWithSpecOfJob } from './job-lookup.js';

/** TaskStepTypeEnum of this API: 1 script (SQL included), 2 file, 3 approval. */
const DETAIL_TYPE: Record<number, number> = { 1: 1, 2: 2, 3: 3, 4: 1 };

/** The variables a plan step starts (or started) with: its parameters and paths take them. */
async function varsOf(ctx: EndpointContext, step: StepInstance): Promise<VarState> {
  const states = await ctx.services.store.plans.varStates(step.job_instance_id);
  return startingVars(states, step.id, step.execute_count);
}

export const getStepInstanceDetail = defineEndpoint({
  name: 'get_step_instance_detail',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
  }),
  // Required query parameters of BK-JOB's Spring handler: missing or bad, 1240003 (§2.2).
  fieldErrors: { job_instance_id: 'BAD_REQUEST', step_instance_id: 'BAD_REQUEST' },
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepWithSpecOfJob(ctx, job, input.step_instance_id);
    let spec = parseStepSpec(step.spec);
    const server = (t: TargetServer | null) => ({
      ip_list: t?.ip_list ?? [],
      host_id_list: t?.host_id_list ?? [],
      dynamic_group_list: t?.dynamic_group_list ?? [],
      topo_node_list: t?.topo_node_list ?? [],
    });
    const base = {
      id: step.id,
      name: step.name,
      type: DETAIL_TYPE[step.type] ?? step.type,
      approval_info: null,
      // Jobfleet extension: how the step rolled, as fast_execute_script and fast_transfer_file take it.
      rolling_config: spec.rolling
        ? {
            type: 1,
            mode: spec.rolling.mode,
            execution_mode: 1,
            expression: spec.rolling.expression,
            ...(spec.rolling.maxFailedHosts !== undefined
              ? { max_failed_hosts: spec.rolling.maxFailedHosts }
              : {}),
          }
        : null,
    };
    if (spec.kind === 'confirm') {
      const confirmations = await ctx.services.store.plans.confirmations(step.id);
      return {
        ...base,
        script_info: null,
        file_info: null,
        approval_info: {
          approval_user: { user_list: spec.approvers },
          approval_message: spec.message,
          notify_channel: spec.notifyChannels,
          // Jobfleet extension: who continued, terminated or restarted the step, when and why.
          confirmation_list: confirmations.map((c) => ({
            action: c.action,
            operator: c.operator,
            reason: c.reason,
            time: Number(c.at),
          })),
        },
      };
    }
    if (spec.kind === 'file') {
      if (spec.pathTemplates) spec = withFilePaths(spec, await varsOf(ctx, step));
      return {
        ...base,
        script_info: null,
        file_info: {
          file_source_list: spec.sources.map((s) => ({
            file_list: s.files,
            account: s.account ? { id: s.account.id, name: s.account.alias } : null,
            server: s.kind === 'host' ? server(s.server) : null,
            file_type: s.fileType,
            file_source_id: null,
          })),
          file_destination: {
            path: spec.targetPath,
            account: { id: spec.account.id, name: spec.account.alias },
            server: server(spec.targetServer),
          },
          timeout: spec.timeout,
          source_speed_limit: spec.uploadSpeedLimit || null,
          destination_speed_limit: spec.downloadSpeedLimit || null,
          transfer_mode: spec.transferMode,
          is_ignore_error: spec.ignoreError ? 1 : 0,
        },
      };
    }
    return {
      ...base,
      script_info: {
        script_type: spec.library?.source ?? 1,
        script_id: spec.library?.scriptId ?? null,
        script_version_id: spec.library?.scriptVersionId ?? null,
        script_content: Buffer.from(spec.scriptContent, 'base64').toString('utf8'),
        script_language: spec.language,
        script_param: spec.isParamSensitive
          ? '******'
          : spec.vars
            ? scriptParamOf(spec.scriptParam, await varsOf(ctx, step))
            : spec.scriptParam,
        windows_interpreter: null,
        script_timeout: spec.timeout,
        // A SQL step names its database account; the system account that runs the client is its own.
        account: spec.database
          ? { id: spec.database.accountId, name: spec.database.alias }
          : { id: spec.account.id, name: spec.account.alias },
        server: server(spec.targetServer),
        is_param_sensitive: spec.isParamSensitive ? 1 : 0,
        is_ignore_error: spec.ignoreError ? 1 : 0,
      },
      file_info: null,
    };
  },
});
