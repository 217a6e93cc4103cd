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
  } else {
    const scriptId = ref.scriptId ?? '';
    const script = await scripts.getScript(scriptId);
    if (!script || !visibleFrom(script, ctx.scope)) throw new ApiError('SCRIPT_NOT_EXIST', { ref: scriptId });
    version = await scripts.getOnlineVersion(script);
    if (!version) throw new ApiError('SCRIPT_NOT_EXECUTABLE_STATUS', { ref: scriptId });
  }
  return { version, source: version.script.public ? ScriptSource.PUBLIC : ScriptSource.BUSINESS };
}
