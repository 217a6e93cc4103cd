/** fast_execute_script (spec fast_execute_script.md; behaviour notes §3.1, §5). */
import { z } from 'zod';
import { HostStatus, JobType, LaunchMode, StepType } from '../../engine/statuses.js';
import type { ScriptLanguageCode } from '../../engine/statuses.js';
import type { ScriptStepSpec } from '../../engine/step-spec.js';
import { resolveTargets } from '../../inventory/target-resolution.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetServer, zBase64, zBool, zInt, zLong } from '../input-types.js';

const MAX_SCRIPT_BYTES = 16_777_215;
const MAX_PARAM_BYTES = 65_535;
const MAX_SENSITIVE_PARAM_BYTES = 48_128;
const MAX_TIMEOUT = 259_200;
const DEFAULT_TIMEOUT = 7200;
const MAX_TARGETS = 50_000;
/** A repeated client_request_id within this window returns the first job. */
const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export const Input = z.object({
  script_version_id: zLong.optional(),
  script_id: z.string().optional(),
  script_content: zBase64(MAX_SCRIPT_BYTES).optional(),
  script_language: zInt.optional(),
  script_param: zBase64(MAX_PARAM_BYTES).optional(),
  is_param_sensitive: zInt.pipe(z.union([z.literal(0), z.literal(1)])).optional(),
  timeout: zInt.pipe(z.number().min(1).max(MAX_TIMEOUT)).optional(),
  account_id: zLong.optional(),
  account_alias: z.string().optional(),
  task_name: z.string().max(512).optional(),
  target_server: TargetServer.optional(),
  callback_url: z.string().max(2048).optional(),
  start_task: zBool.optional(),
  rolling_config: z.unknown().optional(),
  /** Jobfleet extension: a retried submission with the same id returns the first job. */
  client_request_id: z.string().min(1).max(128).optional(),
});

/** `Script Execution_yyyyMMddHHmmssSSS`, BK-JOB's default name (in English). */
export function defaultJobName(prefix: string, now = new Date()): string {
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

/** account_id wins; else account_alias among the scope's system accounts (behaviour notes §5). */
export async function resolveAccount(
  ctx: EndpointContext,
  id: number | undefined,
  alias: string | undefined,
) {
  const inv = ctx.services.store.inventory;
  if (id !== undefined) {
    const a = await inv.getAccount(id);
    if (!a || !ctx.scope.bizIds.includes(a.biz_id)) throw new ApiError('ACCOUNT_NOT_EXIST', { account: id });
    return a;
  }
  if (alias !== undefined && alias !== '') {
    const a = await inv.findSystemAccountByAlias(ctx.scope.bizIds, alias);
    if (!a) throw new ApiError('ACCOUNT_NOT_EXIST', { account: alias });
    return a;
  }
  throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'account_id|account_alias' });
}

export const fastExecuteScript = defineEndpoint({
  name: 'fast_execute_script',
  kind: 'write',
  input: Input,
  fieldErrors: {
    script_language: 'ILLEGAL_PARAM_WITH_PARAM_NAME',
    script_version_id: 'ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    const ex = ctx.services.store.executions;
    if (input.client_request_id !== undefined) {
      const prior = await ex.findJobByClientRequestId(
        ctx.caller.appCode,
        input.client_request_id,
        Date.now() - IDEMPOTENCY_WINDOW_MS,
      );
      if (prior) {
        const [step] = await ex.getStepsOfJob(prior.id);
        return {
          job_instance_id: prior.id,
          job_instance_name: prior.name,
          step_instance_id: step?.id ?? null,
        };
      }
    }
    if (input.script_version_id !== undefined || (input.script_id !== undefined && input.script_id !== '')) {
      throw new ApiError('SCRIPT_NOT_SUPPORTED_YET', {
        ref: input.script_version_id ?? input.script_id ?? '',
      });
    }
    if (input.script_content === undefined || input.script_content === '') {
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', {
        param: 'script_version_id|script_id|script_content',
      });
    }
    const language = input.script_language;
    if (language === undefined || language < 1 || language > 6) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'script_language',
        reason: 'must be 1 shell, 2 bat, 3 perl, 4 python, 5 powershell or 6 sql',
      });
    }
    if (input.rolling_config !== undefined && input.rolling_config !== null) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'rolling_config',
        reason: 'rolling execution is not supported yet',
      });
    }
    const sensitive = input.is_param_sensitive === 1;
    const param = Buffer.from(input.script_param ?? '', 'base64');
    if (sensitive && param.length > MAX_SENSITIVE_PARAM_BYTES) {
      throw new ApiError('BAD_REQUEST', {
        reason: `script_param: a sensitive parameter decodes to more than ${MAX_SENSITIVE_PARAM_BYTES} bytes`,
      });
    }
    const callbackUrl = checkCallbackUrl(input.callback_url);
    const account = await resolveAccount(ctx, input.account_id, input.account_alias);
    if (!input.target_server) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'target_server' });
    const hosts = await resolveTargets(ctx.services.store.inventory, ctx.scope, input.target_server);
    if (hosts.length > MAX_TARGETS)
      throw new ApiError('SCRIPT_TASK_TARGET_EXCEEDS_LIMIT', { count: hosts.length, limit: MAX_TARGETS });

    const spec: ScriptStepSpec = {
      kind: 'script',
      scriptContent: input.script_content,
      language: language as ScriptLanguageCode,
      scriptParam: param.toString('utf8').replace(/\r?\n/g, ' '),
      isParamSensitive: sensitive,
      timeout: input.timeout ?? DEFAULT_TIMEOUT,
      account: { id: account.id, alias: account.alias, osUser: account.os_user },
      targetServer: input.target_server,
      ignoreError: false,
    };
    const name =
      input.task_name && input.task_name !== '' ? input.task_name : defaultJobName('Script Execution');
    const { jobInstanceId, stepInstanceIds } = await ctx.services.engine.submit(
      {
        scopeType: ctx.scope.type,
        scopeId: String(ctx.scope.id),
        name,
        type: JobType.FAST_SCRIPT,
        launchMode: LaunchMode.API,
        operator: ctx.caller.username,
        appCode: ctx.caller.appCode,
        callbackUrl,
        clientRequestId: input.client_request_id ?? null,
        steps: [
          {
            name,
            type: StepType.SCRIPT,
            spec,
            hosts: hosts.map((h) => ({
              hostId: h.id,
              cloudId: h.cloud_id,
              ip: h.ip,
              ipv6: h.ipv6,
              agentId: h.agent_id,
              status: h.agent_id ? HostStatus.WAITING : HostStatus.AGENT_NOT_INSTALLED,
            })),
          },
        ],
      },
      input.start_task ?? true,
    );
    return {
      job_instance_id: jobInstanceId,
      job_instance_name: name,
      step_instance_id: stepInstanceIds[0] ?? null,
    };
  },
});
