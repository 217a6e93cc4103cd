/**
 * Submissions that carry the same `client_request_id` from one app run one at a time, so a
 * client's retry sent while its first request is still being handled finds the job that one
 * created (priorSubmission) instead of creating a second. In a cluster the retry may reach
 * another server: there a claim row in the shared database holds it back as well.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { ClusterStore } from '../cluster/cluster-store.js';

/**
 * A claim older than this is taken over: its server died during the submission. A submission
 * takes well under a second; one outlasting this could be joined by a concurrent retry.
 */
const CLAIM_STALE_MS = 30_000;
/** How often a retry held back by another server's claim looks again. */
const CLAIM_POLL_MS = 20;

export class ClientRequestLock {
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    private readonly cluster: () =>
      Pick<ClusterStore, 'claimClientRequest' | 'releaseClientRequest'> | undefined,
    private readonly log: FastifyBaseLogger,
  ) {}

  async run<T>(appCode: string, clientRequestId: unknown, fn: () => Promise<T>): Promise<T> {
    if (typeof clientRequestId !== 'string' || clientRequestId === '') return fn();
    const key = `${appCode}\u0000${clientRequestId}`;
    const before = this.tails.get(key) ?? Promise.resolve();
    let release = () => undefined as void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      const store = this.cluster();
      if (!store) return await fn();
      const holder = randomUUID();
      while (!(await store.claimClientRequest(appCode, clientRequestId, holder, CLAIM_STALE_MS)))
        await sleep(CLAIM_POLL_MS);
      try {
        return await fn();
      } finally {
        // Left behind, the claim holds retries back until it is stale; nothing is lost.
        await store
          .releaseClientRequest(appCode, clientRequestId, holder)
          .catch((err: unknown) =>
            this.log.warn({ err, appCode }, 'a client request claim was not released'),
          );
      }
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
