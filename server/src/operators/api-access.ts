/**
 * Who may call a v3 or extension endpoint. Apps keep BK-JOB's model unchanged: app credentials
 * and scope grants, `bk_username` naming the acting user. People (a personal token or the
 * console session) act under their roles: the endpoint's permission class must be reached by
 * the user's role in the request's scope, capped by what the token allows.
 */
import type { FastifyRequest } from 'fastify';
import type { Caller } from '../api/auth.js';
import { ApiError } from '../api/error-catalogue.js';
import { assertScopeGranted } from '../api/scope.js';
import type { ResolvedScope, ScopeLookup } from '../api/scope.js';
import type { Services } from '../services.js';
import type { ScopeGrant } from '../store/app-store.js';
import type { Role } from '../store/operator-store.js';
import { isPlatformAdmin } from './operator-auth.js';
import type { Principal } from './operator-auth.js';
import { lower, rank, ROLE_FOR, roleInScope } from './roles.js';
import type { Permission } from './roles.js';

/** A caller that is a person: `appCode` is `user:<name>`, which no app code can be. */
export interface UserCaller extends Caller {
  principal: Principal;
}

export function isUserCaller(c: Caller): c is UserCaller {
  return 'principal' in c;
}

/** App credentials win: BK-JOB clients send them, and then nothing about users changes. */
function hasAppCredentials(req: FastifyRequest, raw: Record<string, unknown>): boolean {
  return req.headers['x-bkapi-authorization'] !== undefined || raw.bk_app_code !== undefined;
}

/**
 * The person calling, when the request carries no app credentials but a user credential;
 * undefined otherwise (the app path then answers as it always has).
 */
export async function userCaller(
  services: Services,
  req: FastifyRequest,
  raw: Record<string, unknown>,
  touch = true,
): Promise<UserCaller | undefined> {
  if (hasAppCredentials(req, raw) || !services.operators.hasCredential(req)) return undefined;
  const principal = await services.operators.principal(req, touch);
  if (!principal) return undefined;
  return {
    appCode: `user:${principal.user.name}`,
    username: principal.user.name,
    scopes: reachableScopes(principal),
    principal,
  };
}

/** The scopes the person can act in at all (any role), for code that filters by `caller.scopes`. */
function reachableScopes(p: Principal): 'all' | ScopeGrant[] {
  if (p.user.platformAdmin) return p.scopeLimit;
  const own = p.user.roles.map((g) => ({ type: g.scopeType, id: g.scopeId }));
  if (p.scopeLimit === 'all') return own;
  const limit = p.scopeLimit;
  return own.filter((g) => limit.some((l) => l.type === g.type && l.id === g.id));
}

/** The role a credential acts with in a scope: the user's role there, within the token's limits. */
export async function principalRole(
  inventory: ScopeLookup,
  p: Principal,
  scope: { type: 'biz' | 'biz_set'; id: number },
): Promise<Role | undefined> {
  if (p.scopeLimit !== 'all') {
    const covered =
      (await roleInScope(
        inventory,
        p.scopeLimit.map((g) => ({ scopeType: g.type, scopeId: g.id, role: 'admin' as const })),
        scope,
      )) !== undefined;
    if (!covered) return undefined;
  }
  const held = p.user.platformAdmin ? 'admin' : await roleInScope(inventory, p.user.roles, scope);
  return lower(held, p.maxRole);
}

/**
 * Refuses a call the caller may not make: for apps, a scope they are not granted; for people,
 * a role below what the endpoint's permission needs in the scope (unscoped endpoints: reading
 * is open to every signed-in user, running or managing needs a platform admin).
 */
export async function authorizeCall(
  inventory: ScopeLookup,
  caller: Caller,
  permission: Permission,
  scope: ResolvedScope | undefined,
): Promise<void> {
  if (!isUserCaller(caller)) {
    if (scope) await assertScopeGranted(inventory, caller, scope);
    return;
  }
  const p = caller.principal;
  const needs = ROLE_FOR[permission];
  if (!scope) {
    if (permission === 'read' || isPlatformAdmin(p)) return;
    throw new ApiError('USER_PERMISSION_DENIED', {
      username: p.user.name,
      permission,
      resource: 'every scope',
      needs: 'a platform admin',
    });
  }
  const held = await principalRole(inventory, p, scope);
  if (rank(held) >= rank(needs)) return;
  throw new ApiError('USER_PERMISSION_DENIED', {
    username: p.user.name,
    permission,
    resource: `${scope.type} ${scope.id}${held ? ` (as ${held})` : ''}`,
    needs: `the ${needs} role`,
  });
}
