/**
 * What an admin decides about agents: revoking a host's agent, readmitting it, moving a host to
 * a new identity, and cluster-wide settings such as the current bootstrap token's hash.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import type { Host } from './inventory-store.js';

export class AgentTrustStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Drops the host's agent token and bars registration for it; undefined when there is no such host. */
  async revoke(hostId: number, now = Date.now()): Promise<Host | undefined> {
    return this.db
      .updateTable('host')
      .set({ agent_token_hash: null, agent_revoked_at: now })
      .where('id', '=', hostId)
      .returningAll()
      .executeTakeFirst();
  }

  async readmit(hostId: number): Promise<Host | undefined> {
    return this.db
      .updateTable('host')
      .set({ agent_revoked_at: null })
      .where('id', '=', hostId)
      .returningAll()
      .executeTakeFirst();
  }

  /** The identity (cloud id + ip) the host's agent must report from now on. */
  async changeIdentity(hostId: number, cloudId: number, ip: string): Promise<Host | undefined> {
    return this.db
      .updateTable('host')
      .set({ cloud_id: cloudId, ip })
      .where('id', '=', hostId)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Those of `hostIds` whose agent is revoked. The revoked hosts are read and matched here, not
   * looked up by id: a server checks all its connected agents every few seconds, and a statement
   * naming 10,000 ids cost ~10 ms of CPU to build and run where reading the few revoked rows
   * (through the partial index host_revoked) takes under 1 ms.
   */
  async revokedAmong(hostIds: readonly number[]): Promise<number[]> {
    if (hostIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('host')
      .select('id')
      .where('agent_revoked_at', 'is not', null)
      .execute();
    const asked = new Set(hostIds);
    return rows.map((r) => Number(r.id)).filter((id) => asked.has(id));
  }

  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('server_setting')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst();
    return row?.value;
  }

  async setSetting(key: string, value: string, now = Date.now()): Promise<void> {
    await this.db
      .insertInto('server_setting')
      .values({ key, value, updated_at: now })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: now }))
      .execute();
  }
}
