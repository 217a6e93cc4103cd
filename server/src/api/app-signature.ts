/**
 * ESB signature authentication, as the BlueKing ESB SDK's signature client sends it: no
 * bk_app_secret on the wire, but `bk_timestamp` (unix seconds), `bk_nonce` and `bk_signature`
 * in the query string, where
 *
 *   bk_signature = base64(HMAC-SHA1(app secret, METHOD + path + "?" + k1=v1&k2=v2...))
 *
 * over every query parameter but bk_signature, plus `data=<raw body>` for a request with a
 * body, sorted by key, values as the client had them before URL-encoding. A signed request is
 * good for 300 s either side of the server clock, and once: its nonce is remembered in the
 * store (so across servers too) until its timestamp goes stale.
 */
import crypto from 'node:crypto';
import type { NonceStore } from '../store/nonce-store.js';
import { ApiError } from './error-catalogue.js';

export const SIGNATURE_WINDOW_S = 300;
const PRUNE_EVERY_MS = 60_000;
const SIGNATURE_FIELDS = ['bk_timestamp', 'bk_nonce', 'bk_signature'] as const;

export interface SignedRequest {
  method: string;
  /** The path as the client sent it, still URL-encoded (the SDK signs urlparse(url).path). */
  path: string;
  /** Query parameters in arrival order, decoded. */
  pairs: [string, string][];
  /** The body exactly as received; undefined when there was none. */
  body: string | undefined;
}

/** The signed form of a request, or undefined when its query string carries no signature field. */
export function signedRequestOf(
  method: string,
  url: string,
  body: string | undefined,
): SignedRequest | undefined {
  const q = url.indexOf('?');
  const pairs = q < 0 ? [] : [...new URLSearchParams(url.slice(q + 1))];
  if (!pairs.some(([k]) => (SIGNATURE_FIELDS as readonly string[]).includes(k))) return undefined;
  return { method: method.toUpperCase(), path: q < 0 ? url : url.slice(0, q), pairs, body };
}

/** The text the client signed. */
export function signatureBase(req: SignedRequest): string {
  const pairs = req.pairs.filter(([k]) => k !== 'bk_signature');
  if (req.body) pairs.push(['data', req.body]);
  // By code unit, as Python sorts str keys (the same order for the ASCII keys of this API).
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${req.method}${req.path}?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

export function computeSignature(secret: string, base: string): string {
  return crypto.createHmac('sha1', secret).update(base, 'utf8').digest('base64');
}

function field(req: SignedRequest, name: (typeof SIGNATURE_FIELDS)[number]): string {
  const value = req.pairs.find(([k]) => k === name)?.[1];
  if (value === undefined || value === '') throw new ApiError('APP_SIGNATURE_MISSING', { param: name });
  return value;
}

const NONCE = /^[\x21-\x7e]{1,128}$/;

export class SignatureVerifier {
  private nextPruneAt = 0;

  constructor(private readonly nonces: NonceStore) {}

  /** Throws the ApiError that names what is wrong; returns when the request is authentic and new. */
  async verify(req: SignedRequest, appCode: string, secret: string, now = Date.now()): Promise<void> {
    // Base64 has no spaces: one here is a `+` a hand-written URL left unencoded.
    const signature = field(req, 'bk_signature').replaceAll(' ', '+');
    const timestampText = field(req, 'bk_timestamp');
    const nonce = field(req, 'bk_nonce');
    const expected = Buffer.from(computeSignature(secret, signatureBase(req)));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw new ApiError('APP_SIGNATURE_INVALID');
    }
    const timestamp = /^\d{1,12}$/.test(timestampText) ? Number(timestampText) : NaN;
    // Not rounded: a request is good exactly as long as its nonce is remembered (below).
    const skew = Math.abs(now / 1000 - timestamp);
    if (!(skew <= SIGNATURE_WINDOW_S)) {
      throw new ApiError('APP_SIGNATURE_EXPIRED', {
        timestamp: timestampText,
        skew: Number.isFinite(skew) ? `${Math.round(skew)} s` : 'not a unix time',
        window: SIGNATURE_WINDOW_S,
      });
    }
    // Kept in a key column: a NUL or a value past PostgreSQL's index row limit would fail its
    // insert (an internal error) where SQLite stored it. ESB clients send a random number.
    if (!NONCE.test(nonce))
      throw new ApiError('APP_SIGNATURE_MISSING', { param: 'a bk_nonce of 1 to 128 printable characters' });
    // Remembered until the signed timestamp goes stale: after that a replay fails on the clock.
    const fresh = await this.nonces.remember(appCode, nonce, (timestamp + SIGNATURE_WINDOW_S) * 1000, now);
    if (!fresh) throw new ApiError('APP_SIGNATURE_REPLAYED', { nonce, appCode, window: SIGNATURE_WINDOW_S });
    if (now >= this.nextPruneAt) {
      this.nextPruneAt = now + PRUNE_EVERY_MS;
      await this.nonces.prune(now);
    }
  }
}
