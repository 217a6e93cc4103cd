/**
 * Who is signed in: loaded once from /api/auth/me, set by sign-in, cleared by sign-out or when
 * any call answers that the session is gone. Also the scopes the person can open (with the role
 * held in each), which the layout's scope switcher and the pages' permission checks use.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import { api, setCsrfToken, whenSignedOut } from '../api/client';

export type Role = 'viewer' | 'operator' | 'admin';
export type ScopeType = 'biz' | 'biz_set';

export interface Me {
  user: {
    id: number;
    name: string;
    display_name: string;
    platform_admin: boolean;
    roles: { scope_type: ScopeType; scope_id: number; role: Role }[];
  };
  auth: 'session' | 'token';
  csrf_token?: string;
  platform_admin: boolean;
}

export interface ScopeEntry {
  scope_type: ScopeType;
  scope_id: number;
  name: string;
  role: Role;
}

interface SessionState {
  /** undefined while loading; null when nobody is signed in. */
  me: Me | null | undefined;
  scopes: ScopeEntry[];
  signIn(username: string, password: string): Promise<void>;
  signOut(): Promise<void>;
  reloadScopes(): Promise<void>;
}

const SessionContext = createContext<SessionState | undefined>(undefined);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [scopes, setScopes] = useState<ScopeEntry[]>([]);

  const reloadScopes = useCallback(async () => {
    const data = await api.get<{ scopes: ScopeEntry[] }>('/api/console/scopes');
    setScopes(data.scopes);
  }, []);

  const load = useCallback(async () => {
    try {
      const m = await api.get<Me>('/api/auth/me');
      setCsrfToken(m.csrf_token ?? '');
      await reloadScopes();
      setMe(m);
    } catch {
      setMe(null);
    }
  }, [reloadScopes]);

  useEffect(() => {
    whenSignedOut(() => setMe(null));
    void load();
  }, [load]);

  const signIn = useCallback(
    async (username: string, password: string) => {
      const r = await api.post<{ csrf_token: string }>('/api/auth/login', { username, password });
      setCsrfToken(r.csrf_token);
      await load();
    },
    [load],
  );

  const signOut = useCallback(async () => {
    try {
      await api.post('/api/auth/logout');
    } finally {
      setCsrfToken('');
      setMe(null);
      setScopes([]);
    }
  }, []);

  const value = useMemo(
    () => ({ me, scopes, signIn, signOut, reloadScopes }),
    [me, scopes, signIn, signOut, reloadScopes],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether a role reaches another (operator reaches viewer, admin reaches both). */
export function reaches(held: Role | undefined, needs: Role): boolean {
  return held !== undefined && RANK[held] >= RANK[needs];
}
