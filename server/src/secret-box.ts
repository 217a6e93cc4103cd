/**
 * Encryption at rest for every secret the store keeps (app secrets, account passwords,
 * sensitive parameters, cipher variables): AES-256-GCM under the server key.
 *
 * A sealed value reads `sb1:<key id>:<base64url(iv | tag | ciphertext)>`. The key id (the first
 * 8 hex digits of the key's SHA-256) says which key sealed it, so a server started with a new key
 * and the old one among its previous keys still opens old values while sealing new ones with
 * the new key; `needsReseal` finds the values a rotation still has to rewrite.
 *
 * `purpose` is bound as associated data: a value sealed for one column and row (for example
 * `app:<code>`) does not open when copied into another.
 */
import crypto from 'node:crypto';

const PREFIX = 'sb1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const SERVER_KEY_BYTES = 32;

export class SecretBoxError extends Error {}

interface Key {
  id: string;
  bytes: Buffer;
}

function keyId(bytes: Buffer): string {
  return crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 8);
}

/** A server key as configured: 32 bytes, written as base64, base64url or hex. */
export function parseServerKey(text: string): Buffer {
  const t = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (bytes.length !== SERVER_KEY_BYTES) {
    throw new SecretBoxError(
      `a server key must be ${SERVER_KEY_BYTES} bytes (base64 or hex); got ${bytes.length}`,
    );
  }
  return bytes;
}

export function generateServerKey(): string {
  return crypto.randomBytes(SERVER_KEY_BYTES).toString('base64');
}

export class SecretBox {
  private readonly current: Key;
  private readonly byId = new Map<string, Key>();

  /** `current` seals; `current` and `previous` open. Keys are 32-byte buffers. */
  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    for (const bytes of [current, ...previous]) {
      if (bytes.length !== SERVER_KEY_BYTES) throw new SecretBoxError('a server key must be 32 bytes');
      const key = { id: keyId(bytes), bytes };
      if (!this.byId.has(key.id)) this.byId.set(key.id, key);
    }
    this.current = { id: keyId(current), bytes: current };
  }

  get currentKeyId(): string {
    return this.current.id;
  }

  /** How every value sealed under the current key begins (to find the others in a column). */
  get currentPrefix(): string {
    return `${PREFIX}:${this.current.id}:`;
  }

  /** Whether earlier keys were given too: a rotation is under way. */
  get holdsPreviousKeys(): boolean {
    return this.byId.size > 1;
  }

  static isSealed(value: string): boolean {
    return value.startsWith(`${PREFIX}:`);
  }

  seal(plain: string, purpose: string): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.current.bytes, iv);
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const packed = Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
    return `${PREFIX}:${this.current.id}:${packed}`;
  }

  open(sealed: string, purpose: string): string {
    const [prefix, id, packed] = sealed.split(':');
    if (prefix !== PREFIX || id === undefined || packed === undefined) {
      throw new SecretBoxError('not a sealed value');
    }
    const key = this.byId.get(id);
    if (!key) throw new SecretBoxError(`sealed under key ${id}, which this server does not hold`);
    const raw = Buffer.from(packed, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError('sealed value is truncated');
    const decipher = crypto.createDecipheriv('aes-256-gcm', key.bytes, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(purpose, 'utf8'));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new SecretBoxError('sealed value does not open (wrong key, purpose or a damaged value)');
    }
  }

  /** True when the value was sealed under a key other than the current one. */
  needsReseal(sealed: string): boolean {
    return sealed.split(':')[1] !== this.current.id;
  }
}
