/** GET /api/admin/audit: the audit log, newest first, filtered and paged by id. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { zLong, zText } from '../api/input-types.js';
import type { Services } from '../services.js';
import type { AuditEntry } from '../store/audit-store.js';

const AuditQuery = z.object({
  from: zLong.optional(),
  to: zLong.optional(),
  actor_kind: z.enum(['app', 'user', 'admin', 'agent', 'system']).optional(),
  app_code: zText(128).optional(),
  username: zText(128).optional(),
  action: zText(256).optional(),
  outcome: z.enum(['ok', 'refused', 'error']).optional(),
  before_id: zLong.optional(),
  limit: zLong.pipe(z.number().min(1).max(1000)).default(100),
});

/** An audit entry as the admin API answers it. */
export type AuditEntryView = ReturnType<typeof entryView>;

function entryView(e: AuditEntry) {
  let detail: Record<string, unknown>;
  try {
    detail = JSON.parse(e.detail) as Record<string, unknown>;
  } catch {
    detail = {};
  }
  return {
    id: Number(e.id),
    at: Number(e.at),
    actor_kind: e.actor_kind,
    app_code: e.app_code,
    username: e.username,
    scope_type: e.scope_type,
    scope_id: e.scope_id,
    action: e.action,
    target: e.target,
    outcome: e.outcome,
    code: e.code,
    source_ip: e.source_ip,
    detail,
  };
}

export function registerAuditRoutes(admin: FastifyInstance, services: Services): void {
  admin.get('/audit', async (req) => {
    const parsed = AuditQuery.safeParse(req.query ?? {}, { reportInput: true });
    if (!parsed.success) throw zodFailure(parsed.error);
    const q = parsed.data;
    // Entries of calls just answered may still be queued: a query sees everything before it.
    await services.auditTrail.flush();
    const rows = await services.store.audit.list({
      ...(q.from !== undefined ? { fromTime: q.from } : {}),
      ...(q.to !== undefined ? { toTime: q.to } : {}),
      ...(q.actor_kind !== undefined ? { actorKind: q.actor_kind } : {}),
      ...(q.app_code !== undefined ? { appCode: q.app_code } : {}),
      ...(q.username !== undefined ? { username: q.username } : {}),
      ...(q.action !== undefined ? { action: q.action } : {}),
      ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
      ...(q.before_id !== undefined ? { beforeId: q.before_id } : {}),
      limit: q.limit,
    });
    const entries = rows.map(entryView);
    const last = entries.at(-1);
    return successEnvelope(
      { entries, next_before_id: entries.length === q.limit && last ? last.id : null },
      req.id,
    );
  });
}

/** The query schema of GET /api/admin/audit (described in /api/openapi.json). */
export { AuditQuery };
