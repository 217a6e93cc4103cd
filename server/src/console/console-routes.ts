/**
 * Small reads the web console needs beyond the v3 API, under /api/console. They answer people
 * (a session or a personal token) with the BK-JOB envelope like every other route under /api.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parse } from '../admin/admin-routes.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { zLong } from '../api/input-types.js';
import type { ScopeLookup } from '../api/scope.js';
import { serverTimeZone } from '../crons/cron-schedule.js';
import { principalRole } from '../operators/api-access.js';
import type { Services } from '../services.js';
import { registerStepLogExport } from './step-log-export.js';

export const CONSOLE_SCHEMAS = {
  locate: z.object({ kind: z.enum(['job', 'plan']), id: zLong }),
  timeZone: z.object({ bk_scope_type: z.enum(['biz', 'biz_set']), bk_scope_id: zLong }),
} as const;

export function registerConsoleRoutes(app: FastifyInstance, services: Services): void {
  const inv = services.store.inventory;

  app.register(
    async (r) => {
      /** The scopes the signed-in person can open, with the role held in each (for the scope switcher). */
      r.get('/scopes', async (req) => {
        const p = await services.operators.requirePrincipal(req);
        const [bizList, sets] = await Promise.all([inv.listBiz(), inv.listBizSets()]);
        const all = [
          ...bizList.map((b) => ({ scope_type: 'biz' as const, scope_id: b.id, name: b.name })),
          ...sets.map((s) => ({ scope_type: 'biz_set' as const, scope_id: s.id, name: s.name })),
        ];
        // Roles are looked up in the lists just read: a person's set grants would otherwise read
        // their set again for each business (thousands of businesses, seconds).
        const byId = new Map(bizList.map((b) => [b.id, b]));
        const setsById = new Map(sets.map((s) => [s.id, s]));
        const lookup: ScopeLookup = {
          getBiz: async (id) => byId.get(id),
          getBizSet: async (id) => setsById.get(id),
        };
        const scopes = [];
        for (const s of all) {
          const role = await principalRole(lookup, p, { type: s.scope_type, id: s.scope_id });
          if (role) scopes.push({ ...s, role });
        }
        return successEnvelope({ scopes }, req.id);
      });

      /**
       * The scope of a job or plan, for BK-JOB's deep links (`/api_execute/:id`, `/api_plan/:id`),
       * which carry no scope. One the person may not read is as unknown as a missing one.
       */
      r.get('/locate', async (req) => {
        const p = await services.operators.requirePrincipal(req);
        const q = parse(CONSOLE_SCHEMAS.locate, req.query);
        const row =
          q.kind === 'job'
            ? await services.store.executions.getJob(q.id)
            : await services.store.plans.getPlan(q.id);
        const scope = row && {
          scope_type: row.scope_type === 'biz_set' ? ('biz_set' as const) : ('biz' as const),
          scope_id: Number(row.scope_id),
        };
        if (!scope || !(await principalRole(inv, p, { type: scope.scope_type, id: scope.scope_id })))
          throw new ApiError('RESOURCE_NOT_FOUND', {
            what: `${q.kind === 'job' ? 'job instance' : 'job plan'} ${q.id}`,
          });
        return successEnvelope(scope, req.id);
      });

      /**
       * The time zone a scope's crons run in when they name none (the scope's, else the
       * server's), so a cron form can show it and leave the choice to the server.
       */
      r.get('/time-zone', async (req) => {
        const p = await services.operators.requirePrincipal(req);
        const q = parse(CONSOLE_SCHEMAS.timeZone, req.query);
        const scope = { type: q.bk_scope_type, id: q.bk_scope_id };
        if (!(await principalRole(inv, p, scope)))
          throw new ApiError('RESOURCE_NOT_FOUND', { what: `${scope.type} ${scope.id}` });
        const own = await inv.scopeTimeZone(scope.type, scope.id);
        return successEnvelope({ time_zone: own ?? serverTimeZone(), scope_time_zone: own }, req.id);
      });
    },
    { prefix: '/api/console' },
  );
  registerStepLogExport(app, services);
}
