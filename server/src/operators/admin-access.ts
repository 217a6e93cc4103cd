/**
 * Who may use the admin API: the admin token (for scripts and the first start), or a platform
 * admin signed in to the console or holding an unlimited personal token.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../api/error-catalogue.js';
import { sameSecret } from '../secrets.js';
import type { Services } from '../services.js';
import { isPlatformAdmin, TOKEN_PREFIX } from './operator-auth.js';

export interface AdminActor {
  kind: 'admin' | 'user';
  /** The user's name; empty for the admin token. */
  name: string;
}

const actors = new WeakMap<FastifyRequest, AdminActor>();

/** Throws unless the request may use the admin API; remembers who it was for audit entries. */
export async function requireAdmin(services: Services, req: FastifyRequest): Promise<void> {
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  if (sameSecret(token, services.secrets.adminToken)) {
    actors.set(req, { kind: 'admin', name: '' });
    return;
  }
  const personal =
    token === undefined ? services.operators.hasCredential(req) : token.startsWith(TOKEN_PREFIX);
  if (!personal) throw new ApiError('ADMIN_AUTH_FAILED');
  // A person's call is audited as theirs, refused or not (not as the admin token's).
  actors.set(req, { kind: 'user', name: '' });
  const p = await services.operators.requirePrincipal(req);
  actors.set(req, { kind: 'user', name: p.user.name });
  if (!isPlatformAdmin(p))
    throw new ApiError('USER_PERMISSION_DENIED', {
      username: p.user.name,
      permission: 'use the admin API',
      resource: 'this server',
      needs: 'a platform admin (with a session or an unlimited token)',
    });
}

export function adminActor(req: FastifyRequest): AdminActor {
  return actors.get(req) ?? { kind: 'admin', name: '' };
}
