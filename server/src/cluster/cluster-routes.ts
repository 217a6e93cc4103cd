/**
 * GET /api/admin/cluster: the servers of the cluster, their age, the agents each holds and the
 * jobs each owns. A single server (cluster mode off) answers `{ cluster: false }`.
 *
 * POST /api/admin/cluster/drain `{ server: id or URL }`: asks a live server (any, this one
 * included) to drain: it answers /healthz 503, hands its jobs to the others, closes its agents'
 * connections (they move to other servers) and exits with status 0. Sent to any server; the
 * answer comes once the drained server has left (state 'dead'), or after 30 s with its state then.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import type { Services } from '../services.js';

export const DrainRequest = z.object({ server: z.string().min(1).max(512) });
const DRAIN_WAIT_MS = 30_000;

export function registerClusterRoutes(admin: FastifyInstance, services: Services): void {
  admin.get('/cluster', async (req) => {
    const cluster = services.cluster;
    if (!cluster) return successEnvelope({ cluster: false, servers: [] }, req.id);
    const { now, servers } = await cluster.store.view();
    return successEnvelope(
      {
        cluster: true,
        self: cluster.id,
        servers: servers.map((s) => ({
          id: s.id,
          url: s.url,
          state: s.state,
          age_seconds: Math.round((now - Number(s.started_at)) / 1000),
          heartbeat_age_ms: now - Number(s.heartbeat_at),
          agents_held: s.agents,
          jobs_owned: s.jobs,
          started_at: Number(s.started_at),
          stopped_at: s.stopped_at === null ? null : Number(s.stopped_at),
        })),
      },
      req.id,
    );
  });

  admin.post('/cluster/drain', async (req) => {
    const parsed = DrainRequest.safeParse(req.body ?? {}, { reportInput: true });
    if (!parsed.success) throw zodFailure(parsed.error);
    const cluster = services.cluster;
    if (!cluster) throw new ApiError('BAD_REQUEST', { reason: 'this server is not in cluster mode' });
    const target = await cluster.store.requestDrain(parsed.data.server);
    if ('named' in target) {
      if (target.named.length === 0)
        throw new ApiError('RESOURCE_NOT_FOUND', { what: `live server "${parsed.data.server}"` });
      throw new ApiError('BAD_REQUEST', {
        reason: `"${parsed.data.server}" is the URL of ${target.named.length} live servers (${target.named.join(', ')}): give the id of the one to drain`,
      });
    }
    cluster.notify(`d:${target.id}`);
    const deadline = Date.now() + DRAIN_WAIT_MS;
    let state = await cluster.store.stateOf(target.id);
    while (state === 'alive' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      state = await cluster.store.stateOf(target.id);
    }
    return successEnvelope({ id: target.id, url: target.url, state }, req.id);
  });
}
