/**
 * Resolving a library script cited by id for a run (fast_execute_script; plan steps later):
 * `script_version_id` runs exactly that version unless it is disabled; `script_id` runs the
 * online version. A business script is seen only from its own scope; public scripts from all.
 */
import { ScriptVersionStatus } from '../store/script-store.js';
import type { Script, ScriptVersion } from '../store/script-store.js';
import type { EndpointContext } from './endpoint.js';
import { ApiError } from './error-catalogue.js';
import type { ResolvedScope } from './scope.js';

/** ScriptSourceEnum: where a step's script came from. */
export const ScriptSource = { INLINE: 1, BUSINESS: 2, PUBLIC: 3 } as const;

export interface CitedScript {
  version: ScriptVersion;
  /** 2 business, 3 public */
  source: 2 | 3;
}

export function visibleFrom(s: Script, scope: ResolvedScope): boolean {
  return s.public || (s.scopeType === scope.type && s.scopeId === String(scope.id));
}

export async function resolveCitedScript(
  ctx: EndpointContext,
  ref: { scriptVersionId?: number | undefined; scriptId?: string | undefined },
): Promise<CitedScript> {
  const scripts = ctx.services.store.scripts;
  let version: ScriptVersion | undefined;
  if (ref.scriptVersionId !== undefined) {
    version = await scripts.getVersion(ref.scriptVersionId);
    if (!version || !visibleFrom(version.script, ctx.scope))
      throw new ApiError('SCRIPT_NOT_EXIST', { ref: `version ${ref.scriptVersionId}` });
    if (version.status === ScriptVersionStatus.DISABLED)
      throw new ApiError('SCRIPT_DISABLED_SHOULD_NOT_EXECUTE', { id: version.id });
    // Online and offline versions run, as in BK-JOB; a draft is still being edited (a template
    // pinning one would run whatever it is edited into).
    if (version.status === ScriptVersionStatus.DRAFT)
      throw new ApiError('SCRIPT_NOT_EXECUTABLE_STATUS', {
        ref: `version ${version.id}`,
        reason: 'it is a draft: publish it first',
      });
  } else {
    const scriptId = ref.scriptId ?? '';
    const script = await scripts.getScript(scriptId);
    if (!script || !visibleFrom(script, ctx.scope)) throw new ApiError('SCRIPT_NOT_EXIST', { ref: scriptId });
    version = await scripts.getOnlineVersion(script);
    if (!version)
      throw new ApiError('SCRIPT_NOT_EXECUTABLE_STATUS', {
        ref: scriptId,
        reason: 'none of its versions is online: publish one, or give script_version_id',
      });
  }
  return { version, source: version.script.public ? ScriptSource.PUBLIC : ScriptSource.BUSINESS };
}

/** What a run request names: a library version (by version id, else script id) or inline content. */
export interface ScriptToRun {
  /** base64 */
  content: string;
  cited: CitedScript | undefined;
  /** For the step spec: where a library script came from. */
  library: { source: 2 | 3; scriptId: string; scriptVersionId: number } | undefined;
}

/** Priority as BK-JOB's: script_version_id, then script_id, then script_content. */
export async function scriptToRun(
  ctx: EndpointContext,
  input: {
    script_version_id?: number | undefined;
    script_id?: string | undefined;
    script_content?: string | undefined;
  },
): Promise<ScriptToRun> {
  const cited =
    input.script_version_id !== undefined || (input.script_id !== undefined && input.script_id !== '')
      ? await resolveCitedScript(ctx, { scriptVersionId: input.script_version_id, scriptId: input.script_id })
      : undefined;
  const content = cited
    ? Buffer.from(cited.version.content ?? '', 'utf8').toString('base64')
    : input.script_content;
  if (content === undefined || content === '') {
    throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', {
      param: 'script_version_id|script_id|script_content',
    });
  }
  const library = cited
    ? { source: cited.source, scriptId: cited.version.script.id, scriptVersionId: cited.version.id }
    : undefined;
  return { content, cited, library };
}
