/**
 * The scope a page works in, taken from the URL (`/biz/2/...`, `/biz_set/9/...`), and the
 * parameters every scoped v3 call carries.
 */
import { useMemo } from 'react';
import { useParams } from 'react-router';
import { useSession } from './session';
import type { Role, ScopeType } from './session';

export interface Scope {
  type: ScopeType;
  id: number;
  /** The role the signed-in person holds here (undefined: none). */
  role: Role | undefined;
  /** `bk_scope_type` + `bk_scope_id`, for v3 calls. */
  params: { bk_scope_type: ScopeType; bk_scope_id: string };
  /** A console path inside this scope: scopePath('jobs/7') is /biz/2/jobs/7. */
  path(rest: string): string;
}

export function scopeBase(type: ScopeType, id: number | string): string {
  return `/${type}/${id}`;
}

export function useScope(): Scope {
  const { scopeType, scopeId } = useParams();
  const { scopes } = useSession();
  const type: ScopeType = scopeType === 'biz_set' ? 'biz_set' : 'biz';
  const id = Number(scopeId);
  const role = scopes.find((s) => s.scope_type === type && s.scope_id === id)?.role;
  return useMemo(
    () => ({
      type,
      id,
      role,
      params: { bk_scope_type: type, bk_scope_id: String(id) },
      path: (rest: string) => `${scopeBase(type, id)}/${rest.replace(/^\//, '')}`,
    }),
    [type, id, role],
  );
}
