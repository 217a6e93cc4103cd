/**
 * The first sign-in of a new installation. `npm start` (serve --local-agent) creates a platform
 * admin named `admin` with a generated password when the store has no user yet, and prints the
 * password once; a plain `serve` only says how to create one (`jobfleet admin user create`).
 */
import type { Store } from '../store/store.js';
import { generatePassword, hashPassword } from './password-hash.js';

export const FIRST_ADMIN_NAME = 'admin';

/** Creates the first admin when there is no user; returns its password, or undefined if users exist. */
export async function ensureFirstAdmin(
  store: Store,
): Promise<{ name: string; password: string } | undefined> {
  if ((await store.operators.countUsers()) > 0) return undefined;
  const password = generatePassword();
  try {
    await store.operators.createUser({
      name: FIRST_ADMIN_NAME,
      displayName: 'Administrator',
      passwordHash: await hashPassword(password),
      platformAdmin: true,
    });
  } catch {
    // Another server of the cluster created it first.
    return undefined;
  }
  await store.audit.record({
    actorKind: 'system',
    action: 'user.create',
    target: `user:${FIRST_ADMIN_NAME}`,
    outcome: 'ok',
    detail: { platform_admin: true, first_start: true },
  });
  return { name: FIRST_ADMIN_NAME, password };
}

export async function hasUsers(store: Store): Promise<boolean> {
  return (await store.operators.countUsers()) > 0;
}
