/** Storage operations for API apps (bk_app_code + hashed secret + granted scopes). */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface ScopeGrant {
  type: 'biz' | 'biz_set';
  id: number;
}

export interface StoredApp {
  appCode: string;
  secretHash: string;
  scopes: 'all' | ScopeGrant[];
  /** Platform permissions beyond scopes, e.g. `public_script_manage`. */
  permissions?: string[];
}

export class AppStore {
  constructor(private readonly db: Kysely<Database>) {}

  async upsertApp(app: StoredApp): Promise<void> {
    const values = {
      secret_hash: app.secretHash,
      scopes: JSON.stringify(app.scopes),
      permissions: JSON.stringify(app.permissions ?? []),
    };
    await this.db
      .insertInto('app')
      .values({ app_code: app.appCode, ...values, created_at: Date.now() })
      .onConflict((oc) => oc.column('app_code').doUpdateSet(values))
      .execute();
  }

  async getApp(appCode: string): Promise<StoredApp | undefined> {
    const row = await this.db
      .selectFrom('app')
      .selectAll()
      .where('app_code', '=', appCode)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      appCode: row.app_code,
      secretHash: row.secret_hash,
      scopes: JSON.parse(row.scopes) as StoredApp['scopes'],
      permissions: JSON.parse(row.permissions) as string[],
    };
  }

  async listApps(): Promise<StoredApp[]> {
    const rows = await this.db.selectFrom('app').selectAll().orderBy('app_code').execute();
    return rows.map((r) => ({
      appCode: r.app_code,
      secretHash: r.secret_hash,
      scopes: JSON.parse(r.scopes) as StoredApp['scopes'],
      permissions: JSON.parse(r.permissions) as string[],
    }));
  }

  async deleteApp(appCode: string): Promise<boolean> {
    const r = await this.db.deleteFrom('app').where('app_code', '=', appCode).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }
}
