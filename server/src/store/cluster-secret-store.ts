/** Storage of the secrets servers sharing one database agree on (see shared-secrets.ts). */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export class ClusterSecretStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Keeps `value` unless a value is already there; returns the one that is kept. */
  async insertOrGet(name: string, value: string, now = Date.now()): Promise<string> {
    await this.db
      .insertInto('cluster_secret')
      .values({ name, value, created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await this.db
      .selectFrom('cluster_secret')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return row.value;
  }

  async get(name: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('cluster_secret')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    return row?.value;
  }

  /** Replaces a value still as read (`expected`); false when another server changed it first. */
  async replaceIf(name: string, value: string, expected: string, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable('cluster_secret')
      .set({ value, created_at: now })
      .where('name', '=', name)
      .where('value', '=', expected)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async replace(name: string, value: string, now = Date.now()): Promise<void> {
    await this.db
      .updateTable('cluster_secret')
      .set({ value, created_at: now })
      .where('name', '=', name)
      .execute();
  }
}
