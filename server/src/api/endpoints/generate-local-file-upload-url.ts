/**
 * generate_local_file_upload_url (behaviour notes §3.22): one short-lived upload URL per file
 * name, and the `path` to give fast_transfer_file (file_type 2) once the bytes are uploaded.
 * Upload with `curl -T file <upload_url>` (PUT) or POST the bytes as the body.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import { isPlainFileName, newStoredPath, sha256Hex } from '../../files/stored-files.js';
import { defineEndpoint } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';

export const generateLocalFileUploadUrl = defineEndpoint({
  name: 'generate_local_file_upload_url',
  kind: 'write',
  permission: 'run',
  input: z.object({ file_name_list: z.array(z.string()).max(1000).nullable().optional() }),
  fieldErrors: { file_name_list: 'ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON' },
  async handle(ctx, input) {
    const names = input.file_name_list;
    // An empty list asks for nothing and gets nothing, as on BK-JOB; a missing one is an error.
    if (!names) {
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON', {
        param: 'file_name_list',
        reason: 'give a list of file names',
      });
    }
    for (const n of names) {
      if (!isPlainFileName(n.trim())) {
        throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON', {
          param: 'file_name_list',
          reason: `"${n}" is not a plain file name (1..1024 characters, no "/")`,
        });
      }
    }
    const now = Date.now();
    const expires = now + ctx.services.config.uploadUrlTtlSeconds * 1000;
    const urlMap = new Map<string, { upload_url: string; path: string }>();
    const rows = [];
    // The map is keyed by each name as sent (clients look their names up in it); the stored
    // file is named without the blanks around it.
    for (const sent of new Set(names)) {
      const token = crypto.randomBytes(24).toString('base64url');
      const name = sent.trim();
      const path = newStoredPath(ctx.scope.id, ctx.caller.username, name);
      urlMap.set(sent, { upload_url: `${ctx.baseUrl}/api/upload/${token}`, path });
      rows.push({
        path,
        scope_type: ctx.scope.type,
        scope_id: String(ctx.scope.id),
        creator: ctx.caller.username,
        file_name: name,
        upload_token_hash: sha256Hex(token),
        expires_at: expires,
        size: null,
        sha256: null,
        created_at: now,
      });
    }
    await ctx.services.store.files.createStoredFiles(rows);
    // Own properties, whatever the names: a file named __proto__ set an object's prototype.
    return { url_map: Object.fromEntries(urlMap) };
  },
});
