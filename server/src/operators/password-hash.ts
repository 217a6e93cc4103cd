/**
 * Passwords are hashed with scrypt (memory-hard) and a random per-user salt. The parameters are
 * stored with the hash (`scrypt$N$r$p$salt$hash`), so they can be raised later without
 * invalidating existing passwords: a hash made with older parameters still verifies.
 *
 * N=2^15, r=8, p=3 is one of OWASP's recommended scrypt settings: 32 MiB per hash, run on
 * libuv's thread pool so a sign-in never blocks the event loop.
 */
import crypto from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(crypto.scrypt) as (
  password: crypto.BinaryLike,
  salt: crypto.BinaryLike,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>;

const PARAMS = { N: 2 ** 15, r: 8, p: 3 };
const KEY_LENGTH = 32;
/** Largest N accepted from a stored hash, so a corrupt row cannot make a sign-in eat memory. */
const MAX_N = 2 ** 20;

function maxmem(N: number, r: number): number {
  return 128 * N * r * 2;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const { N, r, p } = PARAMS;
  const key = await scrypt(password, salt, KEY_LENGTH, { N, r, p, maxmem: maxmem(N, r) });
  return ['scrypt', N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (kind !== 'scrypt' || salt === undefined || hash === undefined) return false;
  if (![N, R, P].every((v) => Number.isSafeInteger(v) && v > 0) || N > MAX_N || R > 32 || P > 16)
    return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N,
    r: R,
    p: P,
    maxmem: maxmem(N, R),
  });
  return crypto.timingSafeEqual(actual, expected);
}

/** A hash no password matches, verified when the user does not exist so that timing does not tell. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(crypto.randomBytes(16).toString('hex'));
  return decoy;
}

/** A password for a new account or a reset, shown once: 18 random bytes, URL-safe. */
export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}
