/** Storage operations for API apps (bk_app_code + sealed secret + granted scopes). */
import type { Kysely, Selectable } from 'kysely';
import type { Database } from './schema.js';

export interface ScopeGrant {
  type: 'biz' | 'biz_set';
  id: number;
}

export interface StoredApp {
  appCode: string;
  /** The secret sealed for `appSecretPurpose(appCode)`; '' for an app stored before secrets were sealed. */
  secretSealed: string;
  /** Salted SHA-256 of the secret, held only while `secretSealed` is ''. */
  secretHash: string;
  scopes: 'all' | ScopeGrant[];
  /** Platform permissions beyond scopes, e.g. `public_script_manage`. */
  permissions?: string[];
}

/** What the secret box binds an app's sealed secret to: it opens for this app's row only. */
export function appSecretPurpose(appCode: string): string {
  return `app:${appCode}`;
}

type AppRow = Selectable<Database['app']>;

function fromRow(row: AppRow): StoredApp {
  return {
    appCode: row.app_code,
    secretSealed: row.secret_sealed,
    secretHash: row.secret_hash,
    scopes: JSON.parse(row.scopes) as StoredApp['scopes'],
    permissions: JSON.parse(row.permissions) as string[],
  };
}

export class AppStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Creates or replaces an app; a new secret always arrives sealed, and any old hash goes. */
  async upsertApp(app: Omit<StoredApp, 'secretHash'>): Promise<void> {
    const values = {
      secret_sealed: app.secretSealed,
      secret_hash: '',
      scopes: JSON.stringify(app.scopes),
      permissions: JSON.stringify(app.permissions ?? []),
    };
    await this.db
      .insertInto('app')
      .values({ app_code: app.appCode, ...values, created_at: Date.now() })
      .onConflict((oc) => oc.column('app_code').doUpdateSet(values))
      .execute();
  }

  /**
   * Stores the secret as read in `from` (a legacy hash, or a value sealed under an earlier
   * server key) sealed anew, unless the app changed since it was read (another server did it
   * first, or the secret was set anew): true when this call did it.
   */
  async resealSecret(
    from: Pick<StoredApp, 'appCode' | 'secretHash' | 'secretSealed'>,
    secretSealed: string,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('app')
      .set({ secret_sealed: secretSealed, secret_hash: '' })
      .where('app_code', '=', from.appCode)
      .where('secret_hash', '=', from.secretHash)
      .where('secret_sealed', '=', from.secretSealed)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async getApp(appCode: string): Promise<StoredApp | undefined> {
    const row = await this.db
      .selectFrom('app')
      .selectAll()
      .where('app_code', '=', appCode)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async listApps(): Promise<StoredApp[]> {
    const rows = await this.db.selectFrom('app').selectAll().orderBy('app_code').execute();
    return rows.map(fromRow);
  }

  async deleteApp(appCode: string): Promise<boolean> {
    const r = await this.db.deleteFrom('app').where('app_code', '=', appCode).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }
}
