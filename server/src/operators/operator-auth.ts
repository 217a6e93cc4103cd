/**
 * How people prove who they are: console sessions (a cookie) and personal API tokens (a bearer
 * header), both checked against the store on every request, so a logout, a revoke, a password
 * reset or a deleted user takes effect at once on every server of a cluster.
 *
 * Session cookies are HttpOnly and SameSite=Lax; every request other than GET that rides on the
 * cookie must also carry the session's CSRF token in `X-CSRF-Token`. That token is an HMAC of
 * the session token under the server key, so it needs no storage and is the same on every server.
 */
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ScopeGrant } from '../store/app-store.js';
import type { OperatorStore, Role, TokenRow, User } from '../store/operator-store.js';
import type { AuditRecord, AuditStore } from '../store/audit-store.js';
import { ApiError } from '../api/error-catalogue.js';
import { decoyHash, verifyPassword } from './password-hash.js';
import { LoginLimiter, LoginRateLimited } from './login-limiter.js';

export const SESSION_COOKIE = 'jobfleet_session';
export const CSRF_HEADER = 'x-csrf-token';
export const TOKEN_PREFIX = 'jft_';

/** A person behind a request, and what the credential they used lets them reach. */
export interface Principal {
  user: User;
  via: 'session' | 'token';
  /** Present for sessions: given to the client at sign-in and by /api/auth/me. */
  csrfToken?: string;
  /** SHA-256 of the session token, to end the session at logout. */
  sessionHash?: string;
  token?: TokenRow;
  /** Scopes the credential is limited to (tokens may be narrower than their user). */
  scopeLimit: 'all' | ScopeGrant[];
  /** Highest role the credential acts with (tokens may be capped lower than their user). */
  maxRole: Role;
}

export interface OperatorAuthOptions {
  store: OperatorStore;
  audit: AuditStore;
  /** Key for CSRF tokens (the server key). */
  key: Buffer;
  idleMs: number;
  maxMs: number;
  limits: ConstructorParameters<typeof LoginLimiter>[0];
}

export function sha256(value: string): string {
  return crypto.createHash('sha256').update(value).digest('hex');
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    // Session tokens are base64url, so a value needing decoding is not one of ours.
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function bearer(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
}

/** Whether a credential may act as a platform admin: only the full, unlimited credential of one. */
export function isPlatformAdmin(p: Principal): boolean {
  return p.user.platformAdmin && p.maxRole === 'admin' && p.scopeLimit === 'all';
}

export class OperatorAuth {
  readonly limiter: LoginLimiter;

  constructor(private readonly opts: OperatorAuthOptions) {
    this.limiter = new LoginLimiter(opts.limits);
  }

  get store(): OperatorStore {
    return this.opts.store;
  }

  csrfFor(sessionToken: string): string {
    return crypto.createHmac('sha256', this.opts.key).update(`csrf:${sessionToken}`).digest('base64url');
  }

  /** Records an audit entry for a request; the source address comes from the request. */
  async audit(req: FastifyRequest, r: Omit<AuditRecord, 'sourceIp'>): Promise<void> {
    await this.opts.audit.record({ ...r, sourceIp: req.ip });
  }

  /**
   * Checks a user name and password (rate-limited), opens a session and sets its cookie.
   * Both outcomes are audited; the reply never says whether the user name exists.
   */
  async login(
    req: FastifyRequest,
    reply: FastifyReply,
    username: string,
    password: string,
  ): Promise<{ user: User; csrfToken: string; expiresAt: number }> {
    const refuse = async (reason: string, err: ApiError) => {
      await this.audit(req, {
        actorKind: 'user',
        username,
        action: 'user.login',
        outcome: 'refused',
        code: err.code,
        detail: { reason },
      });
      return err;
    };
    try {
      await this.limiter.attempt(username, req.ip);
    } catch (err) {
      // One entry per window: a flood of refused attempts would be a row each.
      if (err instanceof LoginRateLimited && err.firstInWindow) throw await refuse('rate limited', err);
      throw err;
    }
    const user = await this.opts.store.getUserByName(username);
    const ok = await verifyPassword(password, user?.passwordHash ?? (await decoyHash()));
    if (!user || !ok) {
      throw await refuse(user ? 'wrong password' : 'unknown user', new ApiError('LOGIN_FAILED'));
    }
    await this.limiter.succeeded(username, req.ip);
    const token = crypto.randomBytes(32).toString('base64url');
    const now = Date.now();
    // Ended sessions are deleted when next presented; those never presented again go here.
    await this.opts.store.pruneSessions(now, this.opts.idleMs);
    const expiresAt = now + this.opts.maxMs;
    const started = await this.opts.store.createSession(
      {
        token_hash: sha256(token),
        user_id: user.id,
        created_at: now,
        last_seen_at: now,
        expires_at: expiresAt,
        source_ip: req.ip,
      },
      user.passwordHash,
    );
    // The password was changed (ending every session) while this one was being checked.
    if (!started) throw await refuse('password changed meanwhile', new ApiError('LOGIN_FAILED'));
    reply.header('set-cookie', this.cookie(req, token, Math.floor(this.opts.maxMs / 1000)));
    await this.audit(req, { actorKind: 'user', username, action: 'user.login', outcome: 'ok' });
    return { user, csrfToken: this.csrfFor(token), expiresAt };
  }

  /** Ends the session server-side (the cookie alone is then worthless) and clears the cookie. */
  async logout(req: FastifyRequest, reply: FastifyReply, p: Principal): Promise<void> {
    if (p.sessionHash) await this.opts.store.deleteSession(p.sessionHash);
    reply.header('set-cookie', this.cookie(req, '', 0));
    await this.audit(req, { actorKind: 'user', username: p.user.name, action: 'user.logout', outcome: 'ok' });
  }

  private cookie(req: FastifyRequest, value: string, maxAgeSeconds: number): string {
    const secure = req.protocol === 'https' ? '; Secure' : '';
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure}`;
  }

  /** Whether the request carries a user credential (a bearer token or the session cookie). */
  hasCredential(req: FastifyRequest): boolean {
    return bearer(req) !== undefined || readCookie(req.headers.cookie, SESSION_COOKIE) !== undefined;
  }

  /**
   * The person behind the request, or undefined when it carries no user credential. A credential
   * that is present but not good (unknown, expired, revoked, missing CSRF token) is an error.
   */
  /**
   * `touch: false` for a check that is not the person's own activity (an open event stream asking
   * again): it must not keep an idle session alive.
   */
  async principal(req: FastifyRequest, touch = true): Promise<Principal | undefined> {
    const tokenValue = bearer(req);
    if (tokenValue !== undefined) return this.fromToken(tokenValue);
    const sessionToken = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (sessionToken === undefined) return undefined;
    const p = await this.fromSession(sessionToken, touch);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const given = req.headers[CSRF_HEADER];
      const expected = p.csrfToken ?? '';
      if (
        typeof given !== 'string' ||
        given.length !== expected.length ||
        !crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected))
      )
        throw new ApiError('CSRF_CHECK_FAILED');
    }
    return p;
  }

  /** As principal(), but a request without a credential is an error too. */
  async requirePrincipal(req: FastifyRequest): Promise<Principal> {
    const p = await this.principal(req);
    if (!p) throw new ApiError('USER_AUTH_FAILED', { reason: 'no session cookie and no bearer token' });
    return p;
  }

  private async fromSession(sessionToken: string, touch: boolean): Promise<Principal> {
    const hash = sha256(sessionToken);
    const s = await this.opts.store.getSession(hash);
    if (!s) throw new ApiError('USER_AUTH_FAILED', { reason: 'the session has ended' });
    const now = Date.now();
    if (s.expires_at <= now || s.last_seen_at + this.opts.idleMs <= now) {
      await this.opts.store.deleteSession(hash);
      throw new ApiError('USER_AUTH_FAILED', {
        reason: s.expires_at <= now ? 'the session has expired' : 'the session has been idle too long',
      });
    }
    const user = await this.opts.store.getUserById(s.user_id);
    if (!user) throw new ApiError('USER_AUTH_FAILED', { reason: 'the user no longer exists' });
    // Refreshing on every request would be a write per call; a fraction of the idle time is precise enough.
    if (touch && now - s.last_seen_at >= Math.min(60_000, this.opts.idleMs / 4))
      await this.opts.store.touchSession(hash, now);
    return {
      user,
      via: 'session',
      csrfToken: this.csrfFor(sessionToken),
      sessionHash: hash,
      scopeLimit: 'all',
      maxRole: 'admin',
    };
  }

  private async fromToken(value: string): Promise<Principal> {
    const t = value.startsWith(TOKEN_PREFIX)
      ? await this.opts.store.getTokenByHash(sha256(value))
      : undefined;
    if (!t) throw new ApiError('USER_AUTH_FAILED', { reason: 'unknown API token' });
    const now = Date.now();
    if (t.revoked_at !== null)
      throw new ApiError('USER_AUTH_FAILED', { reason: `API token ${t.id} was revoked` });
    if (t.expires_at !== null && t.expires_at <= now)
      throw new ApiError('USER_AUTH_FAILED', { reason: `API token ${t.id} has expired` });
    const user = await this.opts.store.getUserById(t.user_id);
    if (!user) throw new ApiError('USER_AUTH_FAILED', { reason: 'the user no longer exists' });
    if (t.last_used_at === null || now - t.last_used_at >= 60_000)
      await this.opts.store.touchToken(t.id, now);
    return {
      user,
      via: 'token',
      token: t,
      scopeLimit: JSON.parse(t.scopes) as Principal['scopeLimit'],
      maxRole: t.max_role as Role,
    };
  }

  /** Creates a personal token; the value is returned here once and only its hash is kept. */
  async createToken(
    user: User,
    spec: { name: string; scopes: 'all' | ScopeGrant[]; maxRole: Role; expiresAt: number | null },
  ): Promise<{ row: TokenRow; value: string }> {
    const value = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
    const row = await this.opts.store.createToken({
      user_id: user.id,
      name: spec.name,
      token_hash: sha256(value),
      prefix: value.slice(0, TOKEN_PREFIX.length + 6),
      scopes: JSON.stringify(spec.scopes),
      max_role: spec.maxRole,
      created_at: Date.now(),
      expires_at: spec.expiresAt,
    });
    return { row, value };
  }
}
