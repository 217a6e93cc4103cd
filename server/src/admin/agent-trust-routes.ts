/**
 * Admin decisions about agents: revoke a host's agent (its token stops working at once and no
 * agent may register for the host until it is readmitted), readmit it, move a host to a new
 * identity (cloud id + ip) so that its agent may report it, and rotate the bootstrap token.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { IpEntry, zLong } from '../api/input-types.js';
import { rotateBootstrapToken } from '../agent-link/bootstrap-token.js';
import type { Services } from '../services.js';
import type { Host } from '../store/inventory-store.js';

const schemas = {
  hostId: z.object({ id: zLong }),
  identity: z.object({ bk_cloud_id: zLong.pipe(z.number().nonnegative()).default(0), ip: IpEntry.shape.ip }),
  bootstrap: z.object({ token: z.string().min(16).max(256).optional() }),
};

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {}, { reportInput: true });
  if (!r.success) throw zodFailure(r.error);
  return r.data;
}

function found(host: Host | undefined, id: number): Host {
  if (!host) throw new ApiError('RESOURCE_NOT_FOUND', { what: `host ${id}` });
  return host;
}

const trustView = (h: Host) => ({
  bk_host_id: Number(h.id),
  bk_cloud_id: Number(h.cloud_id),
  ip: h.ip,
  agent_revoked_at: h.agent_revoked_at === null ? null : Number(h.agent_revoked_at),
});

export function registerAgentTrustRoutes(admin: FastifyInstance, services: Services): void {
  const trust = services.store.agentTrust;
  const hostId = (req: FastifyRequest) => parse(schemas.hostId, req.params).id;

  admin.post('/agents/:id/revoke', async (req) => {
    const id = hostId(req);
    const host = found(await trust.revoke(id), id);
    services.hub.disconnect(id, 'agent revoked by an admin');
    return successEnvelope(trustView(host), req.id);
  });

  admin.post('/agents/:id/readmit', async (req) => {
    const id = hostId(req);
    return successEnvelope(trustView(found(await trust.readmit(id), id)), req.id);
  });

  admin.post('/hosts/:id/identity', async (req) => {
    const id = hostId(req);
    const body = parse(schemas.identity, req.body);
    const [taken] = await services.store.inventory.getHostsByCloudIps([
      { cloudId: body.bk_cloud_id, ip: body.ip },
    ]);
    if (taken && Number(taken.id) !== id)
      throw new ApiError('CONFLICT', { what: `host ${body.bk_cloud_id}:${body.ip}` });
    const host = found(await trust.changeIdentity(id, body.bk_cloud_id, body.ip), id);
    return successEnvelope(trustView(host), req.id);
  });

  admin.post('/agents/bootstrap-token', async (req) => {
    const body = parse(schemas.bootstrap, req.body);
    const token = await rotateBootstrapToken(services, body.token);
    req.log.info('agent bootstrap token rotated');
    return successEnvelope({ token }, req.id);
  });
}
