/**
 * Tokens for file offers. A token is derived from the server key and the offer id, so every
 * server of a cluster, and the same server after a restart, gives the same token for the same
 * offer: a download that was running when a server died keeps working. The key is the server's
 * alone (agents never hold it; they all hold the bootstrap token, which keyed these tokens once
 * and let any agent host mint a token for any step's files). A server key rotation changes the
 * tokens: a download running across it is refused once and its target fails.
 */
import crypto from 'node:crypto';
import { parseServerKey } from '../secret-box.js';

const tokenKeys = new Map<string, Buffer>();

export function offerToken(serverKey: string, serveId: string): string {
  let key = tokenKeys.get(serverKey);
  if (!key) {
    key = Buffer.from(
      crypto.hkdfSync('sha256', parseServerKey(serverKey), '', 'jobfleet file offer tokens', 32),
    );
    tokenKeys.set(serverKey, key);
  }
  return crypto.createHmac('sha256', key).update(`file-offer:${serveId}`).digest('base64url');
}

export function sourceServeId(stepInstanceId: number, executeCount: number, hostId: number): string {
  return `${stepInstanceId}-${executeCount}-src-${hostId}`;
}

export function seedServeId(stepInstanceId: number, executeCount: number, hostId: number): string {
  return `${stepInstanceId}-${executeCount}-seed-${hostId}`;
}

export function serverServeId(stepInstanceId: number, executeCount: number): string {
  return `${stepInstanceId}-${executeCount}-server`;
}

export function parseServeId(
  id: string,
):
  | { stepInstanceId: number; executeCount: number; kind: 'src' | 'seed' | 'server'; hostId: number }
  | undefined {
  const m = /^(\d+)-(\d+)-(src|seed|server)(?:-(\d+))?$/.exec(id);
  if (!m) return undefined;
  return {
    stepInstanceId: Number(m[1]),
    executeCount: Number(m[2]),
    kind: m[3] as 'src',
    hostId: Number(m[4] ?? 0),
  };
}
