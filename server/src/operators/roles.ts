/**
 * Roles and what they allow. Every API endpoint declares one permission class; a user's role in
 * the request's scope must reach the role that class needs:
 *
 * | permission | needs    | e.g.                                                        |
 * |------------|----------|-------------------------------------------------------------|
 * | read       | viewer   | job status, logs, job list, rule list                       |
 * | run        | operator | fast_execute_script, file transfers, operate job/step       |
 * | manage     | admin    | dangerous-command rules, scripts, plans, crons, accounts    |
 *
 * Platform admins hold every role in every scope. Endpoints without a scope (dangerous-command
 * rules apply to every business) are readable by any signed-in user; running or managing them
 * needs a platform admin.
 */
import type { ScopeLookup } from '../api/scope.js';
import type { Role, RoleGrant } from '../store/operator-store.js';

export type Permission = 'read' | 'run' | 'manage';

export const ROLES = ['viewer', 'operator', 'admin'] as const satisfies readonly Role[];

export const ROLE_FOR: Record<Permission, Role> = { read: 'viewer', run: 'operator', manage: 'admin' };

export function rank(role: Role | undefined): number {
  return role === undefined ? -1 : ROLES.indexOf(role);
}

export function lower(a: Role | undefined, b: Role | undefined): Role | undefined {
  return rank(a) <= rank(b) ? a : b;
}

/**
 * The role held in a scope: the grant on it, or on a business set that contains it (a set's
 * role reaches every business in the set, as app grants do), whichever is higher.
 */
export async function roleInScope(
  inventory: ScopeLookup,
  grants: readonly RoleGrant[],
  scope: { type: 'biz' | 'biz_set'; id: number },
): Promise<Role | undefined> {
  let best: Role | undefined;
  for (const g of grants) {
    if (g.scopeType === scope.type && g.scopeId === scope.id) {
      if (rank(g.role) > rank(best)) best = g.role;
    } else if (scope.type === 'biz' && g.scopeType === 'biz_set' && rank(g.role) > rank(best)) {
      const set = await inventory.getBizSet(g.scopeId);
      if (set?.bizIds.includes(scope.id)) best = g.role;
    }
  }
  return best;
}
