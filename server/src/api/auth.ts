/**
 * App authentication. Credentials may come in the JSON body, the query string, or the
 * `X-Bkapi-Authorization` header (a JSON object), as BK-JOB's ESB and API gateway accept; or,
 * as the ESB SDK's signature client sends them, as a signature over the request
 * (app-signature.ts). A request that carries bk_app_secret authenticates with it; one without
 * it but with signature fields in the query string is checked as signed.
 *
 * App secrets are kept sealed by the secret box, since checking a signature needs the secret
 * itself. Apps stored by earlier versions hold only a salted SHA-256 of it: they keep working
 * with the plain secret, and the first such call seals it. Agent tokens stay hashed: they are
 * only ever compared.
 */
import crypto from 'node:crypto';
import { SecretBoxError } from '../secret-box.js';
import type { SecretBox } from '../secret-box.js';
import { sameSecret } from '../secrets.js';
import { appSecretPurpose } from '../store/app-store.js';
import type { AppStore, StoredApp } from '../store/app-store.js';
import type { NonceStore } from '../store/nonce-store.js';
import { SignatureVerifier } from './app-signature.js';
import type { SignedRequest } from './app-signature.js';
import { ApiError } from './error-catalogue.js';

export interface Credentials {
  appCode: string | undefined;
  appSecret: string | undefined;
  username: string | undefined;
  /** Present when the query string carries ESB signature fields. */
  signed?: SignedRequest | undefined;
}

export interface Caller {
  appCode: string;
  /** The acting user; the app code when the request names none (bk_token cannot be verified here). */
  username: string;
  scopes: StoredApp['scopes'];
  /** Platform permissions granted through the admin API, e.g. `public_script_manage`. */
  permissions?: readonly string[];
  /**
   * A signed request's: a digest of the secret its signature was checked with, so that a
   * stream it opened ends once the app's secret is replaced (in memory only).
   */
  signedWith?: string;
}

function secretDigest(secret: string): string {
  return crypto.createHash('sha256').update(secret).digest('hex');
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

/** The longest user name taken (BK-JOB's users are at most 128 characters too). */
const MAX_USERNAME = 128;

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

interface CachedApp {
  app: StoredApp | undefined;
  /** The opened secret; undefined while the app holds only a hash. */
  secret: string | undefined;
  until: number;
}

/**
 * Looks apps up with a short-lived cache so that a hot polling loop does not cost a database
 * round trip per call; a changed secret or grant takes effect within `ttlMs`.
 */
export class Authenticator {
  private readonly cache = new Map<string, CachedApp>();
  private readonly signatures: SignatureVerifier;

  constructor(
    private readonly apps: AppStore,
    private readonly secretBox: SecretBox,
    nonces: NonceStore,
    private readonly ttlMs = 2000,
  ) {
    this.signatures = new SignatureVerifier(nonces);
  }

  async authenticate(creds: Credentials): Promise<Caller> {
    const code = creds.appCode;
    if (!code) throw new ApiError('MISSING_APP_CODE');
    // The name is stored with every job and audit entry; PostgreSQL takes no NUL in text.
    if (creds.username?.includes('\u0000'))
      throw new ApiError('BAD_REQUEST', { reason: 'bk_username must not contain NUL characters' });
    if (creds.username !== undefined && creds.username.length > MAX_USERNAME)
      throw new ApiError('BAD_REQUEST', { reason: `bk_username is longer than ${MAX_USERNAME} characters` });
    if (!creds.appSecret && creds.signed) {
      const { app, secret } = await this.verifySigned(code, creds.signed);
      return { ...this.caller(app, creds), signedWith: secretDigest(secret) };
    }
    if (!creds.appSecret) throw new ApiError('MISSING_APP_CODE');
    const hit = await this.lookup(code);
    if (!hit.app) throw new ApiError('APP_AUTH_FAILED');
    if (hit.secret !== undefined) {
      if (!sameSecret(creds.appSecret, hit.secret)) throw new ApiError('APP_AUTH_FAILED');
    } else {
      if (!verifySecret(creds.appSecret, hit.app.secretHash)) throw new ApiError('APP_AUTH_FAILED');
      // The app proved it knows the secret its hash stands for: keep the secret sealed from now on.
      await this.reseal(hit, hit.app, creds.appSecret);
    }
    return this.caller(hit.app, creds);
  }

  /**
   * The caller of a long request (an event stream) as things stand now: its app must still exist
   * and still have the secret the request carried, or (a signed request, whose signature cannot
   * be checked again: its nonce is spent) the secret its signature was checked with.
   */
  async recheck(creds: Credentials, signedWith?: string): Promise<Caller> {
    const hit = creds.appCode ? await this.lookup(creds.appCode) : undefined;
    if (!hit?.app) throw new ApiError('APP_AUTH_FAILED');
    if (creds.appSecret) {
      const same =
        hit.secret !== undefined
          ? sameSecret(creds.appSecret, hit.secret)
          : verifySecret(creds.appSecret, hit.app.secretHash);
      if (!same) throw new ApiError('APP_AUTH_FAILED');
    } else if (signedWith !== undefined) {
      if (hit.secret === undefined || !sameSecret(secretDigest(hit.secret), signedWith))
        throw new ApiError('APP_AUTH_FAILED');
    }
    return this.caller(hit.app, creds);
  }

  forget(appCode: string): void {
    this.cache.delete(appCode);
  }

  private caller(app: StoredApp, creds: Credentials): Caller {
    return {
      appCode: app.appCode,
      username: creds.username ?? app.appCode,
      scopes: app.scopes,
      ...(app.permissions?.length ? { permissions: app.permissions } : {}),
    };
  }

  private async lookup(appCode: string): Promise<CachedApp> {
    const now = Date.now();
    // No app has such a code (PostgreSQL would refuse the query for the NUL): unknown, unasked.
    if (appCode.includes('\u0000') || appCode.length > 256)
      return { app: undefined, secret: undefined, until: now };
    let hit = this.cache.get(appCode);
    if (!hit || hit.until < now) {
      const app = await this.apps.getApp(appCode);
      const secret = app?.secretSealed ? this.openSecret(app.secretSealed, appCode) : undefined;
      hit = { app, secret, until: now + this.ttlMs };
      // Only apps that exist are kept: codes anyone may send would grow the cache without end.
      if (app) this.cache.set(appCode, hit);
      else this.cache.delete(appCode);
      // Sealed under a key being rotated out: move it to the current key while it still opens.
      if (app && secret !== undefined && this.secretBox.needsReseal(app.secretSealed)) {
        await this.reseal(hit, app, secret);
      }
    }
    return hit;
  }

  /**
   * An app's secret, opened. One sealed under a key this server lacks (another server of a
   * cluster started with a new key this one does not hold yet) is a clear refusal, not an
   * internal error.
   */
  private openSecret(sealed: string, appCode: string): string {
    try {
      return this.secretBox.open(sealed, appSecretPurpose(appCode));
    } catch (err) {
      if (!(err instanceof SecretBoxError)) throw err;
      throw new ApiError('SEALED_VALUE_UNOPENABLE', {
        what: `secret of app ${appCode}`,
        reason: err.message,
      });
    }
  }

  private async verifySigned(
    appCode: string,
    signed: SignedRequest,
  ): Promise<{ app: StoredApp; secret: string }> {
    const hit = await this.lookup(appCode);
    if (!hit.app) throw new ApiError('APP_SIGNATURE_INVALID');
    if (hit.secret === undefined) throw new ApiError('APP_SECRET_NOT_SEALED', { appCode });
    const secret = hit.secret;
    await this.signatures.verify(signed, appCode, secret);
    return { app: hit.app, secret };
  }

  /** Stores the secret sealed under the current key, in place of a legacy hash or an old seal. */
  private async reseal(hit: CachedApp, app: StoredApp, secret: string): Promise<void> {
    const sealed = this.secretBox.seal(secret, appSecretPurpose(app.appCode));
    if (await this.apps.resealSecret(app, sealed)) {
      hit.app = { ...app, secretSealed: sealed, secretHash: '' };
      hit.secret = secret;
    } else {
      this.forget(app.appCode);
    }
  }
}
