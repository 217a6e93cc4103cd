/** fast_execute_script (spec fast_execute_script.md; behaviour notes §3.1, §5). */
import { sealStepParam } from '../../engine/sensitive-params.js';
import { z } from 'zod';
import { JobType, StepType } from '../../engine/statuses.js';
import type { ScriptLanguageCode } from '../../engine/statuses.js';
import type { ScriptStepSpec } from '../../engine/step-spec.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetsChanged } from '../../store/host-tasks-by-id.js';
import { zBase64, zBase64Param, zInt, zLong } from '../input-types.js';
import { scriptToRun } from '../script-reference.js';
import { readScopeUsage } from '../scope-quota.js';
import { assertCallbackAllowed, enforceDangerousRules } from '../submission-checks.js';
import {
  CommonExecuteFields,
  DEFAULT_TIMEOUT,
  checkCallbackUrl,
  jobNameOr,
  hostsByIdOf,
  priorSubmission,
  resolveScriptTargets,
  resolveAccount,
  rollingSpecOf,
  submitOneStepJob,
} from './job-submission.js';

const MAX_SCRIPT_BYTES = 16_777_215;
const MAX_PARAM_BYTES = 65_535;
const MAX_SENSITIVE_PARAM_BYTES = 48_128;
const QUOTA_ERRORS = new Set([
  'RUNNING_JOB_EXCEED_RESOURCE_SCOPE_QUOTA_LIMIT',
  'RUNNING_HOSTS_EXCEED_SCOPE_QUOTA',
]);

export const Input = z.object({
  script_version_id: zLong.pipe(z.number().min(1)).optional(),
  script_id: z.string().optional(),
  script_content: zBase64(MAX_SCRIPT_BYTES).optional(),
  script_language: zInt.optional(),
  script_param: zBase64Param(MAX_PARAM_BYTES).optional(),
  is_param_sensitive: zInt.pipe(z.union([z.literal(0), z.literal(1)])).optional(),
  ...CommonExecuteFields,
});

export const fastExecuteScript = defineEndpoint({
  name: 'fast_execute_script',
  kind: 'write',
  permission: 'run',
  input: Input,
  fieldErrors: {
    script_language: 'ILLEGAL_PARAM_WITH_PARAM_NAME',
    script_version_id: 'ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    const prior = await priorSubmission(ctx, input.client_request_id);
    if (prior) return prior;
    // BK-JOB checks the request's own fields before it looks anything up.
    const target = input.target_server;
    if (!target) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'target_server' });
    const { content, cited, library } = await scriptToRun(ctx, input);
    // A library script runs in its own language, whatever script_language says.
    const language = cited ? cited.version.script.language : input.script_language;
    if (language === undefined || language < 1 || language > 6) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'script_language',
        reason: 'must be 1 shell, 2 bat, 3 perl, 4 python, 5 powershell or 6 sql',
      });
    }
    // The account, the targets and the scope's usage are read while the rules are (one round
    // trip, not four, on PostgreSQL); their errors still come in this order, after the rules'.
    const accountRead = settledLater(resolveAccount(ctx, input.account_id, input.account_alias));
    // A host id list is read by the insert of the job itself (below); other targets meanwhile.
    const byId = hostsByIdOf(ctx, target, input.rolling_config);
    const targetsRead = !byId ? settledLater(resolveScriptTargets(ctx, target)) : undefined;
    const usage = (input.start_task ?? true) ? settledLater(readScopeUsage(ctx)) : undefined;
    const screened = await enforceDangerousRules(ctx, language, content);
    const sensitive = input.is_param_sensitive === 1;
    const param = Buffer.from(input.script_param ?? '', 'base64');
    if (sensitive && param.length > MAX_SENSITIVE_PARAM_BYTES) {
      throw new ApiError('BAD_REQUEST', {
        reason: `script_param: a sensitive parameter decodes to more than ${MAX_SENSITIVE_PARAM_BYTES} bytes`,
      });
    }
    const callbackUrl = checkCallbackUrl(input.callback_url);
    assertCallbackAllowed(ctx, callbackUrl);
    const account = await accountRead;

    const spec: ScriptStepSpec = sealStepParam(ctx.services.secretBox, {
      kind: 'script',
      scriptContent: content,
      language: language as ScriptLanguageCode,
      scriptParam: param.toString('utf8').replace(/\n/g, ' '),
      isParamSensitive: sensitive,
      timeout: input.timeout ?? DEFAULT_TIMEOUT,
      account,
      targetServer: target,
      ignoreError: false,
      ...rollingSpecOf(input.rolling_config),
      ...(library ? { library } : {}),
    });
    const job = {
      name: jobNameOr(input.task_name, 'Script Execution'),
      jobType: JobType.FAST_SCRIPT,
      stepType: StepType.SCRIPT,
      spec,
      callbackUrl,
      clientRequestId: input.client_request_id,
      startTask: input.start_task,
      rolling: input.rolling_config,
      ...(usage ? { usage } : {}),
    };
    // A host id list goes straight into the insert of the step's tasks. Should any host be
    // missing or outside the scope, or a quota refuse the job, nothing is stored and the
    // targets are resolved the long way: its errors name the hosts, and come before a quota's.
    const direct =
      byId &&
      (await submitOneStepJob(ctx, { ...job, hosts: byId }).catch((err: unknown) => {
        if (err instanceof TargetsChanged || (err instanceof ApiError && QUOTA_ERRORS.has(err.errorName)))
          return undefined;
        throw err;
      }));
    const reply =
      direct ??
      (await submitOneStepJob(ctx, {
        ...job,
        hosts: (await (targetsRead ?? resolveScriptTargets(ctx, target))).hosts,
      }));
    await screened.recordHits(reply.job_instance_id);
    return reply;
  },
});

/** A promise awaited later, maybe never (an earlier check refused the call): its failure is not unhandled meanwhile. */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
