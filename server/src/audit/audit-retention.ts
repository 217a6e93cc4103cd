/**
 * Audit retention: audit entries and dangerous-rule hits (a security record as well) older than
 * the retention are removed, once at start and then every hour; both are kept exactly as long.
 */
import type { FastifyBaseLogger } from 'fastify';
import { DAY_MS, startHourlyPrune } from '../hourly-prune.js';
import type { AuditStore } from '../store/audit-store.js';
import type { RuleStore } from '../store/rule-store.js';

/** The records the audit retention prunes. */
export interface AuditRecords {
  audit: AuditStore;
  rules: RuleStore;
}

/** Removes what is past the retention now (0 keeps everything); returns how many of each went. */
export async function pruneAudit(
  store: AuditRecords,
  retentionDays: number,
  now = Date.now(),
  page?: number,
): Promise<{ entries: number; ruleHits: number }> {
  if (retentionDays <= 0) return { entries: 0, ruleHits: 0 };
  const before = now - retentionDays * DAY_MS;
  const entries = await store.audit.prune(before, page);
  return { entries, ruleHits: await store.rules.pruneHits(before, page) };
}

export function startAuditRetention(
  store: AuditRecords,
  retentionDays: number,
  log: FastifyBaseLogger,
): { stop(): void } {
  const entries = startHourlyPrune({
    what: 'audit entries',
    retentionDays,
    prune: (before) => store.audit.prune(before),
    log,
  });
  const ruleHits = startHourlyPrune({
    what: 'dangerous rule hits',
    retentionDays,
    prune: (before) => store.rules.pruneHits(before),
    log,
  });
  return {
    stop() {
      entries.stop();
      ruleHits.stop();
    },
  };
}
