/**
 * The one place plans reach the script library: a step citing a business (2) or public (3)
 * script by script_id / script_version_id. A template pins the version it cites (the online one
 * when only script_id is given), so what a plan runs does not change under it and the library
 * refuses to delete that version while the template cites it (1243054).
 */
import type { EndpointContext } from '../api/endpoint.js';
import { ApiError } from '../api/error-catalogue.js';
import { resolveCitedScript } from '../api/script-reference.js';
import type { ScriptInfo } from './plan-shapes.js';

export interface CitedScript {
  /** base64 */
  content: string;
  language: number;
  scriptId: string;
  scriptVersionId: number;
  /** 2 business, 3 public */
  source: 2 | 3;
}

/** The library version a citing step runs; refused when it does not exist, is not visible here, or is disabled. */
export async function citedScript(ctx: EndpointContext, si: ScriptInfo): Promise<CitedScript> {
  if (si.script_version_id === undefined && !si.script_id)
    throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'script_info.script_version_id|script_id' });
  const cited = await resolveCitedScript(ctx, {
    scriptVersionId: si.script_version_id,
    scriptId: si.script_id,
  });
  return {
    content: Buffer.from(cited.version.content ?? '', 'utf8').toString('base64'),
    language: cited.version.script.language,
    scriptId: cited.version.script.id,
    scriptVersionId: cited.version.id,
    source: cited.source,
  };
}
