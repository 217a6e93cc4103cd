/**
 * Resource scope of a request: `bk_scope_type` + `bk_scope_id`, or the deprecated
 * `bk_biz_id` (8000000..9999999 means a business set), as BK-JOB resolves them.
 */
import { z } from 'zod';
import type { InventoryStore } from '../store/inventory-store.js';

/** The two lookups scope resolution needs. */
export type ScopeLookup = Pick<InventoryStore, 'getBiz' | 'getBizSet'>;
import type { Caller } from './auth.js';
import { ApiError } from './error-catalogue.js';
import type { PermissionInfo } from './error-catalogue.js';
import { zLong } from './input-types.js';

export interface ResolvedScope {
  type: 'biz' | 'biz_set';
  id: number;
  name: string;
  /** The businesses whose hosts and accounts this scope reaches. */
  bizIds: number[];
}

const BIZ_SET_ID_MIN = 8_000_000;
const BIZ_SET_ID_MAX = 9_999_999;

/** Null and "" are absent, as BK-JOB's scope resolution reads them (SDKs send every field). */
const absentIfEmpty = (v: unknown) => (v === null || v === '' ? undefined : v);

export const ScopeFields = z.object({
  bk_scope_type: z.preprocess(absentIfEmpty, z.enum(['biz', 'biz_set']).optional()),
  bk_scope_id: z.preprocess(absentIfEmpty, z.union([z.string(), z.number()]).optional()),
  bk_biz_id: z.preprocess(absentIfEmpty, zLong.pipe(z.number().min(1)).optional()),
});
export type ScopeFields = z.infer<typeof ScopeFields>;

export function scopeKeyOf(fields: ScopeFields): { type: 'biz' | 'biz_set'; id: number } {
  if (fields.bk_scope_type !== undefined || fields.bk_scope_id !== undefined) {
    if (fields.bk_scope_type === undefined)
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'bk_scope_type' });
    if (fields.bk_scope_id === undefined || fields.bk_scope_id === '')
      throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'bk_scope_id' });
    const id = Number(fields.bk_scope_id);
    if (!Number.isSafeInteger(id) || id < 1)
      throw new ApiError('BAD_REQUEST', {
        reason: `bk_scope_id "${String(fields.bk_scope_id)}" is not a positive integer`,
      });
    return { type: fields.bk_scope_type, id };
  }
  if (fields.bk_biz_id !== undefined) {
    const id = fields.bk_biz_id;
    return { type: id >= BIZ_SET_ID_MIN && id <= BIZ_SET_ID_MAX ? 'biz_set' : 'biz', id };
  }
  throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: 'bk_scope_type/bk_scope_id' });
}

export async function resolveScope(inventory: ScopeLookup, fields: ScopeFields): Promise<ResolvedScope> {
  const key = scopeKeyOf(fields);
  if (key.type === 'biz') {
    const biz = await inventory.getBiz(key.id);
    if (!biz) throw new ApiError('APP_NOT_EXIST', { scopeType: key.type, scopeId: key.id });
    return { type: 'biz', id: biz.id, name: biz.name, bizIds: [biz.id] };
  }
  const set = await inventory.getBizSet(key.id);
  if (!set) throw new ApiError('APP_NOT_EXIST', { scopeType: key.type, scopeId: key.id });
  return { type: 'biz_set', id: set.id, name: set.name, bizIds: set.bizIds };
}

/**
 * An app may act in a scope it was granted; a grant on a business set also covers each
 * business in that set (the set's owner can already reach every host in it).
 */
export async function assertScopeGranted(
  inventory: ScopeLookup,
  caller: Caller,
  scope: ResolvedScope,
): Promise<void> {
  if (caller.scopes === 'all') return;
  if (caller.scopes.some((g) => g.type === scope.type && g.id === scope.id)) return;
  if (scope.type === 'biz') {
    for (const g of caller.scopes.filter((s) => s.type === 'biz_set')) {
      const set = await inventory.getBizSet(g.id);
      if (set?.bizIds.includes(scope.id)) return;
    }
  }
  throw new ApiError(
    'BK_PERMISSION_DENIED',
    { appCode: caller.appCode, resource: `${scope.type} ${scope.id}` },
    permissionFor(scope),
  );
}

/**
 * Whether a caller may be told of a thing in scope `type`/`id` by name (a citer in a refusal):
 * the scope it acts in, or one it was granted. Things elsewhere are counted, not named.
 */
export function seesScope(ctx: { caller: Caller; scope: ResolvedScope }, type: string, id: string): boolean {
  if (type === ctx.scope.type && id === String(ctx.scope.id)) return true;
  const { scopes } = ctx.caller;
  return scopes === 'all' || scopes.some((g) => g.type === type && String(g.id) === id);
}

function permissionFor(scope: ResolvedScope): PermissionInfo {
  const typeName = scope.type === 'biz' ? 'Business' : 'Business set';
  return {
    system_id: 'bk_job',
    system_name: 'Jobfleet',
    actions: [
      {
        id: scope.type === 'biz' ? 'access_business' : 'access_business_set',
        name: `Access ${typeName.toLowerCase()}`,
        related_resource_types: [
          {
            system_id: 'bk_cmdb',
            system_name: 'Inventory',
            type: scope.type,
            type_name: typeName,
            instances: [[{ id: String(scope.id), name: scope.name, type: scope.type, type_name: typeName }]],
          },
        ],
      },
    ],
  };
}

/**
 * Business and business-set lookups for every API call, cached for a short time like app
 * credentials: a polling client would otherwise pay a database round trip per call for a
 * record that changes rarely. Misses are not cached, so a new business is usable at once.
 */
export class CachedScopeLookup implements ScopeLookup {
  private readonly biz = new Map<
    number,
    { value: Awaited<ReturnType<ScopeLookup['getBiz']>>; until: number }
  >();
  private readonly sets = new Map<
    number,
    { value: Awaited<ReturnType<ScopeLookup['getBizSet']>>; until: number }
  >();

  constructor(
    private readonly inventory: ScopeLookup,
    private readonly ttlMs = 2000,
  ) {}

  async getBiz(id: number): ReturnType<ScopeLookup['getBiz']> {
    const hit = this.biz.get(id);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = await this.inventory.getBiz(id);
    if (value) this.biz.set(id, { value, until: Date.now() + this.ttlMs });
    return value;
  }

  async getBizSet(id: number): ReturnType<ScopeLookup['getBizSet']> {
    const hit = this.sets.get(id);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = await this.inventory.getBizSet(id);
    if (value) this.sets.set(id, { value, until: Date.now() + this.ttlMs });
    return value;
  }
}
