/**
 * The bk_nonce values apps signed requests with, kept in the store so that a replay is refused
 * by every server sharing the database, not only by the one that saw the request first.
 */
import type { Kysely } from 'kysely';
import { onConnectionAround } from './connection-around.js';
import type { EngineCapabilities } from './engines.js';
import type { Database } from './schema.js';

export class NonceStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: EngineCapabilities,
  ) {}

  /**
   * Records that `appCode` used `nonce`, until `expiresAt` (ms). False when the app already
   * used it and that use has not expired: the request is a replay. One statement, so two
   * servers racing on the same nonce cannot both succeed.
   *
   * The write does not wait for the disk: it is visible to every server at once, and a power
   * cut could forget only the last nonces, whose requests then replay at most until they go
   * stale. Waiting would cost every signed request a sync (several ms) instead.
   */
  async remember(appCode: string, nonce: string, expiresAt: number, now: number): Promise<boolean> {
    return onConnectionAround(this.db, this.caps.relaxedCommit, async (conn) => {
      const r = await conn
        .insertInto('app_nonce')
        .values({ app_code: appCode, nonce, expires_at: expiresAt })
        .onConflict((oc) =>
          oc
            .columns(['app_code', 'nonce'])
            .doUpdateSet({ expires_at: expiresAt })
            .where('app_nonce.expires_at', '<', now),
        )
        .executeTakeFirst();
      return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
    });
  }

  /** Drops nonces whose requests are stale anyway. */
  async prune(now: number): Promise<number> {
    const r = await this.db.deleteFrom('app_nonce').where('expires_at', '<', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
