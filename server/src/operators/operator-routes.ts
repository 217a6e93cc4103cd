/**
 * The people API: self-service under /api/auth (sign in and out, who am I, my tokens, my
 * password) and user management under /api/admin/users (platform admins and the admin token).
 * Replies use the BK-JOB envelope, like every other route under /api.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parse, unique } from '../admin/admin-routes.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { zLong, zText } from '../api/input-types.js';
import type { Services } from '../services.js';
import type { RoleGrant, TokenRow, User } from '../store/operator-store.js';
import { adminActor, requireAdmin } from './admin-access.js';
import { isPlatformAdmin } from './operator-auth.js';
import type { Principal } from './operator-auth.js';
import { generatePassword, hashPassword, verifyPassword } from './password-hash.js';
import { ROLES } from './roles.js';

const Role = z.enum(ROLES);
const ScopeType = z.enum(['biz', 'biz_set']);
const UserName = z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'must be 1 to 64 letters, digits or _ . @ -');
const Password = z.string().min(8, 'must be at least 8 characters').max(1024);

export const OPERATOR_SCHEMAS = {
  login: z.object({ username: zText(128).min(1), password: z.string().min(1).max(1024) }),
  password: z.object({ current_password: z.string().min(1).max(1024), new_password: Password }),
  token: z.object({
    name: zText(100).min(1),
    scopes: z
      .union([z.literal('all'), z.array(z.object({ type: ScopeType, id: zLong })).min(1)])
      .default('all'),
    role: Role.default('admin'),
    expires_in_days: zLong.pipe(z.number().int().min(1).max(3650)).optional(),
  }),
  user: z.object({
    name: UserName,
    display_name: zText(200).optional(),
    password: Password.optional(),
    platform_admin: z.boolean().default(false),
  }),
  roles: z.object({
    roles: z.array(z.object({ scope_type: ScopeType, scope_id: zLong, role: Role })),
    platform_admin: z.boolean().optional(),
  }),
  reset: z.object({ password: Password.optional() }),
} as const;

function userView(u: User) {
  return {
    id: u.id,
    name: u.name,
    display_name: u.displayName,
    platform_admin: u.platformAdmin,
    roles: u.roles.map((g) => ({ scope_type: g.scopeType, scope_id: g.scopeId, role: g.role })),
    created_at: u.createdAt,
  };
}

function tokenView(t: TokenRow) {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    scopes: JSON.parse(t.scopes) as unknown,
    role: t.max_role,
    created_at: t.created_at,
    expires_at: t.expires_at,
    last_used_at: t.last_used_at,
    revoked_at: t.revoked_at,
  };
}

function meView(p: Principal) {
  return {
    user: userView(p.user),
    auth: p.via,
    ...(p.csrfToken ? { csrf_token: p.csrfToken } : {}),
    ...(p.token ? { token: tokenView(p.token) } : {}),
    platform_admin: isPlatformAdmin(p),
  };
}

/** A browser request made by a page of another origin (Sec-Fetch-Site, else Origin against Host). */
function fromAnotherSite(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

export function registerOperatorRoutes(app: FastifyInstance, services: Services): void {
  const ops = services.operators;
  const store = services.store.operators;
  const ok = (req: FastifyRequest, data: unknown) => successEnvelope(data, req.id);

  const revoke = async (
    req: FastifyRequest,
    token: TokenRow,
    actor: { kind: 'user' | 'admin'; name: string },
  ) => {
    const done = await store.revokeToken(token.id, Date.now());
    await ops.audit(req, {
      actorKind: actor.kind,
      username: actor.name,
      action: 'token.revoke',
      target: `api_token:${token.id}`,
      outcome: 'ok',
      detail: { owner_id: token.user_id, already_revoked: !done },
    });
  };

  app.register(
    async (auth) => {
      auth.post('/login', async (req, reply) => {
        // A form on another site can post a body that reads as JSON and sign the browser in as
        // someone else (whatever the person then types lands in that account). Browsers say
        // where a request comes from; tools such as curl send neither header.
        if (fromAnotherSite(req))
          throw new ApiError('BAD_REQUEST', { reason: 'sign-in is refused from a page of another site' });
        const body = parse(OPERATOR_SCHEMAS.login, req.body);
        const r = await ops.login(req, reply, body.username, body.password);
        return ok(req, { user: userView(r.user), csrf_token: r.csrfToken, expires_at: r.expiresAt });
      });
      auth.post('/logout', async (req, reply) => {
        const p = await ops.requirePrincipal(req);
        await ops.logout(req, reply, p);
        return ok(req, { logged_out: true });
      });
      auth.get('/me', async (req) => ok(req, meView(await ops.requirePrincipal(req))));
      auth.post('/password', async (req) => {
        const p = await ops.requirePrincipal(req);
        const body = parse(OPERATOR_SCHEMAS.password, req.body);
        // Held to the sign-in's limits: a narrow token or a stolen session must not be a way to
        // guess the password (and a change of it gives a full session).
        await ops.limiter.attempt(p.user.name, req.ip);
        if (!(await verifyPassword(body.current_password, p.user.passwordHash))) {
          await ops.audit(req, {
            actorKind: 'user',
            username: p.user.name,
            action: 'user.password_change',
            outcome: 'refused',
          });
          throw new ApiError('LOGIN_FAILED');
        }
        await ops.limiter.succeeded(p.user.name, req.ip);
        await store.setPassword(p.user.id, await hashPassword(body.new_password));
        await ops.audit(req, {
          actorKind: 'user',
          username: p.user.name,
          action: 'user.password_change',
          outcome: 'ok',
        });
        return ok(req, { changed: true, sessions_ended: true });
      });

      auth.get('/tokens', async (req) => {
        const p = await ops.requirePrincipal(req);
        return ok(req, { tokens: (await store.listTokens(p.user.id)).map(tokenView) });
      });
      auth.post('/tokens', async (req) => {
        const p = await ops.requirePrincipal(req);
        const body = parse(OPERATOR_SCHEMAS.token, req.body);
        // A token can never reach further than the credential that creates it.
        if (p.via === 'token' && (p.scopeLimit !== 'all' || p.maxRole !== 'admin'))
          throw new ApiError('USER_PERMISSION_DENIED', {
            username: p.user.name,
            permission: 'create tokens',
            resource: 'a limited token',
            needs: 'a session or an unlimited token',
          });
        const { row, value } = await ops.createToken(p.user, {
          name: body.name,
          scopes: body.scopes,
          maxRole: body.role,
          expiresAt:
            body.expires_in_days === undefined ? null : Date.now() + body.expires_in_days * 86_400_000,
        });
        await ops.audit(req, {
          actorKind: 'user',
          username: p.user.name,
          action: 'token.create',
          target: `api_token:${row.id}`,
          outcome: 'ok',
          detail: { name: row.name, scopes: body.scopes, role: body.role, expires_at: row.expires_at },
        });
        return ok(req, { ...tokenView(row), token: value });
      });
      auth.delete('/tokens/:id', async (req) => {
        const p = await ops.requirePrincipal(req);
        const id = parse(z.object({ id: zLong }), req.params).id;
        const t = await store.getToken(id);
        if (!t || t.user_id !== p.user.id)
          throw new ApiError('RESOURCE_NOT_FOUND', { what: `API token ${id}` });
        await revoke(req, t, { kind: 'user', name: p.user.name });
        return ok(req, { id, revoked: true });
      });
    },
    { prefix: '/api/auth' },
  );

  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (req) => requireAdmin(services, req));
      const userNamed = async (req: FastifyRequest): Promise<User> => {
        const name = parse(z.object({ name: UserName }), req.params).name;
        const u = await store.getUserByName(name);
        if (!u) throw new ApiError('RESOURCE_NOT_FOUND', { what: `user ${name}` });
        return u;
      };
      const record = async (
        req: FastifyRequest,
        action: string,
        target: string,
        detail: Record<string, unknown>,
      ) => {
        const actor = adminActor(req);
        await ops.audit(req, {
          actorKind: actor.kind,
          username: actor.name,
          action,
          target,
          outcome: 'ok',
          detail,
        });
      };

      admin.get('/users', async (req) => ok(req, { users: (await store.listUsers()).map(userView) }));
      admin.post('/users', async (req) => {
        const body = parse(OPERATOR_SCHEMAS.user, req.body);
        const password = body.password ?? generatePassword();
        const passwordHash = await hashPassword(password);
        const user = await unique(`user ${body.name}`, () =>
          store.createUser({
            name: body.name,
            displayName: body.display_name ?? body.name,
            passwordHash,
            platformAdmin: body.platform_admin,
          }),
        );
        await record(req, 'user.create', `user:${user.name}`, { platform_admin: user.platformAdmin });
        // A generated password is shown once, here; one the caller chose is not echoed back.
        return ok(req, { ...userView(user), ...(body.password ? {} : { password }) });
      });
      admin.get('/users/:name', async (req) => ok(req, userView(await userNamed(req))));
      admin.post('/users/:name/roles', async (req) => {
        const user = await userNamed(req);
        const body = parse(OPERATOR_SCHEMAS.roles, req.body);
        const roles: RoleGrant[] = body.roles.map((g) => ({
          scopeType: g.scope_type,
          scopeId: g.scope_id,
          role: g.role,
        }));
        const inv = services.store.inventory;
        for (const g of roles) {
          const exists = g.scopeType === 'biz' ? await inv.getBiz(g.scopeId) : await inv.getBizSet(g.scopeId);
          if (!exists) throw new ApiError('RESOURCE_NOT_FOUND', { what: `${g.scopeType} ${g.scopeId}` });
        }
        const seen = new Set(roles.map((g) => `${g.scopeType}:${g.scopeId}`));
        if (seen.size !== roles.length)
          throw new ApiError('ILLEGAL_PARAM', { reason: 'roles name the same scope more than once' });
        await store.setRoles(user.id, roles, body.platform_admin);
        const after = await store.getUserById(user.id);
        await record(req, 'user.roles', `user:${user.name}`, {
          before: { roles: userView(user).roles, platform_admin: user.platformAdmin },
          after: { roles: body.roles, platform_admin: after?.platformAdmin ?? false },
        });
        return ok(req, after ? userView(after) : null);
      });
      admin.post('/users/:name/password', async (req) => {
        const user = await userNamed(req);
        const body = parse(OPERATOR_SCHEMAS.reset, req.body);
        const password = body.password ?? generatePassword();
        await store.setPassword(user.id, await hashPassword(password));
        await record(req, 'user.password_reset', `user:${user.name}`, {});
        return ok(req, { name: user.name, sessions_ended: true, ...(body.password ? {} : { password }) });
      });
      admin.delete('/users/:name', async (req) => {
        const user = await userNamed(req);
        await store.deleteUser(user.id);
        await record(req, 'user.delete', `user:${user.name}`, {});
        return ok(req, { name: user.name, deleted: true });
      });
      admin.get('/users/:name/tokens', async (req) => {
        const user = await userNamed(req);
        return ok(req, { tokens: (await store.listTokens(user.id)).map(tokenView) });
      });
      admin.delete('/tokens/:id', async (req) => {
        const id = parse(z.object({ id: zLong }), req.params).id;
        const t = await store.getToken(id);
        if (!t) throw new ApiError('RESOURCE_NOT_FOUND', { what: `API token ${id}` });
        const actor = adminActor(req);
        await revoke(req, t, actor);
        return ok(req, { id, revoked: true });
      });
    },
    { prefix: '/api/admin' },
  );
}
