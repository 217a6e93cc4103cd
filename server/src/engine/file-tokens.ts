/**
 * Tokens for file offers. A token is derived from the server's agent bootstrap secret and the
 * offer id, so every server of a cluster, and the same server after a restart, gives the same
 * token for the same offer: a download that was running when a server died keeps working.
 */
import crypto from 'node:crypto';

export function offerToken(secret: string, serveId: string): string {
  return crypto.createHmac('sha256', secret).update(`file-offer:${serveId}`).digest('base64url');
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
