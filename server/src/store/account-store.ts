/**
 * Execution accounts as the accounts API sees them: system accounts (Linux, Windows) and
 * database accounts (MySQL, Oracle, DB2) of a business. Passwords arrive here already sealed by
 * the server key and are never read back by a list.
 */
import type { Kysely, Selectable } from 'kysely';
import { sql } from 'kysely';
import { changeConditions, containsLike } from './list-filters.js';
import type { ChangeFilter } from './list-filters.js';
import type { AccountTable, Database } from './schema.js';
import { isUniqueViolation } from './constraint-errors.js';
import { holdAccount, holdCitations } from './library-references.js';

export const AccountCategory = { SYSTEM: 1, DB: 2 } as const;
export const AccountType = { LINUX: 1, WINDOWS: 2, MYSQL: 9, ORACLE: 10, DB2: 11 } as const;

export type AccountRow = Selectable<AccountTable>;
/** An account without its sealed password: what every reply is built from. */
export type AccountView = Omit<AccountRow, 'password_sealed'>;

/** Another account of the business and category has this alias. */
export const ALIAS_TAKEN = 'alias-taken' as const;

/** Seals a password for the account with this id (the id is part of the seal's purpose). */
export type SealPassword = (plain: string, accountId: number) => string;

export interface NewAccount {
  bizId: number;
  account: string;
  alias: string;
  category: number;
  type: number;
  osType: string;
  description: string;
  password: string | undefined;
  dbPort: number | null;
  dbSystemAccountId: number | null;
}

export interface AccountChange {
  alias?: string | undefined;
  description?: string | undefined;
  password?: string | undefined;
  dbPort?: number | undefined;
  dbSystemAccountId?: number | undefined;
}

const VIEW_COLUMNS = [
  'id',
  'biz_id',
  'alias',
  'os_user',
  'os_type',
  'category',
  'creator',
  'created_at',
  'type',
  'description',
  'db_port',
  'db_system_account_id',
  'last_modify_user',
  'last_modify_time',
] as const;

const ACCOUNT_CHANGE_COLUMNS = {
  creator: 'creator',
  createTime: 'created_at',
  lastModifyUser: 'last_modify_user',
  lastModifyTime: 'last_modify_time',
};

export class AccountStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** The row and its sealed password are written in one transaction (the seal names the new id). */
  async create(
    a: NewAccount,
    user: string,
    seal: SealPassword,
    now = Date.now(),
  ): Promise<AccountView | typeof ALIAS_TAKEN> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        if (a.dbSystemAccountId !== null) await holdCitations(tx, { accountIds: [a.dbSystemAccountId] });
        const row = await tx
          .insertInto('account')
          .values({
            biz_id: a.bizId,
            alias: a.alias,
            os_user: a.account,
            os_type: a.osType,
            category: a.category,
            type: a.type,
            description: a.description,
            password_sealed: null,
            db_port: a.dbPort,
            db_system_account_id: a.dbSystemAccountId,
            creator: user,
            created_at: now,
            last_modify_user: user,
            last_modify_time: now,
          })
          .returning(VIEW_COLUMNS)
          .executeTakeFirstOrThrow();
        if (a.password !== undefined) {
          await tx
            .updateTable('account')
            .set({ password_sealed: seal(a.password, row.id) })
            .where('id', '=', row.id)
            .execute();
        }
        return row;
      });
    } catch (err) {
      if (isUniqueViolation(err)) return ALIAS_TAKEN;
      throw err;
    }
  }

  async get(id: number): Promise<AccountView | undefined> {
    return this.db.selectFrom('account').select(VIEW_COLUMNS).where('id', '=', id).executeTakeFirst();
  }

  /** The sealed password (purpose `account:<id>`), or null when the account has none. */
  /** undefined: no such account (deleted); null: one without a password. */
  async sealedPassword(id: number): Promise<string | null | undefined> {
    const row = await this.db
      .selectFrom('account')
      .select('password_sealed')
      .where('id', '=', id)
      .executeTakeFirst();
    return row && row.password_sealed;
  }

  /** Accounts of these businesses, oldest first; `account` and `alias` match any part, ignoring case. */
  async list(
    bizIds: readonly number[],
    f: ChangeFilter & {
      category?: number | undefined;
      account?: string | undefined;
      alias?: string | undefined;
      start: number;
      length: number;
    },
  ): Promise<{ total: number; items: AccountView[] }> {
    if (bizIds.length === 0) return { total: 0, items: [] };
    let q = this.db.selectFrom('account').where('biz_id', 'in', [...bizIds]);
    if (f.category) q = q.where('category', '=', f.category);
    const { account, alias } = f;
    if (account) q = q.where((eb) => eb(eb.fn('lower', ['os_user']), 'like', containsLike(account)));
    if (alias) q = q.where((eb) => eb(eb.fn('lower', ['alias']), 'like', containsLike(alias)));
    for (const [column, op, value] of changeConditions(f, ACCOUNT_CHANGE_COLUMNS))
      q = q.where(sql.ref(column), op, value);
    const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
    const items = await q.select(VIEW_COLUMNS).orderBy('id').offset(f.start).limit(f.length).execute();
    return { total: Number(total), items };
  }

  async update(
    id: number,
    c: AccountChange,
    user: string,
    seal: SealPassword,
    now = Date.now(),
  ): Promise<AccountView | undefined | typeof ALIAS_TAKEN> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        if (c.dbSystemAccountId !== undefined) await holdCitations(tx, { accountIds: [c.dbSystemAccountId] });
        return tx
          .updateTable('account')
          .set({
            ...(c.alias !== undefined ? { alias: c.alias } : {}),
            ...(c.description !== undefined ? { description: c.description } : {}),
            ...(c.password !== undefined ? { password_sealed: seal(c.password, id) } : {}),
            ...(c.dbPort !== undefined ? { db_port: c.dbPort } : {}),
            ...(c.dbSystemAccountId !== undefined ? { db_system_account_id: c.dbSystemAccountId } : {}),
            last_modify_user: user,
            last_modify_time: now,
          })
          .where('id', '=', id)
          .returning(VIEW_COLUMNS)
          .executeTakeFirst();
      });
    } catch (err) {
      if (isUniqueViolation(err)) return ALIAS_TAKEN;
      throw err;
    }
  }

  /**
   * `assertNotCited` runs in the transaction (it throws to refuse), once the account's row is
   * held: a template or database account saved citing it meanwhile is either seen by it or
   * finds the account gone (holdCitations).
   */
  async delete(id: number, assertNotCited: (tx: Kysely<Database>) => Promise<void>): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      if (!(await holdAccount(tx, id))) return false;
      await assertNotCited(tx);
      const r = await tx.deleteFrom('account').where('id', '=', id).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }

  /** Database accounts that run their client as this system account. */
  async dbAccountsUsing(systemAccountId: number, db = this.db): Promise<AccountView[]> {
    return db
      .selectFrom('account')
      .select(VIEW_COLUMNS)
      .where('db_system_account_id', '=', systemAccountId)
      .orderBy('id')
      .execute();
  }

  /** Every sealed password, for a reseal after a server key rotation (accounts are few). */
  async sealedPasswords(): Promise<{ id: number; sealed: string }[]> {
    const rows = await this.db
      .selectFrom('account')
      .select(['id', 'password_sealed'])
      .where('password_sealed', 'is not', null)
      .execute();
    return rows.map((r) => ({ id: r.id, sealed: r.password_sealed ?? '' }));
  }

  /** Replaces a sealed password if it is still `from` (another server may have resealed it). */
  async resealPassword(id: number, from: string, to: string): Promise<boolean> {
    const r = await this.db
      .updateTable('account')
      .set({ password_sealed: to })
      .where('id', '=', id)
      .where('password_sealed', '=', from)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}
