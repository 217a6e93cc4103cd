/**
 * push_config_file (behaviour notes §3.14): contents given inline are stored by the server and
 * sent to the targets like a file step whose source is the server. Any validation failure
 * answers 1241002, as BK-JOB does.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import { JobType, StepType } from '../../engine/statuses.js';
import type { FileStepSpec } from '../../engine/step-spec.js';
import { fileBodiesFor } from '../../files/file-bodies.js';
import { isPlainFileName, newStoredPath } from '../../files/stored-files.js';
import { isTargetEmpty, resolveTargets } from '../../inventory/target-resolution.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { TargetServer, zBase64, zLong } from '../input-types.js';
import { assertCallbackAllowed } from '../submission-checks.js';
import { checkTargetPath } from './file-paths.js';
import { assertFileTaskLimit } from './fast-transfer-file.js';
import {
  DEFAULT_TIMEOUT,
  accountGiven,
  checkCallbackUrl,
  priorSubmission,
  resolveAccount,
  submitOneStepJob,
} from './job-submission.js';

const MAX_CONTENT_BYTES = 16 * 1024 * 1024;
const ALL_ILLEGAL = Object.fromEntries(
  [
    'task_name',
    'account_id',
    'account_alias',
    'file_target_path',
    'target_server',
    'file_list',
    'callback_url',
    'client_request_id',
  ].map((k) => [k, 'ILLEGAL_PARAM' as const]),
);

export const pushConfigFile = defineEndpoint({
  name: 'push_config_file',
  kind: 'write',
  permission: 'run',
  input: z.object({
    task_name: z.string().max(512).optional(),
    account_id: zLong.optional(),
    account_alias: z.string().optional(),
    file_target_path: z.string().trim().min(1),
    target_server: TargetServer,
    file_list: z
      .array(
        z.object({
          file_name: z.string().trim().min(1),
          // Non-blank, as BK-JOB checks every field of the list (behaviour notes §3.14).
          content: zBase64(MAX_CONTENT_BYTES).refine((s) => s.trim() !== '', 'must not be empty'),
        }),
      )
      .min(1),
    callback_url: z.string().max(2048).optional(),
    client_request_id: z.string().min(1).max(128).optional(),
  }),
  fieldErrors: ALL_ILLEGAL,
  async handle(ctx, input) {
    // BK-JOB answers job_instance_id and job_instance_name; the step's id is null (§3.14).
    const prior = await priorSubmission(ctx, input.client_request_id);
    if (prior) return { ...prior, step_instance_id: null };
    const illegal = (reason: string) => new ApiError('ILLEGAL_PARAM', { reason });
    let targetPath: string;
    try {
      targetPath = checkTargetPath('file_target_path', input.file_target_path);
    } catch {
      throw illegal('file_target_path must be an absolute path without ".." parts');
    }
    const names = new Set<string>();
    for (const f of input.file_list) {
      if (!isPlainFileName(f.file_name))
        throw illegal(`file_list: "${f.file_name}" is not a plain file name`);
      if (names.has(f.file_name)) throw illegal(`file_list: "${f.file_name}" appears twice`);
      names.add(f.file_name);
    }
    // As BK-JOB's checkPushConfigFileRequest: an id below 1 with a blank alias, and no target,
    // are invalid input (1241002) like the rest, not the codes of a failed lookup.
    if (!accountGiven(input.account_id, input.account_alias))
      throw illegal('account_id or account_alias is required');
    if (isTargetEmpty(input.target_server)) throw illegal('target_server names no host');
    let callbackUrl: string | null;
    try {
      callbackUrl = checkCallbackUrl(input.callback_url);
    } catch {
      throw illegal('callback_url must be an http(s) URL with a host and no user info');
    }
    assertCallbackAllowed(ctx, callbackUrl);
    const account = await resolveAccount(ctx, input.account_id, input.account_alias);
    const hosts = await resolveTargets(ctx.services.store.inventory, ctx.scope, input.target_server);
    assertFileTaskLimit([{ files: input.file_list, hosts: [] }], hosts.length);

    // The contents are stored before the job, so a job that exists always has its files.
    const now = Date.now();
    const stored = input.file_list.map((f) => {
      const data = Buffer.from(f.content, 'base64');
      return { f, data, path: newStoredPath(ctx.scope.id, 'config', f.file_name) };
    });
    const bodies = fileBodiesFor(ctx.services.store, ctx.services.config.dataDir);
    for (const s of stored) await bodies.write(s.path, [s.data]);
    await ctx.services.store.files.createStoredFiles(
      stored.map((s) => ({
        path: s.path,
        scope_type: ctx.scope.type,
        scope_id: String(ctx.scope.id),
        creator: ctx.caller.username,
        file_name: s.f.file_name,
        upload_token_hash: null,
        expires_at: now,
        size: s.data.length,
        sha256: crypto.createHash('sha256').update(s.data).digest('hex'),
        created_at: now,
      })),
    );
    const spec: FileStepSpec = {
      kind: 'file',
      sources: [
        {
          kind: 'server',
          fileType: 4,
          files: stored.map((s) => s.path),
          hosts: [],
          account: null,
          server: null,
        },
      ],
      targetPath,
      targetName: '',
      account,
      timeout: DEFAULT_TIMEOUT,
      uploadSpeedLimit: 0,
      downloadSpeedLimit: 0,
      transferMode: 2,
      targetServer: input.target_server,
      ignoreError: false,
    };
    const reply = await submitOneStepJob(ctx, {
      name: input.task_name ? input.task_name : `API_PUSH_CONFIG_FILE_${now}`,
      jobType: JobType.FAST_FILE,
      stepType: StepType.FILE,
      spec,
      hosts,
      callbackUrl,
      clientRequestId: input.client_request_id,
      startTask: true,
      rolling: undefined,
    });
    return { ...reply, step_instance_id: null };
  },
});
