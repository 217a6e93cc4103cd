/** Removes audit entries older than the retention window: once at start, then every hour. */
import type { FastifyBaseLogger } from 'fastify';
import type { AuditStore } from '../store/audit-store.js';

const EVERY_MS = 3600_000;
const DAY_MS = 24 * 3600_000;

export async function pruneAudit(
  store: AuditStore,
  retentionDays: number,
  now = Date.now(),
): Promise<number> {
  if (retentionDays <= 0) return 0;
  return store.prune(now - retentionDays * DAY_MS);
}

export function startAuditRetention(
  store: AuditStore,
  retentionDays: number,
  log: FastifyBaseLogger,
): { stop(): void } {
  if (retentionDays <= 0) return { stop: () => undefined };
  const run = () =>
    pruneAudit(store, retentionDays)
      .then((n) => {
        if (n > 0) log.info({ removed: n, retentionDays }, 'audit entries past retention removed');
      })
      .catch((err: unknown) => log.error({ err }, 'audit retention failed'));
  void run();
  const timer = setInterval(() => void run(), EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
