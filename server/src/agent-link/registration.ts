/**
 * Agent registration: an agent presents the bootstrap token once and receives its own token,
 * which it keeps and uses for every later connection. The server stores only a hash of it.
 */
import crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { AGENT_REGISTER_PATH, RegisterRequest } from '@jobfleet/protocol';
import type { RegisterResponse } from '@jobfleet/protocol';
import { hashSecret, verifySecret } from '../api/auth.js';
import { zodFailure } from '../api/endpoint.js';
import { successEnvelope } from '../api/envelope.js';
import { ApiError, ERROR_CATALOGUE } from '../api/error-catalogue.js';
import { attribute } from '../audit/write-audit.js';
import type { Services } from '../services.js';
import { GroupCommit } from '../group-commit.js';
import type { Host, InventoryStore } from '../store/inventory-store.js';
import { bootstrapTokenValid } from './bootstrap-token.js';
import { RegistrationBatch } from './registration-batch.js';

export function registerAgentRoutes(app: FastifyInstance, services: Services): void {
  const registrations = new RegistrationBatch(services.store.inventory);
  app.post(AGENT_REGISTER_PATH, async (req, reply) => {
    const parsed = RegisterRequest.safeParse(req.body, { reportInput: true });
    if (!parsed.success) throw zodFailure(parsed.error);
    const { bootstrapToken, host, bizId } = parsed.data;
    if (!(await bootstrapTokenValid(services, bootstrapToken))) {
      throw new ApiError('APP_AUTH_FAILED');
    }
    const [existing] = await services.store.inventory.getHostsByCloudIps([
      { cloudId: host.cloudId, ip: host.ip },
    ]);
    if (existing?.agent_revoked_at != null) {
      req.log.warn(
        { hostId: existing.id, ip: host.ip, cloudId: host.cloudId },
        'registration refused: agent revoked',
      );
      throw new ApiError('AGENT_REVOKED', { hostId: existing.id, cloudId: host.cloudId, ip: host.ip });
    }
    if (bizId !== undefined && !(await services.store.inventory.getBiz(bizId))) {
      throw new ApiError('APP_NOT_EXIST', { scopeType: 'biz', scopeId: bizId });
    }
    const agentId = crypto.randomUUID();
    const secret = crypto.randomBytes(24).toString('base64url');
    const row = await registrations.register(
      {
        cloudId: host.cloudId,
        ip: host.ip,
        ipv6: host.ipv6,
        hostname: host.hostname,
        osType: host.osType,
        agentId,
        agentTokenHash: hashSecret(secret),
        bizId: bizId ?? null,
      },
      // The entry write-audit would make, stored in the registration's own commit.
      (stored) => ({
        at: Date.now(),
        actorKind: 'agent',
        action: 'agent register',
        target: `host:${stored.id}`,
        ...(stored.agent_revoked_at == null
          ? { outcome: 'ok', code: 0 }
          : { outcome: 'refused', code: ERROR_CATALOGUE.AGENT_REVOKED.code }),
        sourceIp: req.ip,
        detail: { request_id: req.id },
      }),
    );
    attribute(req, { skip: true });
    // Revoked while this registration waited for its commit: the host kept no new token.
    if (row.agent_revoked_at != null)
      throw new ApiError('AGENT_REVOKED', { hostId: row.id, cloudId: host.cloudId, ip: host.ip });
    req.log.info({ hostId: row.id, ip: host.ip, cloudId: host.cloudId, agentId }, 'agent registered');
    const data: RegisterResponse = { agentId, token: `${agentId}.${secret}`, hostId: row.id };
    return reply.send(successEnvelope(data, req.id));
  });
}

/** Agent tokens looked up in one read, at most: a bounded statement, quick to answer. */
const MAX_TOKEN_READ = 500;

/**
 * Checks agent tokens (`<agentId>.<secret>`). The hosts of handshakes that arrive in one turn
 * of the event loop, or while a read is out, are read together (GroupCommit's batching, for a
 * read): when a fleet comes back after a restart, thousands of handshakes a second each waited
 * for a read of its own, and on PostgreSQL past 512 of them in progress the rest were answered
 * 503 and backed off.
 */
export class AgentTokens {
  private readonly reads: GroupCommit<string, Host | undefined>;

  constructor(inventory: InventoryStore) {
    this.reads = new GroupCommit(async (agentIds) => {
      const hosts = await inventory.findHostsByAgentIds(agentIds);
      const byAgent = new Map(hosts.map((h) => [h.agent_id, h]));
      return agentIds.map((id) => byAgent.get(id));
    }, MAX_TOKEN_READ);
  }

  /** The agent's host, or undefined for a token that is malformed, unknown, revoked or wrong. */
  async verify(token: string | undefined): Promise<Host | undefined> {
    if (!token) return undefined;
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const host = await this.reads.add(token.slice(0, dot));
    // A revoked host's token is cleared; one written by a registration racing the revoke is
    // refused all the same.
    if (!host?.agent_token_hash || host.agent_revoked_at != null) return undefined;
    return verifySecret(token.slice(dot + 1), host.agent_token_hash) ? host : undefined;
  }
}
