/**
 * App authentication. Credentials may come in the JSON body, the query string, or the
 * `X-Bkapi-Authorization` header (a JSON object), as BK-JOB's ESB and API gateway accept.
 *
 * Secrets are stored as salted SHA-256: app secrets are long random strings, so a slow
 * password hash would buy nothing and cost every API call a few milliseconds.
 */
import crypto from 'node:crypto';
import type { AppStore, StoredApp } from '../store/app-store.js';
import { ApiError } from './error-catalogue.js';

export interface Credentials {
  appCode: string | undefined;
  appSecret: string | undefined;
  username: string | undefined;
}

export interface Caller {
  appCode: string;
  /** The acting user; the app code when the request names none (bk_token cannot be verified here). */
  username: string;
  scopes: StoredApp['scopes'];
  /** Platform permissions granted through the admin API, e.g. `public_script_manage`. */
  permissions?: readonly string[];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function headerObject(raw: string | string[] | undefined): Record<string, unknown> {
  if (typeof raw !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Header first, then body, then query: the header is what gateway clients set deliberately. */
export function extractCredentials(
  headers: Record<string, string | string[] | undefined>,
  params: Record<string, unknown>,
): Credentials {
  const h = headerObject(headers['x-bkapi-authorization']);
  const userHeader = headers['x-bk-username'];
  return {
    appCode: str(h.bk_app_code) ?? str(params.bk_app_code),
    appSecret: str(h.bk_app_secret) ?? str(params.bk_app_secret),
    username:
      (typeof userHeader === 'string' ? str(userHeader) : undefined) ??
      str(h.bk_username) ??
      str(params.bk_username),
  };
}

export function hashSecret(secret: string): string {
  const salt = crypto.randomBytes(16).toString('hex');
  const digest = crypto.createHash('sha256').update(`${salt}:${secret}`).digest('hex');
  return `sha256:${salt}:${digest}`;
}

export function verifySecret(secret: string, stored: string): boolean {
  const [kind, salt, digest] = stored.split(':');
  if (kind !== 'sha256' || salt === undefined || digest === undefined) return false;
  const actual = crypto.createHash('sha256').update(`${salt}:${secret}`).digest();
  const expected = Buffer.from(digest, 'hex');
  return expected.length === actual.length && crypto.timingSafeEqual(actual, expected);
}

/**
 * Looks apps up with a short-lived cache so that a hot polling loop does not cost a database
 * round trip per call; a changed secret or grant takes effect within `ttlMs`.
 */
export class Authenticator {
  private readonly cache = new Map<string, { app: StoredApp | undefined; until: number }>();

  constructor(
    private readonly apps: AppStore,
    private readonly ttlMs = 2000,
  ) {}

  async authenticate(creds: Credentials): Promise<Caller> {
    if (!creds.appCode || !creds.appSecret) throw new ApiError('MISSING_APP_CODE');
    const now = Date.now();
    let hit = this.cache.get(creds.appCode);
    if (!hit || hit.until < now) {
      hit = { app: await this.apps.getApp(creds.appCode), until: now + this.ttlMs };
      this.cache.set(creds.appCode, hit);
    }
    if (!hit.app || !verifySecret(creds.appSecret, hit.app.secretHash)) throw new ApiError('APP_AUTH_FAILED');
    return {
      appCode: hit.app.appCode,
      username: creds.username ?? hit.app.appCode,
      scopes: hit.app.scopes,
      permissions: hit.app.permissions ?? [],
    };
  }

  forget(appCode: string): void {
    this.cache.delete(appCode);
  }
}
