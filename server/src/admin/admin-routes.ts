/**
 * The admin API (/api/admin/...): manages the inventory and apps. Authenticated by the admin
 * token (Authorization: Bearer <token>). Replies use the same envelope as the BK-JOB API so
 * that one client can read both.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { PUBLIC_SCRIPT_PERMISSION } from '../api/endpoints/script-library.js';
import { IpEntry, zLong, zText } from '../api/input-types.js';
import { DynamicGroupFilter } from '../inventory/dynamic-group.js';
import { registerCronAdminRoutes } from './cron-admin-routes.js';
import { adminActor, requireAdmin } from '../operators/admin-access.js';
import { sameSecret } from '../secrets.js';
import type { Services } from '../services.js';
import { appSecretPurpose } from '../store/app-store.js';
import type { Host } from '../store/inventory-store.js';
import { registerAuditRoutes } from './audit-routes.js';
import { registerAgentTrustRoutes } from './agent-trust-routes.js';
import { registerClusterRoutes } from '../cluster/cluster-routes.js';
import { registerInventoryLifecycleRoutes } from './inventory-lifecycle-routes.js';

const ScopeGrant = z.object({ type: z.enum(['biz', 'biz_set']), id: zLong });

const schemas = {
  biz: z.object({ id: zLong.pipe(z.number().min(1).max(7_999_999)), name: zText(256).min(1) }),
  bizSet: z.object({
    id: zLong.pipe(z.number().min(8_000_000).max(9_999_999)),
    name: zText(256).min(1),
    biz_ids: z.array(zLong).refine((ids) => new Set(ids).size === ids.length, 'lists a business twice'),
  }),
  host: z.object({
    bk_cloud_id: zLong.pipe(z.number().nonnegative()).default(0),
    ip: IpEntry.shape.ip,
    hostname: zText(255).default(''),
    os_type: z.enum(['linux', 'windows']).default('linux'),
    bk_biz_id: zLong.optional(),
  }),
  hostBiz: z.object({ bk_biz_id: zLong.nullable() }),
  set: z.object({ bk_biz_id: zLong, name: zText(256).min(1) }),
  module: z.object({ bk_biz_id: zLong, set_id: zLong, name: zText(256).min(1) }),
  moduleHosts: z.object({ host_ids: z.array(zLong).min(1) }),
  dynamicGroup: z.object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .optional(),
    bk_biz_id: zLong,
    name: zText(256).min(1),
    filter: DynamicGroupFilter,
  }),
  account: z.object({
    bk_biz_id: zLong,
    alias: zText(255).min(1),
    os_user: z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/, 'is not a valid OS user name'),
    os_type: z.enum(['linux', 'windows']).default('linux'),
  }),
  app: z.object({
    app_code: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      // What the admin token acts as (a cron it saves belongs to "admin"): an app of that name
      // would lend the admin token its scopes, or take its crons.
      .refine((c) => c !== 'admin', "admin is the admin token's own code"),
    app_secret: z.string().min(8),
    scopes: z.union([z.literal('all'), z.array(ScopeGrant)]),
    /** Platform permissions beyond scopes; public_script_manage lets an app change public scripts. */
    permissions: z.array(z.literal(PUBLIC_SCRIPT_PERMISSION)).default([]),
  }),
  hostsQuery: z.object({
    bk_biz_id: zLong.optional(),
    /** Absent: every host in one reply, which scripts written against the unpaged listing expect. */
    limit: zLong.pipe(z.number().min(1).max(5000)).optional(),
    after_id: zLong.pipe(z.number().min(0)).optional(),
  }),
} as const;

export function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {}, { reportInput: true });
  if (!r.success) throw zodFailure(r.error);
  return r.data;
}

function idParam(req: FastifyRequest): number {
  return parse(z.object({ id: zLong }), req.params).id;
}

export function hostView(h: Host) {
  return {
    bk_host_id: h.id,
    bk_cloud_id: h.cloud_id,
    ip: h.ip,
    ipv6: h.ipv6,
    hostname: h.hostname,
    os_type: h.os_type,
    bk_agent_id: h.agent_id ?? '',
    agent_status: h.agent_status,
    agent_version: h.agent_version,
    last_heartbeat: h.last_heartbeat,
    bk_biz_id: h.biz_id,
    agent_revoked_at: h.agent_revoked_at === null ? null : Number(h.agent_revoked_at),
  };
}

/** Unique-constraint violations from either engine become a clear 'already exists'. */
export async function unique<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (
      e.code === '23505' ||
      e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
      e.code === 'SQLITE_CONSTRAINT_UNIQUE'
    ) {
      throw new ApiError('CONFLICT', { what });
    }
    if (e.code === '23503' || e.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
      throw new ApiError('RESOURCE_NOT_FOUND', {
        what: `a business, set or host referenced by this ${what}`,
      });
    }
    throw err;
  }
}

/** Admin requests carry the admin token: Authorization: Bearer <token>. */
export function assertAdminToken(req: FastifyRequest, services: Services): void {
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  if (!sameSecret(token, services.secrets.adminToken)) throw new ApiError('ADMIN_AUTH_FAILED');
}

export function registerAdminRoutes(app: FastifyInstance, services: Services): void {
  const inv = services.store.inventory;
  const ok = (req: FastifyRequest, data: unknown) => successEnvelope(data, req.id);

  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (req) => requireAdmin(services, req));

      admin.get('/biz', async (req) =>
        ok(req, { biz: await inv.listBiz(), biz_sets: await inv.listBizSets() }),
      );
      admin.post('/biz', async (req) => {
        const b = parse(schemas.biz, req.body);
        await unique(`business ${b.id}`, () => inv.createBiz(b.id, b.name));
        return ok(req, { bk_biz_id: b.id, name: b.name });
      });
      admin.post('/biz_set', async (req) => {
        const b = parse(schemas.bizSet, req.body);
        await unique(`business set ${b.id}`, () => inv.createBizSet(b.id, b.name, b.biz_ids));
        return ok(req, { bk_biz_set_id: b.id, name: b.name, biz_ids: b.biz_ids });
      });

      admin.get('/hosts', async (req) => {
        const q = parse(schemas.hostsQuery, req.query);
        const read = await inv.listHosts({
          ...(q.bk_biz_id !== undefined ? { bizId: q.bk_biz_id } : {}),
          ...(q.after_id !== undefined ? { afterId: q.after_id } : {}),
          // One host past the page tells whether another follows: a page that ends on the last
          // host then says so, rather than sending the caller for an empty one.
          ...(q.limit !== undefined ? { limit: q.limit + 1 } : {}),
        });
        const hosts = q.limit === undefined ? read : read.slice(0, q.limit);
        const modules = await inv.moduleIdsOfHosts(hosts.map((h) => h.id));
        const views = hosts.map((h) => ({ ...hostView(h), module_ids: modules.get(h.id) ?? [] }));
        if (q.limit === undefined) return ok(req, { hosts: views });
        const last = hosts.at(-1);
        return ok(req, { hosts: views, next_after_id: read.length > q.limit && last ? last.id : null });
      });
      admin.post('/hosts', async (req) => {
        const h = parse(schemas.host, req.body);
        const row = await unique(`host ${h.bk_cloud_id}:${h.ip}`, () =>
          inv.addHost({
            cloudId: h.bk_cloud_id,
            ip: h.ip,
            hostname: h.hostname,
            osType: h.os_type,
            ...(h.bk_biz_id ? { bizId: h.bk_biz_id } : {}),
          }),
        );
        return ok(req, hostView(row));
      });
      admin.post('/hosts/:id/biz', async (req) => {
        const id = idParam(req);
        const b = parse(schemas.hostBiz, req.body);
        const done = await unique('host assignment', () => inv.assignHostToBiz(id, b.bk_biz_id));
        if (!done) throw new ApiError('RESOURCE_NOT_FOUND', { what: `host ${id}` });
        return ok(req, { bk_host_id: id, bk_biz_id: b.bk_biz_id });
      });

      admin.get('/topology', async (req) => {
        const q = parse(z.object({ bk_biz_id: zLong }), req.query);
        return ok(req, await inv.listTopology(q.bk_biz_id));
      });
      admin.post('/topology/sets', async (req) => {
        const s = parse(schemas.set, req.body);
        const id = await unique(`set ${s.name}`, () => inv.createSet(s.bk_biz_id, s.name));
        return ok(req, { id, bk_biz_id: s.bk_biz_id, name: s.name });
      });
      admin.post('/topology/modules', async (req) => {
        const m = parse(schemas.module, req.body);
        const set = await inv.getSet(m.set_id);
        if (!set || set.biz_id !== m.bk_biz_id)
          throw new ApiError('RESOURCE_NOT_FOUND', { what: `set ${m.set_id} in business ${m.bk_biz_id}` });
        const id = await unique(`module ${m.name}`, () => inv.createModule(m.bk_biz_id, m.set_id, m.name));
        return ok(req, { id, bk_biz_id: m.bk_biz_id, set_id: m.set_id, name: m.name });
      });
      admin.post('/topology/modules/:id/hosts', async (req) => {
        const moduleId = idParam(req);
        const body = parse(schemas.moduleHosts, req.body);
        const module = await inv.getModule(moduleId);
        if (!module) throw new ApiError('RESOURCE_NOT_FOUND', { what: `module ${moduleId}` });
        const hosts = await inv.getHostsByIds(body.host_ids);
        const found = new Set(hosts.map((h) => h.id));
        const missing = body.host_ids.filter((id) => !found.has(id));
        if (missing.length > 0)
          throw new ApiError('RESOURCE_NOT_FOUND', { what: `hosts ${missing.join(',')}` });
        const foreign = hosts.filter((h) => h.biz_id !== module.biz_id);
        if (foreign.length > 0) {
          throw new ApiError('ILLEGAL_PARAM', {
            reason: `hosts ${foreign.map((h) => h.id).join(',')} are not in business ${module.biz_id}`,
          });
        }
        await inv.addHostsToModule(
          hosts.map((h) => h.id),
          moduleId,
        );
        return ok(req, { module_id: moduleId, host_ids: body.host_ids });
      });

      admin.get('/dynamic_groups', async (req) => {
        const q = parse(z.object({ bk_biz_id: zLong }), req.query);
        const rows = await inv.listDynamicGroups(q.bk_biz_id);
        return ok(req, {
          dynamic_groups: rows.map((g) => ({
            id: g.id,
            bk_biz_id: g.biz_id,
            name: g.name,
            filter: JSON.parse(g.filter) as unknown,
          })),
        });
      });
      admin.post('/dynamic_groups', async (req) => {
        const g = parse(schemas.dynamicGroup, req.body);
        const id = g.id ?? `dg-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
        await unique(`dynamic group ${id}`, () =>
          inv.createDynamicGroup({ id, bizId: g.bk_biz_id, name: g.name, filter: JSON.stringify(g.filter) }),
        );
        return ok(req, { id, bk_biz_id: g.bk_biz_id, name: g.name, filter: g.filter });
      });

      admin.get('/accounts', async (req) => {
        const q = parse(z.object({ bk_biz_id: zLong }), req.query);
        const { items } = await services.store.accounts.list([q.bk_biz_id], {
          start: 0,
          length: Number.MAX_SAFE_INTEGER,
        });
        return ok(req, { accounts: items });
      });
      admin.post('/accounts', async (req) => {
        const a = parse(schemas.account, req.body);
        const row = await unique(`account alias ${a.alias}`, () =>
          inv.createAccount({
            bizId: a.bk_biz_id,
            alias: a.alias,
            osUser: a.os_user,
            osType: a.os_type,
            creator: adminActor(req).name || 'admin',
          }),
        );
        return ok(req, await services.store.accounts.get(row.id));
      });

      admin.get('/apps', async (req) => {
        const apps = await services.store.apps.listApps();
        // false: an app from an earlier version; it cannot sign requests until its secret is set again.
        return ok(req, {
          apps: apps.map((a) => ({
            app_code: a.appCode,
            scopes: a.scopes,
            signature_auth: a.secretSealed !== '',
            permissions: a.permissions ?? [],
          })),
        });
      });
      admin.post('/apps', async (req) => {
        const a = parse(schemas.app, req.body);
        // Its secret and scopes are set from the configuration at every start: a change here
        // would be undone by the next one.
        if (a.app_code === services.config.appCode)
          throw new ApiError('BAD_REQUEST', {
            reason: `${a.app_code} is this server's configured app: set its secret with JOBFLEET_APP_SECRET (or in secrets.json) and restart`,
          });
        await services.store.apps.upsertApp({
          appCode: a.app_code,
          secretSealed: services.secretBox.seal(a.app_secret, appSecretPurpose(a.app_code)),
          scopes: a.scopes,
          permissions: a.permissions,
        });
        services.auth.forget(a.app_code);
        return ok(req, { app_code: a.app_code, scopes: a.scopes, permissions: a.permissions });
      });

      registerAuditRoutes(admin, services);
      registerAgentTrustRoutes(admin, services);
      registerCronAdminRoutes(admin, services);
      registerClusterRoutes(admin, services);
      registerInventoryLifecycleRoutes(admin, services);
    },
    { prefix: '/api/admin' },
  );
}

/** The schemas the admin routes validate with (described in /api/openapi.json). */
export { schemas as ADMIN_SCHEMAS };
