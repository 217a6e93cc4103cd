/**
 * Execution accounts (spec get_account_list.md, behaviour notes §3.19): list, create, update,
 * delete. They are the same records `account_id` / `account_alias` resolve to and the admin
 * API manages. An account belongs to a business; from a business set the list shows the
 * accounts of the set's businesses, and new accounts are created in a business.
 *
 * Passwords (Windows and database accounts) are sealed with the server key (purpose
 * `account:<id>`) before they reach the store, and no reply or log line ever carries them.
 * Database accounts carry `db_password`, `db_port` and `db_system_account_id` (the system
 * account that runs the database client), as BK-JOB's account records do.
 */
import { z } from 'zod';
import { CitedItemsGone, describeCiters } from '../../store/library-references.js';
import { AccountCategory, AccountType, ALIAS_TAKEN } from '../../store/account-store.js';
import type { AccountView, SealPassword } from '../../store/account-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { seesScope } from '../scope.js';
import type { ErrorName } from '../error-catalogue.js';
import { zInt, zLong, zText } from '../input-types.js';
import { ChangeFilterFields, changeFilterOf, pageParams, pageReply, PageFields } from '../paging.js';

const MAX_CREATE_PASSWORD = 117;
const MAX_UPDATE_PASSWORD = 255;
const SYSTEM_USER = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;
const DB_USER = /^[A-Za-z0-9_.$#@-]{1,64}$/;

const Category = zInt.pipe(z.literal([1, 2], { error: 'must be 1 (system) or 2 (database)' }));
const Type = zInt.pipe(
  z.literal([1, 2, 9, 10, 11], { error: 'must be 1 Linux, 2 Windows, 9 MySQL, 10 Oracle or 11 DB2' }),
);
const AccountId = zLong.pipe(z.number().min(1, 'must be an account id (1 or more)'));
const Alias = zText(255).refine((s) => s !== '', 'must not be empty');
const Description = zText(1024);
const Port = zInt.pipe(z.number().min(1).max(65535));
/** An empty string counts as absent: form-filling clients send one for an untouched field. */
const secret = (max: number) =>
  z
    .string()
    .max(max, `is longer than ${max} characters`)
    .nullish()
    .transform((s) => (s ? s : undefined));

const BAD_REQUEST_FIELDS: Record<string, ErrorName> = {
  id: 'BAD_REQUEST',
  account: 'BAD_REQUEST',
  type: 'BAD_REQUEST',
  category: 'BAD_REQUEST',
  password: 'BAD_REQUEST',
  db_password: 'BAD_REQUEST',
  db_port: 'BAD_REQUEST',
  db_system_account_id: 'BAD_REQUEST',
  alias: 'BAD_REQUEST',
  description: 'BAD_REQUEST',
};

function osName(a: AccountView): string | null {
  if (a.category !== AccountCategory.SYSTEM) return null;
  return a.type === AccountType.WINDOWS ? 'Windows' : 'Linux';
}

export function accountReply(a: AccountView) {
  const db = a.category === AccountCategory.DB;
  return {
    id: a.id,
    bk_scope_type: 'biz',
    bk_scope_id: String(a.biz_id),
    account: a.os_user,
    alias: a.alias,
    category: a.category,
    type: a.type,
    db_system_account_id: db ? a.db_system_account_id : null,
    db_port: db ? a.db_port : null,
    os: osName(a),
    description: a.description,
    creator: a.creator,
    create_time: a.created_at,
    last_modify_user: a.last_modify_user,
    last_modify_time: a.last_modify_time,
  };
}

function sealer(ctx: EndpointContext): SealPassword {
  return (plain, id) => ctx.services.secretBox.seal(plain, `account:${id}`);
}

function invalid(param: string, reason: string): ApiError {
  return new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME_AND_REASON', { param, reason });
}

async function findInScope(ctx: EndpointContext, id: number): Promise<AccountView> {
  const a = await ctx.services.store.accounts.get(id);
  if (!a || !ctx.scope.bizIds.includes(a.biz_id)) throw new ApiError('ACCOUNT_NOT_EXIST', { account: id });
  return a;
}

/**
 * The system account a database account runs its client as: a Linux one of the same business
 * (agents run on Linux; a Windows account's name would be looked up as a Linux user).
 */
async function assertSystemAccount(ctx: EndpointContext, bizId: number, id: number): Promise<void> {
  const sys = await ctx.services.store.accounts.get(id);
  if (!sys || sys.biz_id !== bizId || sys.type !== AccountType.LINUX)
    throw new ApiError('DB_SYSTEM_ACCOUNT_IS_INVALID', { id });
}

/** A save citing a system account that was deleted after assertSystemAccount read it: refused as one that never was. */
async function systemAccountHeld<T>(id: number | null | undefined, save: () => Promise<T>): Promise<T> {
  try {
    return await save();
  } catch (err) {
    if (err instanceof CitedItemsGone) throw new ApiError('DB_SYSTEM_ACCOUNT_IS_INVALID', { id: id ?? 0 });
    throw err;
  }
}

export const getAccountList = defineEndpoint({
  name: 'get_account_list',
  kind: 'read',
  permission: 'read',
  input: z.object({
    category: Category.nullish(),
    account: zText(255).nullish(),
    alias: zText(255).nullish(),
    ...ChangeFilterFields,
    ...PageFields,
  }),
  fieldErrors: BAD_REQUEST_FIELDS,
  async handle(ctx, input) {
    const page = pageParams(input);
    const { total, items } = await ctx.services.store.accounts.list(ctx.scope.bizIds, {
      category: input.category ?? undefined,
      account: input.account ?? undefined,
      alias: input.alias ?? undefined,
      ...changeFilterOf(input),
      ...page,
    });
    return pageReply(page, total, items.map(accountReply));
  },
});

export const createAccount = defineEndpoint({
  name: 'create_account',
  kind: 'write',
  permission: 'manage',
  input: z.object({
    account: z.string().min(1, 'must not be empty'),
    type: Type,
    category: Category,
    password: secret(MAX_CREATE_PASSWORD),
    db_password: secret(MAX_CREATE_PASSWORD),
    db_port: Port.nullish(),
    db_system_account_id: AccountId.nullish(),
    alias: Alias.nullish(),
    description: Description.nullish(),
  }),
  fieldErrors: BAD_REQUEST_FIELDS,
  async handle(ctx, input) {
    if (ctx.scope.type !== 'biz')
      throw new ApiError('ILLEGAL_PARAM', {
        reason: 'an account belongs to a business: create it with bk_scope_type biz',
      });
    const bizId = ctx.scope.id;
    const system = input.category === AccountCategory.SYSTEM;
    const windows = input.type === AccountType.WINDOWS;
    if (system !== (input.type === AccountType.LINUX || windows))
      throw invalid(
        'type',
        system ? 'a system account is 1 Linux or 2 Windows' : 'a database account is 9, 10 or 11',
      );
    if (!(system ? SYSTEM_USER : DB_USER).test(input.account))
      throw invalid('account', `"${input.account}" is not a valid ${system ? 'OS' : 'database'} user name`);
    let password: string | undefined;
    if (system) {
      password = input.password;
      if (windows && password === undefined)
        throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'password' });
      if (!windows && password !== undefined) throw invalid('password', 'a Linux account has no password');
    } else {
      password = input.db_password ?? input.password;
      if (password === undefined)
        throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'db_password' });
      if (input.db_port == null) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'db_port' });
      if (input.db_system_account_id == null)
        throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'db_system_account_id' });
      await assertSystemAccount(ctx, bizId, input.db_system_account_id);
    }
    const alias = input.alias ?? input.account;
    const row = await systemAccountHeld(input.db_system_account_id, () =>
      ctx.services.store.accounts.create(
        {
          bizId,
          account: input.account,
          alias,
          category: input.category,
          type: input.type,
          osType: system ? (windows ? 'windows' : 'linux') : '',
          description: input.description ?? '',
          password,
          dbPort: system ? null : (input.db_port ?? null),
          dbSystemAccountId: system ? null : (input.db_system_account_id ?? null),
        },
        ctx.caller.username,
        sealer(ctx),
      ),
    );
    if (row === ALIAS_TAKEN) throw new ApiError('ACCOUNT_ALIAS_EXIST', { alias });
    return accountReply(row);
  },
});

export const updateAccount = defineEndpoint({
  name: 'update_account',
  kind: 'write',
  permission: 'manage',
  input: z.object({
    id: AccountId,
    alias: Alias.nullish(),
    description: Description.nullish(),
    password: secret(MAX_UPDATE_PASSWORD),
    db_password: secret(MAX_UPDATE_PASSWORD),
    db_port: Port.nullish(),
    db_system_account_id: AccountId.nullish(),
  }),
  fieldErrors: BAD_REQUEST_FIELDS,
  async handle(ctx, input) {
    const a = await findInScope(ctx, input.id);
    const system = a.category === AccountCategory.SYSTEM;
    const password = system ? input.password : (input.db_password ?? input.password);
    if (system && a.type !== AccountType.WINDOWS && password !== undefined)
      throw invalid('password', 'a Linux account has no password');
    if (system && (input.db_port != null || input.db_system_account_id != null))
      throw invalid('db_port', 'only database accounts have db_port and db_system_account_id');
    if (input.db_system_account_id != null)
      await assertSystemAccount(ctx, a.biz_id, input.db_system_account_id);
    const row = await systemAccountHeld(input.db_system_account_id, () =>
      ctx.services.store.accounts.update(
        a.id,
        {
          alias: input.alias ?? undefined,
          description: input.description ?? undefined,
          password,
          dbPort: input.db_port ?? undefined,
          dbSystemAccountId: input.db_system_account_id ?? undefined,
        },
        ctx.caller.username,
        sealer(ctx),
      ),
    );
    if (row === ALIAS_TAKEN) throw new ApiError('ACCOUNT_ALIAS_EXIST', { alias: input.alias ?? '' });
    if (!row) throw new ApiError('ACCOUNT_NOT_EXIST', { account: input.id });
    return accountReply(row);
  },
});

export const deleteAccount = defineEndpoint({
  name: 'delete_account',
  kind: 'write',
  permission: 'manage',
  input: z.object({ id: AccountId }),
  fieldErrors: BAD_REQUEST_FIELDS,
  async handle(ctx, input) {
    const a = await findInScope(ctx, input.id);
    const store = ctx.services.store;
    const deleted = await store.accounts.delete(a.id, async (tx) => {
      const dbAccounts = await store.accounts.dbAccountsUsing(a.id, tx);
      // A template of a business set cites accounts of its businesses: one in a set the caller
      // was not granted is counted, not named.
      const cited = await store.references.accountCitedBy(a.id, tx);
      const seen = cited.filter((c) => seesScope(ctx, c.scopeType, c.scopeId));
      const named = [
        ...dbAccounts.map((d) => `database account ${d.id} (${d.alias})`),
        ...seen.map((c) => c.label),
      ];
      const unseen = cited.length - seen.length;
      if (named.length + unseen > 0)
        throw new ApiError('DELETE_REF_ACCOUNT_FORBIDDEN', {
          id: a.id,
          citers: describeCiters(named, unseen),
        });
    });
    if (!deleted) throw new ApiError('ACCOUNT_NOT_EXIST', { account: a.id });
    return accountReply(a);
  },
});

export const ACCOUNT_ENDPOINTS = [getAccountList, createAccount, updateAccount, deleteAccount] as const;
