/**
 * The agent bootstrap token. It starts as the configured one (JOBFLEET_AGENT_BOOTSTRAP_TOKEN or
 * secrets.json); once an admin rotates it, only the hash of the new one is kept, in the store,
 * so that every server of a cluster accepts the same token and none keeps it readable. Rotating
 * touches nothing already registered: agents connect with their own tokens.
 */
import crypto from 'node:crypto';
import { hashSecret, verifySecret } from '../api/auth.js';
import { sameSecret } from '../secrets.js';
import type { Services } from '../services.js';

const SETTING = 'agent_bootstrap_token_hash';

export async function bootstrapTokenValid(services: Services, given: string): Promise<boolean> {
  const rotated = await services.store.agentTrust.getSetting(SETTING);
  return rotated ? verifySecret(given, rotated) : sameSecret(given, services.secrets.agentBootstrapToken);
}

/** Makes `token` (or a new random one) the only bootstrap token; returns it. */
export async function rotateBootstrapToken(services: Services, token?: string): Promise<string> {
  const next = token ?? crypto.randomBytes(24).toString('base64url');
  await services.store.agentTrust.setSetting(SETTING, hashSecret(next));
  return next;
}
