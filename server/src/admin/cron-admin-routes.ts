/**
 * Crons of every scope for operators: GET /api/admin/crons, POST /api/admin/crons/:id/enable
 * and /disable (`jobfleet admin cron list|enable|disable`). Changes are made as user "admin".
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { nextTimes } from '../crons/cron-schedule.js';
import { setCronEnabled } from '../crons/cron-status.js';
import { adminActor } from '../operators/admin-access.js';
import { scheduleOf } from '../crons/cron-values.js';
import type { Services } from '../services.js';

const IdParam = z.object({ id: z.coerce.number().int().min(1) });

export function registerCronAdminRoutes(admin: FastifyInstance, services: Services): void {
  const crons = services.store.crons;
  const ok = (req: FastifyRequest, data: unknown) => successEnvelope(data, req.id);

  admin.get('/crons', async (req) => {
    const rows = await crons.all();
    return ok(req, {
      crons: rows.map((c) => ({
        id: c.id,
        bk_scope_type: c.scope_type,
        bk_scope_id: c.scope_id,
        name: c.name,
        job_plan_id: c.job_plan_id,
        expression: c.expression,
        execute_time: c.execute_time,
        execute_time_zone: c.time_zone,
        status: c.enabled ? 1 : 0,
        next_run_time: c.enabled
          ? (nextTimes(scheduleOf(c), Date.now(), 1).map((t) => Math.floor(t / 1000))[0] ?? null)
          : null,
        last_modify_user: c.last_modify_user,
      })),
    });
  });
  for (const action of ['enable', 'disable'] as const) {
    admin.post(`/crons/:id/${action}`, async (req) => {
      const parsed = IdParam.safeParse(req.params);
      if (!parsed.success)
        throw new ApiError('BAD_REQUEST', { reason: 'the cron id is not a positive integer' });
      const row = await crons.get(parsed.data.id);
      if (!row) throw new ApiError('CRON_JOB_NOT_EXIST', { id: parsed.data.id });
      await setCronEnabled(services.store, row, action === 'enable', adminActor(req).name || 'admin');
      return ok(req, { id: row.id, status: action === 'enable' ? 1 : 0 });
    });
  }
}
