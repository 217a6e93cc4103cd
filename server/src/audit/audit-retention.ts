/** Removes audit entries older than the retention window: once at start, then every hour. */
import type { FastifyBaseLogger } from 'fastify';
import { DAY_MS, startHourlyPrune } from '../hourly-prune.js';
import type { AuditStore } from '../store/audit-store.js';

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
  return startHourlyPrune({
    what: 'audit entries',
    retentionDays,
    prune: (before) => store.prune(before),
    log,
  });
}
