/**
 * The agent's identity on disk: the token a server issued at registration, kept in the state
 * directory (mode 0600) so that restarts reuse it instead of registering again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostFacts, RegisterResponse } from '@jobfleet/protocol';
import { parseRegisterResponse } from '@jobfleet/protocol/agent';

/** What registration answered, kept for the next start. */
export type Identity = RegisterResponse;

export function loadIdentity(stateDir: string): Identity | undefined {
  const file = path.join(stateDir, 'identity.json');
  if (!fs.existsSync(file)) return undefined;
  // Unreadable (a power cut right after it was written): the agent registers again.
  try {
    return parseRegisterResponse(JSON.parse(fs.readFileSync(file, 'utf8')) as unknown);
  } catch {
    return undefined;
  }
}

export function saveIdentity(stateDir: string, id: Identity): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, 'identity.json');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(id), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

export function clearIdentity(stateDir: string): void {
  fs.rmSync(path.join(stateDir, 'identity.json'), { force: true });
}

/** The first non-internal address of the family (IPv6: global, not link-local), if any. */
export function defaultIp(family: 'IPv4' | 'IPv6' = 'IPv4'): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === family && !a.internal && (family === 'IPv4' || a.scopeid === 0)) return a.address;
    }
  }
  return undefined;
}

export function localOsType(): HostFacts['osType'] {
  switch (process.platform) {
    case 'linux':
      return 'linux';
    case 'win32':
      return 'windows';
    case 'darwin':
      return 'darwin';
    default:
      return 'other';
  }
}

/** Several agents on one machine need several state directories; the identity names it. */
export function defaultStateDir(cloudId: number, ip: string): string {
  return path.join(os.homedir(), '.jobfleet', 'agent', `${cloudId}-${ip}`);
}
