/**
 * GET /api/admin/cluster: the servers of the cluster, their age, the agents each holds and the
 * jobs each owns. A single server (cluster mode off) answers `{ cluster: false }`.
 */
import type { FastifyInstance } from 'fastify';
import { successEnvelope } from '../api/envelope.js';
import type { Services } from '../services.js';

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
}
