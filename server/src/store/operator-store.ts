/**
 * Storage for people: user accounts, their roles per scope, console sessions and personal API
 * tokens. Session and token values never reach this store, only their SHA-256.
 */
import type { Kysely, Selectable } from 'kysely';
import type { ApiTokenTable, Database, UserAccountTable, UserRoleTable, UserSessionTable } from './schema.js';

export type Role = 'viewer' | 'operator' | 'admin';

export interface RoleGrant {
  scopeType: 'biz' | 'biz_set';
  scopeId: number;
  role: Role;
}

export type UserRow = Selectable<UserAccountTable>;
export type SessionRow = Selectable<UserSessionTable>;
export type TokenRow = Selectable<ApiTokenTable>;

export interface User {
  id: number;
  name: string;
  displayName: string;
  passwordHash: string;
  platformAdmin: boolean;
  roles: RoleGrant[];
  createdAt: number;
}

function toGrant(g: Selectable<UserRoleTable>): RoleGrant {
  return { scopeType: g.scope_type as RoleGrant['scopeType'], scopeId: g.scope_id, role: g.role as Role };
}

function toUser(row: UserRow, roles: RoleGrant[]): User {
  return {
    id: row.id,
    name: row.name,
    displayName: row.display_name,
    passwordHash: row.password_hash,
    platformAdmin: row.platform_admin === 1,
    roles,
    createdAt: row.created_at,
  };
}

export class OperatorStore {
  constructor(private readonly db: Kysely<Database>) {}

  async countUsers(): Promise<number> {
    const r = await this.db
      .selectFrom('user_account')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Fails with the engine's unique-violation error when the name is taken. */
  async createUser(u: {
    name: string;
    displayName: string;
    passwordHash: string;
    platformAdmin: boolean;
  }): Promise<User> {
    const now = Date.now();
    const row = await this.db
      .insertInto('user_account')
      .values({
        name: u.name,
        display_name: u.displayName,
        password_hash: u.passwordHash,
        platform_admin: u.platformAdmin ? 1 : 0,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUser(row, []);
  }

  async getUserByName(name: string): Promise<User | undefined> {
    const row = await this.db
      .selectFrom('user_account')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? toUser(row, await this.rolesOf(row.id)) : undefined;
  }

  async getUserById(id: number): Promise<User | undefined> {
    const row = await this.db.selectFrom('user_account').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toUser(row, await this.rolesOf(row.id)) : undefined;
  }

  async listUsers(): Promise<User[]> {
    const rows = await this.db.selectFrom('user_account').selectAll().orderBy('name').execute();
    const roles = await this.db.selectFrom('user_role').selectAll().execute();
    return rows.map((r) => toUser(r, roles.filter((g) => g.user_id === r.id).map(toGrant)));
  }

  private async rolesOf(userId: number): Promise<RoleGrant[]> {
    const rows = await this.db
      .selectFrom('user_role')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('scope_type')
      .orderBy('scope_id')
      .execute();
    return rows.map(toGrant);
  }

  /** Replaces every role of the user (and, when given, the platform-admin flag) in one transaction. */
  async setRoles(userId: number, roles: RoleGrant[], platformAdmin?: boolean): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('user_role').where('user_id', '=', userId).execute();
      if (roles.length > 0) {
        await tx
          .insertInto('user_role')
          .values(
            roles.map((g) => ({
              user_id: userId,
              scope_type: g.scopeType,
              scope_id: g.scopeId,
              role: g.role,
            })),
          )
          .execute();
      }
      await tx
        .updateTable('user_account')
        .set({
          updated_at: Date.now(),
          ...(platformAdmin === undefined ? {} : { platform_admin: platformAdmin ? 1 : 0 }),
        })
        .where('id', '=', userId)
        .execute();
    });
  }

  /** Sets a new password hash and ends every session of the user. */
  async setPassword(userId: number, passwordHash: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('user_account')
        .set({ password_hash: passwordHash, updated_at: Date.now() })
        .where('id', '=', userId)
        .execute();
      await tx.deleteFrom('user_session').where('user_id', '=', userId).execute();
    });
  }

  /** Removes the user with its roles, sessions and tokens. */
  async deleteUser(userId: number): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('user_role').where('user_id', '=', userId).execute();
      await tx.deleteFrom('user_session').where('user_id', '=', userId).execute();
      await tx.deleteFrom('api_token').where('user_id', '=', userId).execute();
      const r = await tx.deleteFrom('user_account').where('id', '=', userId).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }

  /**
   * Starts a session of a user whose password is still `passwordHash`; false when it changed
   * (or the user went) since it was checked. The user's row is touched first: on PostgreSQL a
   * password change under way (setPassword, which ends the sessions) waits for this one, or
   * this one for it and then finds the new hash.
   */
  async createSession(s: SessionRow, passwordHash: string): Promise<boolean> {
    const changed = new Error('password changed');
    return this.db
      .transaction()
      .execute(async (tx) => {
        const r = await tx
          .updateTable('user_account')
          .set((eb) => ({ id: eb.ref('id') }))
          .where('id', '=', s.user_id)
          .where('password_hash', '=', passwordHash)
          .executeTakeFirst();
        if (r.numUpdatedRows === 0n) throw changed;
        await tx.insertInto('user_session').values(s).execute();
        return true;
      })
      .catch((err: unknown) => {
        if (err === changed) return false;
        throw err;
      });
  }

  async getSession(tokenHash: string): Promise<SessionRow | undefined> {
    return this.db
      .selectFrom('user_session')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
  }

  async touchSession(tokenHash: string, at: number): Promise<void> {
    await this.db
      .updateTable('user_session')
      .set({ last_seen_at: at })
      .where('token_hash', '=', tokenHash)
      .execute();
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.db.deleteFrom('user_session').where('token_hash', '=', tokenHash).execute();
  }

  /** Drops sessions past their absolute end or idle for longer than `idleMs`. */
  async pruneSessions(now: number, idleMs: number): Promise<number> {
    const r = await this.db
      .deleteFrom('user_session')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', now - idleMs)]))
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async createToken(t: Omit<TokenRow, 'id' | 'last_used_at' | 'revoked_at'>): Promise<TokenRow> {
    return this.db.insertInto('api_token').values(t).returningAll().executeTakeFirstOrThrow();
  }

  async getTokenByHash(tokenHash: string): Promise<TokenRow | undefined> {
    return this.db.selectFrom('api_token').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  async getToken(id: number): Promise<TokenRow | undefined> {
    return this.db.selectFrom('api_token').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async listTokens(userId: number): Promise<TokenRow[]> {
    return this.db.selectFrom('api_token').selectAll().where('user_id', '=', userId).orderBy('id').execute();
  }

  async touchToken(id: number, at: number): Promise<void> {
    await this.db.updateTable('api_token').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  /** Marks the token revoked; false when it does not exist or already was. */
  async revokeToken(id: number, at: number): Promise<boolean> {
    const r = await this.db
      .updateTable('api_token')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}
