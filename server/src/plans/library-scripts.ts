/**
 * The one place plans reach the script library: a step citing a business (2) or public (3)
 * script by script_id / script_version_id. Until the library is served every citation answers
 * 1243001, as fast_execute_script does.
 */
import type { EndpointContext } from '../api/endpoint.js';
import { ApiError } from '../api/error-catalogue.js';
import type { ScriptInfo } from './plan-shapes.js';

export interface CitedScript {
  /** base64 */
  content: string;
  language: number;
  scriptVersionId: number;
}

/** Refuses a citation that does not name a script version the plan may run. */
export async function assertScriptCitable(ctx: EndpointContext, si: ScriptInfo): Promise<void> {
  await citedScript(ctx, si);
}

/** The content a citing step runs. */
export function citedScript(_ctx: EndpointContext, si: ScriptInfo): Promise<CitedScript> {
  return Promise.reject(
    new ApiError('SCRIPT_NOT_SUPPORTED_YET', { ref: si.script_version_id ?? si.script_id ?? '' }),
  );
}
