/** The running pieces of one server process, handed to routes and endpoints. */
import type { FastifyBaseLogger } from 'fastify';
import type { AgentHub } from './agent-link/agent-hub.js';
import type { Authenticator } from './api/auth.js';
import type { Engine } from './engine/engine.js';
import type { ServerConfig } from './config.js';
import type { Store } from './store/store.js';
import type { SecretBox } from './secret-box.js';
import type { ServerSecrets } from './secrets.js';
import type { ApiRateLimits } from './api/rate-limits.js';
import type { AuditTrail } from './audit/audit-trail.js';
import type { OperatorAuth } from './operators/operator-auth.js';
import type { EventStreams } from './streams/event-streams.js';
import type { Metrics } from './metrics/metrics.js';
import type { OutputGroups } from './outputs/output-groups.js';
import type { ClusterNode } from './cluster/cluster-node.js';

export interface Services {
  config: ServerConfig;
  secrets: ServerSecrets;
  /** Seals and opens every secret the store keeps. */
  secretBox: SecretBox;
  store: Store;
  auth: Authenticator;
  hub: AgentHub;
  engine: Engine;
  log: FastifyBaseLogger;
  /** Per-address and per-app request rates of the BK-JOB API. */
  limits: ApiRateLimits;
  /** Batched writer of audit entries. */
  auditTrail: AuditTrail;
  /** People: sessions, personal tokens, sign-in limits. */
  operators: OperatorAuth;
  /** Live event streams (SSE) being served. */
  streams: EventStreams;
  metrics: Metrics;
  /** Hosts grouped by identical output, fingerprinted as output arrives. */
  outputs: OutputGroups;
  /**
   * A random id made at each start, recorded as the holder of an upload's claim: a claim left by
   * an earlier run is told from one this run holds. In cluster mode, the cluster id (`cluster.id`).
   */
  processId: string;
  /** This server as a member of a cluster; undefined for a single server (SQLite, or cluster off). */
  cluster?: ClusterNode | undefined;
}
