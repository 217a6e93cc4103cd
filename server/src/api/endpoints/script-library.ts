/**
 * The script library (spec *_script*.md, behaviour notes §3.18): business scripts, seen only
 * from their own scope, and public scripts, shared by every scope. Each API has a `public_`
 * twin built from the same definition. Versions move draft (0) -> online (1) <-> offline (2)
 * -> disabled (3); only drafts are edited; publishing a version puts the online one offline.
 *
 * Content arrives in base64 and is stored and answered as text. Every save runs the enabled
 * dangerous-command rules: an intercept rule refuses the save (1244019), scan rules come back
 * as `warnings` (a Jobfleet extension, in check_script's shape) and the save goes ahead.
 */
import { z } from 'zod';
import type { Kysely } from 'kysely';
import { describeMatches, RuleAction, scanScript } from '../../rules/dangerous-rules.js';
import { describeCiters } from '../../store/library-references.js';
import { NAME_TAKEN, SCRIPT_GONE, ScriptVersionStatus, VERSION_TAKEN } from '../../store/script-store.js';
import type { Script, ScriptOwner, ScriptVersion } from '../../store/script-store.js';
import type { Database } from '../../store/schema.js';
import { defineEndpoint } from '../endpoint.js';
import type { Endpoint, EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import type { ErrorName, PermissionInfo } from '../error-catalogue.js';
import { zBase64, zBool, zInt, zLong, zText } from '../input-types.js';
import { ChangeFilterFields, changeFilterOf, pageParams, pageReply, PageFields } from '../paging.js';
import { seesScope } from '../scope.js';
import { checkItems } from './check-script.js';
import { ScriptLanguage } from './dangerous-rules.js';

const MAX_SCRIPT_BYTES = 16_777_215;
const MAX_NAME_LENGTH = 60;
const MAX_DESCRIPTION_LENGTH = 1000;
export const PUBLIC_SCRIPT_PERMISSION = 'public_script_manage';

const ScriptName = zText(MAX_NAME_LENGTH)
  .refine((s) => s.trim() !== '', 'must not be blank')
  .refine((s) => !/[\\|/:*<>"?]/.test(s), 'must not contain any of \\ | / : * < > " ?');

const VersionName = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_NAME_LENGTH, `is longer than ${MAX_NAME_LENGTH} characters`)
  .regex(/^[A-Za-z0-9_\-#@.]+$/, 'may hold only letters, digits and _ - # @ .');

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** UTF-8 without NUL: scripts are text, and PostgreSQL text holds no NUL. */
function isText(base64: string): boolean {
  try {
    return !utf8.decode(Buffer.from(base64, 'base64')).includes('\u0000');
  } catch {
    return false;
  }
}

/** Base64 of UTF-8 text, not empty. */
const Content = zBase64(MAX_SCRIPT_BYTES)
  .refine((s) => s.trim() !== '', 'must not be empty')
  .refine(isText, 'does not decode to UTF-8 text without NUL characters')
  .transform((s) => Buffer.from(s, 'base64').toString('utf8'));

const Description = zText(MAX_DESCRIPTION_LENGTH)
  .nullish()
  .transform((s) => s ?? '');
/** update_script_basic leaves the description as it was when the call has none (or ""), as BK-JOB does. */
const DescriptionChange = zText(MAX_DESCRIPTION_LENGTH)
  .nullish()
  .transform((s) => (s ? s : undefined));

const ScriptId = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(z.string().min(1, 'must not be empty').max(64));
const VersionId = zLong.pipe(z.number().min(1, 'must be a script version id (1 or more)'));

const BAD_REQUEST_FIELDS: Record<string, ErrorName> = {
  name: 'BAD_REQUEST',
  script_language: 'BAD_REQUEST',
  content: 'BAD_REQUEST',
  version: 'BAD_REQUEST',
  description: 'BAD_REQUEST',
  version_desc: 'BAD_REQUEST',
  script_version_id: 'BAD_REQUEST',
  id: 'BAD_REQUEST',
};

type Kind = 'biz' | 'public';

const PERMISSION: PermissionInfo = {
  system_id: 'bk_job',
  system_name: 'Jobfleet',
  actions: [{ id: 'manage_public_script', name: 'Manage public scripts', related_resource_types: [] }],
};

function ownerOf(ctx: EndpointContext, kind: Kind): ScriptOwner {
  return kind === 'public'
    ? { public: true }
    : { public: false, scopeType: ctx.scope.type, scopeId: String(ctx.scope.id) };
}

function sameOwner(s: Script, owner: ScriptOwner): boolean {
  if (owner.public) return s.public;
  return !s.public && s.scopeType === owner.scopeType && s.scopeId === owner.scopeId;
}

/** Public scripts are changed only by a platform app (granted every scope) or one given the permission. */
function assertMayWrite(ctx: EndpointContext, kind: Kind): void {
  if (kind === 'biz') return;
  if (ctx.caller.scopes === 'all' || ctx.caller.permissions?.includes(PUBLIC_SCRIPT_PERMISSION)) return;
  throw new ApiError(
    'BK_PERMISSION_DENIED',
    { appCode: ctx.caller.appCode, resource: `public scripts (needs ${PUBLIC_SCRIPT_PERMISSION})` },
    PERMISSION,
  );
}

function scopeFields(s: Script) {
  return s.public ? {} : { bk_scope_type: s.scopeType, bk_scope_id: s.scopeId };
}

export function scriptReply(s: Script) {
  return {
    id: s.id,
    name: s.name,
    script_language: s.language,
    ...scopeFields(s),
    creator: s.creator,
    create_time: s.createTime,
    last_modify_user: s.lastModifyUser,
    last_modify_time: s.lastModifyTime,
    description: s.description,
  };
}

export function versionReply(v: ScriptVersion) {
  return {
    id: v.id,
    script_id: v.script.id,
    name: v.script.name,
    ...scopeFields(v.script),
    version: v.version,
    content: v.content,
    status: v.status,
    version_desc: v.versionDesc,
    creator: v.creator,
    create_time: v.createTime,
    last_modify_user: v.lastModifyUser,
    last_modify_time: v.lastModifyTime,
    script_language: v.script.language,
    description: v.script.description,
  };
}

async function findScript(ctx: EndpointContext, kind: Kind, scriptId: string): Promise<Script> {
  const s = await ctx.services.store.scripts.getScript(scriptId);
  if (!s || !sameOwner(s, ownerOf(ctx, kind))) throw new ApiError('SCRIPT_NOT_EXIST', { ref: scriptId });
  return s;
}

async function findVersion(
  ctx: EndpointContext,
  kind: Kind,
  versionId: number,
  scriptId?: string,
): Promise<ScriptVersion> {
  const v = await ctx.services.store.scripts.getVersion(versionId);
  if (!v || !sameOwner(v.script, ownerOf(ctx, kind)) || (scriptId !== undefined && v.script.id !== scriptId))
    throw new ApiError('SCRIPT_NOT_EXIST', { ref: `version ${versionId}` });
  return v;
}

/** Intercept matches refuse the save; scan matches are returned as warnings. */
async function screen(ctx: EndpointContext, language: number, content: string) {
  const rules = await ctx.services.store.rules.enabledRulesFor(language);
  const matches = await scanScript(content, language, rules);
  const intercepting = matches.filter((m) => m.rule.action === RuleAction.INTERCEPT);
  if (intercepting.length > 0)
    throw new ApiError('DANGEROUS_SCRIPT_FORBIDDEN_EXECUTION', { matches: describeMatches(intercepting) });
  return checkItems(matches);
}

async function assertNotCited(
  ctx: EndpointContext,
  versionIds: number[],
  tx: Kysely<Database>,
): Promise<void> {
  const citers = await ctx.services.store.references.scriptVersionsCitedBy(versionIds, tx);
  if (citers.length === 0) return;
  // A public script is cited from any scope: only citers in scopes the caller holds are named.
  const seen = citers.filter((c) => seesScope(ctx, c.scopeType, c.scopeId));
  throw new ApiError('DELETE_REF_SCRIPT_FAIL', {
    ids: versionIds.join(','),
    citers: describeCiters(
      seen.map((c) => c.label),
      citers.length - seen.length,
    ),
  });
}

const VersionRef = { script_id: ScriptId, script_version_id: VersionId };
const NewVersionFields = { content: Content, version: VersionName, version_desc: Description };

function libraryEndpoints(kind: Kind): Endpoint[] {
  const named = (name: string) => (kind === 'public' ? name.replace('script', 'public_script') : name);
  const scoped = kind === 'biz';

  const getScriptList = defineEndpoint({
    name: named('get_script_list'),
    kind: 'read',
    permission: 'read',
    scoped,
    input: z.object({
      name: zText(MAX_NAME_LENGTH).nullish(),
      script_language: zInt.pipe(z.number().min(0).max(6)).nullish(),
      ...ChangeFilterFields,
      ...PageFields,
    }),
    fieldErrors: { script_language: 'ILLEGAL_PARAM_WITH_PARAM_NAME' },
    async handle(ctx, input) {
      const page = pageParams(input);
      const { total, items } = await ctx.services.store.scripts.listScripts(ownerOf(ctx, kind), {
        name: input.name ?? undefined,
        language: input.script_language ?? undefined,
        ...changeFilterOf(input),
        ...page,
      });
      return pageReply(
        page,
        total,
        items.map((i) => ({ ...scriptReply(i.script), online_script_version_id: i.onlineVersionId })),
      );
    },
  });

  const getVersionList = defineEndpoint({
    name: named('get_script_version_list'),
    kind: 'read',
    permission: 'read',
    scoped,
    input: z.object({ script_id: ScriptId, return_script_content: zBool.nullish(), ...PageFields }),
    fieldErrors: { script_id: 'ILLEGAL_PARAM_WITH_PARAM_NAME', return_script_content: 'BAD_REQUEST' },
    async handle(ctx, input) {
      const script = await findScript(ctx, kind, input.script_id);
      const page = pageParams(input);
      const { total, items } = await ctx.services.store.scripts.listVersions(script, {
        withContent: input.return_script_content === true,
        ...page,
      });
      return pageReply(page, total, items.map(versionReply));
    },
  });

  const getVersionDetail = defineEndpoint({
    name: named('get_script_version_detail'),
    kind: 'read',
    permission: 'read',
    scoped,
    input: z.object({
      // BK-JOB takes an id above 0 only; 0 or less means "by script_id and version".
      id: zLong.nullish(),
      script_id: z.union([z.string(), z.number()]).transform(String).nullish(),
      version: zText(MAX_NAME_LENGTH).nullish(),
    }),
    fieldErrors: BAD_REQUEST_FIELDS,
    async handle(ctx, input) {
      if (input.id != null && input.id > 0) return versionReply(await findVersion(ctx, kind, input.id));
      const missing = (param: string) =>
        new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', { param, reason: 'give id, or script_id and version' });
      if (!input.script_id?.trim()) throw missing('script_id');
      if (!input.version?.trim()) throw missing('version');
      const script = await findScript(ctx, kind, input.script_id);
      const v = await ctx.services.store.scripts.getVersionByName(script, input.version);
      if (!v) throw new ApiError('SCRIPT_NOT_EXIST', { ref: `${input.script_id} version ${input.version}` });
      return versionReply(v);
    },
  });

  const createScript = defineEndpoint({
    name: named('create_script'),
    kind: 'write',
    permission: 'manage',
    scoped,
    input: z.object({
      name: ScriptName,
      description: Description,
      script_language: ScriptLanguage,
      ...NewVersionFields,
    }),
    fieldErrors: BAD_REQUEST_FIELDS,
    async handle(ctx, input) {
      assertMayWrite(ctx, kind);
      const warnings = await screen(ctx, input.script_language, input.content);
      const v = await ctx.services.store.scripts.createScript(
        ownerOf(ctx, kind),
        { name: input.name, language: input.script_language, description: input.description },
        { version: input.version, content: input.content, versionDesc: input.version_desc },
        ctx.caller.username,
      );
      if (v === NAME_TAKEN) throw new ApiError('SCRIPT_NAME_DUPLICATE', { name: input.name });
      return { ...versionReply(v), warnings };
    },
  });

  const createVersion = defineEndpoint({
    name: named('create_script_version'),
    kind: 'write',
    permission: 'manage',
    scoped,
    input: z.object({ script_id: ScriptId, ...NewVersionFields }),
    fieldErrors: BAD_REQUEST_FIELDS,
    async handle(ctx, input) {
      assertMayWrite(ctx, kind);
      const script = await findScript(ctx, kind, input.script_id);
      const warnings = await screen(ctx, script.language, input.content);
      const v = await ctx.services.store.scripts.createVersion(
        script,
        { version: input.version, content: input.content, versionDesc: input.version_desc },
        ctx.caller.username,
      );
      if (v === VERSION_TAKEN)
        throw new ApiError('SCRIPT_VERSION_NAME_EXIST', { scriptId: script.id, version: input.version });
      if (v === SCRIPT_GONE) throw new ApiError('SCRIPT_NOT_EXIST', { ref: script.id });
      return { ...versionReply(v), warnings };
    },
  });

  const updateBasic = defineEndpoint({
    name: named('update_script_basic'),
    kind: 'write',
    permission: 'manage',
    scoped,
    input: z.object({ script_id: ScriptId, name: ScriptName, description: DescriptionChange }),
    fieldErrors: BAD_REQUEST_FIELDS,
    async handle(ctx, input) {
      assertMayWrite(ctx, kind);
      const script = await findScript(ctx, kind, input.script_id);
      const s = await ctx.services.store.scripts.updateScriptBasic(
        script,
        { name: input.name, description: input.description ?? script.description },
        ctx.caller.username,
      );
      if (s === NAME_TAKEN) throw new ApiError('SCRIPT_NAME_DUPLICATE', { name: input.name });
      if (s === SCRIPT_GONE) throw new ApiError('SCRIPT_NOT_EXIST', { ref: script.id });
      return scriptReply(s);
    },
  });

  const updateVersion = defineEndpoint({
    name: named('update_script_version'),
    kind: 'write',
    permission: 'manage',
    scoped,
    input: z.object({ ...VersionRef, content: Content, version_desc: Description }),
    fieldErrors: BAD_REQUEST_FIELDS,
    async handle(ctx, input) {
      assertMayWrite(ctx, kind);
      const v = await findVersion(ctx, kind, input.script_version_id, input.script_id);
      const notDraft = (status: number) =>
        new ApiError('UNSUPPORTED_OPERATION', {
          reason: `script version ${v.id} is not a draft (status ${status}); only drafts can be edited`,
        });
      // The version's state is checked before its new content, as BK-JOB orders the checks.
      if (v.status !== ScriptVersionStatus.DRAFT) throw notDraft(v.status);
      const warnings = await screen(ctx, v.script.language, input.content);
      const updated = await ctx.services.store.scripts.updateDraft(
        v,
        { content: input.content, versionDesc: input.version_desc },
        ctx.caller.username,
      );
      if (!updated) throw notDraft(v.status);
      return { ...versionReply(updated), warnings };
    },
  });

  /** An API acting on one version named by script_id + script_version_id. */
  const versionAction = (name: string, act: (ctx: EndpointContext, v: ScriptVersion) => Promise<unknown>) =>
    defineEndpoint({
      name: named(name),
      kind: 'write',
      permission: 'manage',
      scoped,
      input: z.object(VersionRef),
      fieldErrors: BAD_REQUEST_FIELDS,
      async handle(ctx, input) {
        assertMayWrite(ctx, kind);
        return act(ctx, await findVersion(ctx, kind, input.script_version_id, input.script_id));
      },
    });

  const publish = versionAction('publish_script_version', async (ctx, v) => {
    if (v.status === ScriptVersionStatus.DISABLED)
      throw new ApiError('UNSUPPORTED_OPERATION', {
        reason: `script version ${v.id} is disabled; a disabled version cannot be published again`,
      });
    if (!(await ctx.services.store.scripts.publish(v, ctx.caller.username)))
      throw new ApiError('UNSUPPORTED_OPERATION', {
        reason: `script version ${v.id} was disabled or deleted meanwhile; it cannot be published`,
      });
    return { script_id: v.script.id, id: v.id, status: ScriptVersionStatus.ONLINE };
  });

  const disable = versionAction('disable_script_version', async (ctx, v) => {
    const done = await ctx.services.store.scripts.setStatus(
      v,
      ScriptVersionStatus.DISABLED,
      [ScriptVersionStatus.ONLINE, ScriptVersionStatus.OFFLINE],
      ctx.caller.username,
    );
    if (!done)
      throw new ApiError('UNSUPPORTED_OPERATION', {
        reason: `script version ${v.id} has status ${v.status}; only online (1) or offline (2) versions can be disabled`,
      });
    return { script_id: v.script.id, id: v.id, status: ScriptVersionStatus.DISABLED };
  });

  const deleteVersion = versionAction('delete_script_version', async (ctx, v) => {
    if (v.status === ScriptVersionStatus.ONLINE)
      throw new ApiError('DELETE_ONLINE_SCRIPT_FAIL', { id: v.id });
    // Published (or deleted) since it was read: refused as an online version is.
    const deleted = await ctx.services.store.scripts.deleteVersion(v, (ids, tx) =>
      assertNotCited(ctx, ids, tx),
    );
    if (!deleted) throw new ApiError('DELETE_ONLINE_SCRIPT_FAIL', { id: v.id });
    return null;
  });

  const deleteScript = defineEndpoint({
    name: named('delete_script'),
    kind: 'write',
    permission: 'manage',
    scoped,
    input: z.object({ script_id: ScriptId }),
    fieldErrors: { script_id: 'BAD_REQUEST' },
    async handle(ctx, input) {
      assertMayWrite(ctx, kind);
      const script = await findScript(ctx, kind, input.script_id);
      await ctx.services.store.scripts.deleteScript(script, (ids, tx) => assertNotCited(ctx, ids, tx));
      return null;
    },
  });

  return [
    getScriptList,
    getVersionList,
    getVersionDetail,
    createScript,
    createVersion,
    updateBasic,
    updateVersion,
    publish,
    disable,
    deleteScript,
    deleteVersion,
  ];
}

export const SCRIPT_LIBRARY_ENDPOINTS: readonly Endpoint[] = [
  ...libraryEndpoints('biz'),
  ...libraryEndpoints('public'),
];
