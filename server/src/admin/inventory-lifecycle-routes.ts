/**
 * Admin changes to the inventory that later jobs see: removing a host that left the fleet (a
 * cron's plan that still names it runs on the others and shows it at per-host status 2), and
 * the IANA time zone of a business or business set (what its crons default to, before the
 * server's).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { zLong } from '../api/input-types.js';
import { isTimeZone } from '../crons/cron-schedule.js';
import type { Services } from '../services.js';

const schemas = {
  id: z.object({ id: zLong }),
  scope: z.object({ type: z.enum(['biz', 'biz_set']), id: zLong }),
  timeZone: z.object({
    time_zone: z
      .string()
      .max(64)
      .refine(isTimeZone, 'is not an IANA time zone (e.g. Asia/Shanghai)')
      .nullable(),
  }),
};

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {}, { reportInput: true });
  if (!r.success) throw zodFailure(r.error);
  return r.data;
}

export function registerInventoryLifecycleRoutes(admin: FastifyInstance, services: Services): void {
  const inv = services.store.inventory;

  admin.delete('/hosts/:id', async (req) => {
    const { id } = parse(schemas.id, req.params);
    if (!(await inv.removeHost(id))) throw new ApiError('RESOURCE_NOT_FOUND', { what: `host ${id}` });
    // Its agent's token named this host: it must register again (as a new host) to come back.
    services.hub.disconnect(id, 'host removed by an admin');
    return successEnvelope({ bk_host_id: id }, req.id);
  });

  admin.get('/scopes/:type/:id/time_zone', async (req) => {
    const { type, id } = parse(schemas.scope, req.params);
    return successEnvelope({ time_zone: await inv.scopeTimeZone(type, id) }, req.id);
  });

  admin.post('/scopes/:type/:id/time_zone', async (req) => {
    const { type, id } = parse(schemas.scope, req.params);
    const { time_zone } = parse(schemas.timeZone, req.body);
    if (!(await inv.setScopeTimeZone(type, id, time_zone)))
      throw new ApiError('RESOURCE_NOT_FOUND', { what: `${type} ${id}` });
    return successEnvelope({ bk_scope_type: type, bk_scope_id: id, time_zone }, req.id);
  });
}

/** The schemas these routes validate with (described in /api/openapi.json). */
export { schemas as INVENTORY_LIFECYCLE_SCHEMAS };
