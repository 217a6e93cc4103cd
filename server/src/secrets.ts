/**
 * The three secrets a server needs (app secret, admin token, agent bootstrap token). Unset
 * ones are generated once and kept in <dataDir>/secrets.json (mode 0600), so a restart keeps
 * them and a first start needs no set-up.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ServerConfig } from './config.js';

export interface ServerSecrets {
  appSecret: string;
  adminToken: string;
  agentBootstrapToken: string;
}

const Stored = z
  .object({ appSecret: z.string(), adminToken: z.string(), agentBootstrapToken: z.string() })
  .partial();

function generate(): string {
  return crypto.randomBytes(24).toString('base64url');
}

export function resolveSecrets(config: ServerConfig): ServerSecrets {
  const file = path.join(config.dataDir, 'secrets.json');
  let stored: z.infer<typeof Stored> = {};
  if (fs.existsSync(file)) stored = Stored.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  const secrets: ServerSecrets = {
    appSecret: config.appSecret ?? stored.appSecret ?? generate(),
    adminToken: config.adminToken ?? stored.adminToken ?? generate(),
    agentBootstrapToken: config.agentBootstrapToken ?? stored.agentBootstrapToken ?? generate(),
  };
  const toKeep = {
    appSecret: config.appSecret ? stored.appSecret : secrets.appSecret,
    adminToken: config.adminToken ? stored.adminToken : secrets.adminToken,
    agentBootstrapToken: config.agentBootstrapToken
      ? stored.agentBootstrapToken
      : secrets.agentBootstrapToken,
  };
  if (JSON.stringify(toKeep) !== JSON.stringify(stored)) {
    fs.mkdirSync(config.dataDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(toKeep, null, 2) + '\n', { mode: 0o600 });
  }
  return secrets;
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}
