/**
 * The secrets a server needs (app secret, admin token, agent bootstrap token, the server key
 * that seals secrets at rest). Unset ones are generated once and kept in
 * <dataDir>/secrets.json (mode 0600), so a restart keeps them and a first start needs no set-up.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ServerConfig } from './config.js';
import { generateServerKey, parseServerKey, SecretBox } from './secret-box.js';

export interface ServerSecrets {
  appSecret: string;
  adminToken: string;
  agentBootstrapToken: string;
  /** Base64 or hex of 32 bytes; see secret-box.ts. */
  serverKey: string;
}

const Stored = z
  .object({
    appSecret: z.string(),
    adminToken: z.string(),
    agentBootstrapToken: z.string(),
    serverKey: z.string(),
  })
  .partial();

function generate(): string {
  return crypto.randomBytes(24).toString('base64url');
}

export function resolveSecrets(config: ServerConfig): ServerSecrets {
  const stored = readStored(config);
  const secrets: ServerSecrets = {
    appSecret: config.appSecret ?? stored.appSecret ?? generate(),
    adminToken: config.adminToken ?? stored.adminToken ?? generate(),
    agentBootstrapToken: config.agentBootstrapToken ?? stored.agentBootstrapToken ?? generate(),
    serverKey: config.serverKey ?? stored.serverKey ?? generateServerKey(),
  };
  keepSecrets(config, secrets, stored);
  return secrets;
}

function readStored(config: ServerConfig): z.infer<typeof Stored> {
  const file = path.join(config.dataDir, 'secrets.json');
  return fs.existsSync(file) ? Stored.parse(JSON.parse(fs.readFileSync(file, 'utf8'))) : {};
}

/** Writes the secrets not given by configuration to <dataDir>/secrets.json, when they changed. */
export function keepSecrets(
  config: ServerConfig,
  secrets: ServerSecrets,
  stored: z.infer<typeof Stored> = readStored(config),
): void {
  const file = path.join(config.dataDir, 'secrets.json');
  const toKeep = {
    appSecret: config.appSecret ? stored.appSecret : secrets.appSecret,
    adminToken: config.adminToken ? stored.adminToken : secrets.adminToken,
    agentBootstrapToken: config.agentBootstrapToken
      ? stored.agentBootstrapToken
      : secrets.agentBootstrapToken,
    serverKey: config.serverKey ? stored.serverKey : secrets.serverKey,
  };
  if (JSON.stringify(toKeep) !== JSON.stringify(stored)) {
    fs.mkdirSync(config.dataDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(toKeep, null, 2) + '\n', { mode: 0o600 });
  }
}

/** The box that seals secrets at rest: the current server key plus any earlier ones. */
export function openSecretBox(config: ServerConfig, secrets: ServerSecrets): SecretBox {
  const previous = config.serverKeysPrevious
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map(parseServerKey);
  return new SecretBox(parseServerKey(secrets.serverKey), previous);
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}
