/** fast_transfer_file (spec fast_transfer_file.md; behaviour notes §3.2, §5). */
import { z } from 'zod';
import { JobType, StepType } from '../../engine/statuses.js';
import type { FileSource, FileStepSpec } from '../../engine/step-spec.js';
import { resolveTargets } from '../../inventory/target-resolution.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetServer, zInt, zLong } from '../input-types.js';
import { assertCallbackAllowed } from '../submission-checks.js';
import { checkFileName, checkSourcePath, checkTargetPath } from './file-paths.js';
import {
  CommonExecuteFields,
  DEFAULT_TIMEOUT,
  accountGiven,
  checkCallbackUrl,
  jobNameOr,
  priorSubmission,
  resolveAccount,
  rollingSpecOf,
  submitOneStepJob,
} from './job-submission.js';

const MAX_FILE_TASKS = 100_000;

export const FileSourceInput = z.object({
  file_list: z.array(z.string().min(1)).min(1),
  file_type: zInt.default(1),
  server: TargetServer.optional(),
  account: z.object({ id: zLong.optional(), alias: z.string().optional() }).optional(),
  file_source_id: zLong.optional(),
  file_source_code: z.string().optional(),
});

export const fastTransferFile = defineEndpoint({
  name: 'fast_transfer_file',
  kind: 'write',
  permission: 'run',
  input: z.object({
    file_target_path: z.string().optional(),
    file_target_name: z.string().max(255).optional(),
    file_source_list: z.array(FileSourceInput).optional(),
    // MB/s; 0 or less is no limit, as BK-JOB applies only a limit above 0 (§3.2).
    upload_speed_limit: zInt.transform((n) => Math.max(0, n)).optional(),
    download_speed_limit: zInt.transform((n) => Math.max(0, n)).optional(),
    transfer_mode: zInt.optional(),
    ...CommonExecuteFields,
  }),
  fieldErrors: {
    file_target_path: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    file_source_list: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    const prior = await priorSubmission(ctx, input.client_request_id);
    if (prior) return prior;
    if (input.file_target_path === undefined || input.file_target_path.trim() === '') {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'file_target_path',
        reason: 'is required',
      });
    }
    const targetPath = checkTargetPath('file_target_path', input.file_target_path);
    const targetName = input.file_target_name
      ? checkFileName('file_target_name', input.file_target_name)
      : '';
    if (!input.file_source_list || input.file_source_list.length === 0) {
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'file_source_list' });
    }
    // BK-JOB checks the request's own fields before it looks anything up.
    if (!accountGiven(input.account_id, input.account_alias))
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'account_id|account_alias' });
    if (!input.target_server) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'target_server' });
    const sources = await resolveSources(ctx, input.file_source_list);
    const callbackUrl = checkCallbackUrl(input.callback_url);
    assertCallbackAllowed(ctx, callbackUrl);
    const account = await resolveAccount(ctx, input.account_id, input.account_alias);
    const hosts = await resolveTargets(ctx.services.store.inventory, ctx.scope, input.target_server);
    const perTarget = assertFileTaskLimit(sources, hosts.length);
    if (targetName && perTarget > 1) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'file_target_name',
        reason: 'renames one file; the step sends several',
      });
    }
    const spec: FileStepSpec = {
      kind: 'file',
      sources,
      targetPath,
      targetName,
      account,
      timeout: input.timeout ?? DEFAULT_TIMEOUT,
      uploadSpeedLimit: input.upload_speed_limit ?? 0,
      downloadSpeedLimit: input.download_speed_limit ?? 0,
      transferMode: input.transfer_mode === 1 ? 1 : 2,
      targetServer: input.target_server,
      ignoreError: false,
      ...rollingSpecOf(input.rolling_config),
    };
    return submitOneStepJob(ctx, {
      name: jobNameOr(input.task_name, 'File Transfer'),
      jobType: JobType.FAST_FILE,
      stepType: StepType.FILE,
      spec,
      hosts,
      callbackUrl,
      clientRequestId: input.client_request_id,
      startTask: input.start_task,
      rolling: input.rolling_config,
    });
  },
});

/**
 * A file step's tasks (each file of each source host, to each target) are at most BK-JOB's
 * 100,000, or 1244021 (behaviour notes §5), however the step is submitted: a fast transfer, a
 * plan's file step, a config push. Returns the files each target receives.
 */
export function assertFileTaskLimit(
  sources: readonly { files: readonly unknown[]; hosts: readonly unknown[] }[],
  targets: number,
): number {
  const perTarget = sources.reduce((n, s) => n + s.files.length * Math.max(1, s.hosts.length), 0);
  if (perTarget * targets > MAX_FILE_TASKS)
    throw new ApiError('FILE_TASKS_EXCEEDS_LIMIT', { count: perTarget * targets, limit: MAX_FILE_TASKS });
  return perTarget;
}

export async function resolveSources(
  ctx: EndpointContext,
  list: z.output<typeof FileSourceInput>[],
): Promise<FileSource[]> {
  const out: FileSource[] = [];
  // Uploaded files are offered to the targets by name: two of one name cannot both be served.
  const uploadedNames = new Set<string>();
  // A source host serves all its files of the step at once, read as one account.
  const sourceAccounts = new Map<number, { id: number; alias: string }>();
  for (const [i, s] of list.entries()) {
    const at = `file_source_list[${i}]`;
    if (s.file_type === 3) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `${at}.file_type`,
        reason: 'third-party file sources (3) are not supported yet',
      });
    }
    if (s.file_type === 2) {
      const rows = new Map(
        (await ctx.services.store.files.getStoredFiles(s.file_list)).map((r) => [r.path, r]),
      );
      for (const p of s.file_list) {
        const row = rows.get(p);
        if (
          !row ||
          row.size === null ||
          row.scope_type !== ctx.scope.type ||
          row.scope_id !== String(ctx.scope.id)
        ) {
          throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
            param: `${at}.file_list`,
            reason: `no uploaded file at "${p}" in this scope`,
          });
        }
        if (uploadedNames.has(row.file_name))
          throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
            param: `${at}.file_list`,
            reason: `two uploaded files are named "${row.file_name}"; a target directory holds one file of a name`,
          });
        uploadedNames.add(row.file_name);
      }
      // Named by a job now: kept for the history retention's days from here. One removed since it
      // was read above is not (the retention's removal and this are exclusive on the row).
      if ((await ctx.services.store.files.useStoredFiles(s.file_list, Date.now())) < rows.size)
        throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
          param: `${at}.file_list`,
          reason: 'an uploaded file was removed meanwhile: it was unused past the job history retention',
        });
      out.push({ kind: 'server', fileType: 2, files: s.file_list, hosts: [], account: null, server: null });
      continue;
    }
    if (s.file_type !== 1) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: `${at}.file_type`,
        reason: 'must be 1 (server file), 2 (local upload) or 3 (file source)',
      });
    }
    if (!s.server) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: `${at}.server` });
    if (!s.account || (s.account.id === undefined && !s.account.alias))
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: `${at}.account` });
    const files = s.file_list.map((f, j) => checkSourcePath(`${at}.file_list[${j}]`, f));
    const account = await resolveAccount(ctx, s.account.id, s.account.alias);
    const hosts = await resolveTargets(ctx.services.store.inventory, ctx.scope, s.server).catch(
      (err: unknown) => {
        if (err instanceof ApiError && err.errorName === 'STEP_TARGET_EMPTY')
          throw new ApiError('SOURCE_EXECUTE_OBJECT_EMPTY', { param: `${at}.server` });
        throw err;
      },
    );
    for (const h of hosts) {
      const other = sourceAccounts.get(h.id);
      if (other && other.id !== account.id)
        throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
          param: `${at}.account`,
          reason: `host ${h.cloud_id}:${h.ip} is a source in another entry with account ${other.alias}; give one host one account`,
        });
      sourceAccounts.set(h.id, account);
    }
    out.push({
      kind: 'host',
      fileType: 1,
      files,
      hosts: hosts.map((h) => ({ hostId: h.id, cloudId: h.cloud_id, ip: h.ip })),
      account,
      server: s.server,
    });
  }
  return out;
}
