/**
 * Whether the app or person a cron belongs to may still run jobs in its scope. A cron fires as
 * the one that saved it, so it stops firing once they could no longer start the plan themselves
 * (an app removed or its grant taken away; a user removed or below the operator role there), as
 * BK-JOB checks its cron's user at each firing. The admin token's crons (`admin`, when no app of
 * that code exists) always may.
 */
import type { Caller } from '../api/auth.js';
import { ApiError } from '../api/error-catalogue.js';
import { assertScopeGranted } from '../api/scope.js';
import type { ResolvedScope } from '../api/scope.js';
import { rank, ROLE_FOR, roleInScope } from '../operators/roles.js';
import type { Services } from '../services.js';

const USER_PREFIX = 'user:';

export async function assertCronOwnerMayRun(
  services: Services,
  caller: Caller,
  scope: ResolvedScope,
): Promise<void> {
  const { store } = services;
  const code = caller.appCode;
  if (code.startsWith(USER_PREFIX)) {
    const name = code.slice(USER_PREFIX.length);
    const user = await store.operators.getUserByName(name);
    const needs = ROLE_FOR.run;
    if (user?.platformAdmin) return;
    if (user && rank(await roleInScope(store.inventory, user.roles, scope)) >= rank(needs)) return;
    throw new ApiError('USER_PERMISSION_DENIED', {
      username: name,
      permission: 'run',
      resource: `${scope.type} ${scope.id}`,
      needs: user ? `the ${needs} role` : 'a user that exists',
    });
  }
  const app = await store.apps.getApp(code);
  if (!app && code === 'admin') return;
  await assertScopeGranted(store.inventory, { ...caller, scopes: app?.scopes ?? [] }, scope);
}
