/**
 * fast_execute_sql (spec fast_execute_sql.md; behaviour notes §3.3). The targets are the
 * database hosts: on each, the agent runs the MySQL/MariaDB client as the database account's
 * linked system account, against the database server on that host at the account's port.
 * The job is type 1 with one step of type 4; the reply's step_instance_id is null, as BK-JOB's.
 */
import { z } from 'zod';
import { JobType, StepType } from '../../engine/statuses.js';
import type { DatabaseRef, ScriptStepSpec } from '../../engine/step-spec.js';
import { AccountCategory, AccountType } from '../../store/account-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zBase64, zLong } from '../input-types.js';
import { scriptToRun } from '../script-reference.js';
import { assertCallbackAllowed, enforceDangerousRules } from '../submission-checks.js';
import {
  CommonExecuteFields,
  DEFAULT_TIMEOUT,
  checkCallbackUrl,
  jobNameOr,
  priorSubmission,
  resolveScriptTargets,
  submitOneStepJob,
} from './job-submission.js';

const SQL_LANGUAGE = 6;
const MAX_SCRIPT_BYTES = 16_777_215;

const ENGINES: Partial<Record<number, DatabaseRef['engine']>> = {
  [AccountType.MYSQL]: 'mysql',
  [AccountType.ORACLE]: 'oracle',
  [AccountType.DB2]: 'db2',
};

const Input = z.object({
  script_version_id: zLong.pipe(z.number().min(1)).optional(),
  script_id: z.string().optional(),
  script_content: zBase64(MAX_SCRIPT_BYTES).optional(),
  db_account_id: zLong.optional(),
  timeout: CommonExecuteFields.timeout,
  task_name: CommonExecuteFields.task_name,
  target_server: CommonExecuteFields.target_server,
  callback_url: CommonExecuteFields.callback_url,
  start_task: CommonExecuteFields.start_task,
  client_request_id: CommonExecuteFields.client_request_id,
});

/** The database account and the system account that runs its client, both of the job's scope. */
export async function resolveDatabaseAccount(
  ctx: EndpointContext,
  id: number | undefined,
): Promise<{ database: DatabaseRef; runAs: ScriptStepSpec['account'] }> {
  if (id === undefined || id < 1)
    throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'db_account_id' });
  const accounts = ctx.services.store.accounts;
  const db = await accounts.get(id);
  if (!db || !ctx.scope.bizIds.includes(db.biz_id)) throw new ApiError('ACCOUNT_NOT_EXIST', { account: id });
  const engine = ENGINES[db.type];
  if (db.category !== AccountCategory.DB || !engine) {
    throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
      param: 'db_account_id',
      reason: `account ${id} is a system account, not a database account`,
    });
  }
  const system = db.db_system_account_id === null ? undefined : await accounts.get(db.db_system_account_id);
  if (!system || system.type !== AccountType.LINUX || system.biz_id !== db.biz_id) {
    throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
      param: 'db_account_id',
      reason: `database account ${id} has no Linux system account to run its client (set db_system_account_id)`,
    });
  }
  if (db.db_port === null) {
    throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
      param: 'db_account_id',
      reason: `database account ${id} has no port (set db_port)`,
    });
  }
  return {
    database: { accountId: db.id, alias: db.alias, engine, user: db.os_user, port: db.db_port },
    runAs: { id: system.id, alias: system.alias, osUser: system.os_user },
  };
}

export const fastExecuteSql = defineEndpoint({
  name: 'fast_execute_sql',
  kind: 'write',
  permission: 'run',
  input: Input,
  fieldErrors: { script_version_id: 'ILLEGAL_PARAM_WITH_PARAM_NAME' },
  async handle(ctx, input) {
    const prior = await priorSubmission(ctx, input.client_request_id);
    if (prior) return { ...prior, step_instance_id: null };
    // BK-JOB checks the request's own fields before it looks anything up.
    const target = input.target_server;
    if (!target) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'target_server' });
    const { content, cited, library } = await scriptToRun(ctx, input);
    if (cited && cited.version.script.language !== SQL_LANGUAGE) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: input.script_version_id !== undefined ? 'script_version_id' : 'script_id',
        reason: 'cites a script that is not SQL (script_language 6)',
      });
    }
    const { database, runAs } = await resolveDatabaseAccount(ctx, input.db_account_id);
    const screened = await enforceDangerousRules(ctx, SQL_LANGUAGE, content);
    const callbackUrl = checkCallbackUrl(input.callback_url);
    assertCallbackAllowed(ctx, callbackUrl);
    const { hosts } = await resolveScriptTargets(ctx, target);
    const spec: ScriptStepSpec = {
      kind: 'script',
      scriptContent: content,
      language: SQL_LANGUAGE,
      scriptParam: '',
      isParamSensitive: false,
      timeout: input.timeout ?? DEFAULT_TIMEOUT,
      account: runAs,
      database,
      targetServer: target,
      ignoreError: false,
      ...(library ? { library } : {}),
    };
    const reply = await submitOneStepJob(ctx, {
      name: jobNameOr(input.task_name, 'SQL Script'),
      jobType: JobType.FAST_SCRIPT,
      stepType: StepType.SQL,
      spec,
      hosts,
      callbackUrl,
      clientRequestId: input.client_request_id,
      startTask: input.start_task,
      rolling: undefined,
    });
    await screened.recordHits(reply.job_instance_id);
    return { ...reply, step_instance_id: null };
  },
});
