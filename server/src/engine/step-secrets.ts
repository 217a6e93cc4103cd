/**
 * The sealed value a stored step spec may hold: a script step's sensitive parameter
 * (sensitive-params.ts) or a confirmation step's webhook URL (callback-url.ts: a webhook URL
 * often is its own credential). `step_instance.sealed_key` records the key it is sealed under,
 * so that the start after a key rotation finds by index the steps to reseal.
 */
import { SecretBox } from '../secret-box.js';
import { CALLBACK_URL_PURPOSE, openCallbackUrl } from './callback-url.js';
import { PLAIN_KEY, openStepParam, sealStepParam } from './sensitive-params.js';
import type { StepSpec } from './step-spec.js';

function sealedValueOf(spec: StepSpec): string | null {
  if (spec.kind === 'script')
    return spec.isParamSensitive && spec.scriptParam !== '' ? spec.scriptParam : null;
  if (spec.kind === 'confirm') return spec.webhookUrl;
  return null;
}

/** The step_instance.sealed_key of a spec: the sealing key's id, 'plain', or null for none. */
export function sealedKeyOf(spec: StepSpec): string | null {
  const value = sealedValueOf(spec);
  if (value === null) return null;
  // A sealed value reads sb1:<key id>:<data>.
  return SecretBox.isSealed(value) ? (value.split(':')[1] ?? PLAIN_KEY) : PLAIN_KEY;
}

/**
 * The spec with its sealed value sealed under the box's current key (from plain or an older
 * key). Throws SecretBoxError when it does not open.
 */
export function resealStepSpec(box: SecretBox, spec: StepSpec): StepSpec {
  if (spec.kind === 'script') return sealStepParam(box, { ...spec, scriptParam: openStepParam(box, spec) });
  if (spec.kind === 'confirm' && spec.webhookUrl !== null)
    return { ...spec, webhookUrl: box.seal(openCallbackUrl(box, spec.webhookUrl), CALLBACK_URL_PURPOSE) };
  return spec;
}
