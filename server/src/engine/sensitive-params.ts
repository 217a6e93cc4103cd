/**
 * Sensitive script parameters (`is_param_sensitive=1`) at rest. The stored step spec holds the
 * parameter sealed with the server key (secret-box.ts); it is opened only to build the
 * `task.run` message for the agent that runs it, and replies show `******`.
 *
 * Steps stored before sealing existed hold the plain value; they still run, and the reseal at
 * start-up (secret-rotation.ts) seals them.
 */
import { SecretBox } from '../secret-box.js';
import type { ScriptStepSpec } from './step-spec.js';

const PURPOSE = 'step_instance.spec.scriptParam';

/** Marks steps stored before sealing, in step_instance.sealed_key. */
export const PLAIN_KEY = 'plain';

export function sealStepParam(box: SecretBox, spec: ScriptStepSpec): ScriptStepSpec {
  if (!spec.isParamSensitive || spec.scriptParam === '' || SecretBox.isSealed(spec.scriptParam)) return spec;
  return { ...spec, scriptParam: box.seal(spec.scriptParam, PURPOSE) };
}

/** The parameter as the script gets it. */
export function openStepParam(box: SecretBox, spec: ScriptStepSpec): string {
  if (!spec.isParamSensitive || !SecretBox.isSealed(spec.scriptParam)) return spec.scriptParam;
  return box.open(spec.scriptParam, PURPOSE);
}
