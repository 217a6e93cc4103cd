/**
 * Sensitive script parameters (`is_param_sensitive=1`) at rest. The stored step spec holds the
 * parameter sealed with the server key (secret-box.ts); it is opened only to build the
 * `task.run` message for the agent that runs it, and replies show `******`.
 *
 * Steps stored before sealing existed hold the plain value; they still run, and the reseal at
 * start-up (secret-rotation.ts) seals them.
 */
import { SecretBox } from '../secret-box.js';
import type { ScriptStepSpec, StepSpec } from './step-spec.js';

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

/** The step_instance.sealed_key of a spec: the sealing key's id, 'plain', or null for none. */
export function sealedKeyOf(spec: StepSpec): string | null {
  if (spec.kind !== 'script' || !spec.isParamSensitive || spec.scriptParam === '') return null;
  // A sealed value reads sb1:<key id>:<data>.
  return SecretBox.isSealed(spec.scriptParam) ? (spec.scriptParam.split(':')[1] ?? PLAIN_KEY) : PLAIN_KEY;
}

/** The spec with its parameter sealed under the box's current key (from plain or an older key). */
export function resealStepParam(box: SecretBox, spec: ScriptStepSpec): ScriptStepSpec {
  return sealStepParam(box, { ...spec, scriptParam: openStepParam(box, spec) });
}
