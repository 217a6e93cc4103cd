/**
 * "Still cited" checks for library items. Whatever cites a script version or an execution
 * account by id (job plans, crons, ...) registers a citer here; deleting a cited item is then
 * refused (1243054 for script versions, 1243014 for accounts) with the citers' own words for
 * what cites it.
 *
 * A store that cites them registers itself once, in the Store constructor:
 * `this.references.register(this.plans)`. To check an item it cites, it reads
 * `store.scripts.getVersion(id)` (the version with its script's owner, language and status) and
 * `store.accounts.get(id)`; `resolveCitedScript` (api/script-reference.ts) applies the run-time
 * rules (scope, disabled, online) to a citation.
 */

import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** One thing citing a library item: its label for messages (e.g. "template 12 (deploy)") and its scope. */
export interface Citation {
  label: string;
  scopeType: string;
  scopeId: string;
}

export interface LibraryCiter {
  /** What cites, for messages: e.g. "job plan". */
  readonly citerName: string;
  /**
   * What cites any of these script versions; empty when none. `db`: the transaction of a delete
   * that holds the versions' script (ScriptStore.deleteVersion).
   */
  citingScriptVersions(versionIds: readonly number[], db?: Kysely<Database>): Promise<Citation[]>;
  /** What cites this execution account; empty when none. `db` as for citingScriptVersions. */
  citingAccount(accountId: number, db?: Kysely<Database>): Promise<Citation[]>;
}

/** At most this many labels are named in a refusal; the rest are counted. */
const MAX_NAMED = 5;

export class LibraryReferences {
  private readonly citers: LibraryCiter[] = [];

  register(citer: LibraryCiter): void {
    this.citers.push(citer);
  }

  async scriptVersionsCitedBy(versionIds: readonly number[], db?: Kysely<Database>): Promise<Citation[]> {
    if (versionIds.length === 0) return [];
    const all = [];
    // One after the other: a transaction runs one statement at a time.
    for (const c of this.citers) all.push(...(await c.citingScriptVersions(versionIds, db)));
    return all;
  }

  async accountCitedBy(accountId: number, db?: Kysely<Database>): Promise<Citation[]> {
    const all = [];
    for (const c of this.citers) all.push(...(await c.citingAccount(accountId, db)));
    return all;
  }
}

/**
 * "plan 1, plan 2 and 3 more"; with `unseen`, the citers of scopes the caller cannot see are
 * counted, not named ("and 2 in scopes you cannot see"): a public script is cited from any scope.
 */
export function describeCiters(labels: readonly string[], unseen = 0): string {
  const named = labels.slice(0, MAX_NAMED).join(', ');
  const shown = labels.length > MAX_NAMED ? `${named} and ${labels.length - MAX_NAMED} more` : named;
  if (unseen === 0) return shown;
  const hidden = `${unseen} in scopes you cannot see`;
  return shown ? `${shown}, and ${hidden}` : hidden;
}

/** A save citing library items that were deleted meanwhile; nothing was saved. */
export class CitedItemsGone extends Error {
  constructor(
    readonly kind: 'script version' | 'account',
    readonly ids: readonly number[],
  ) {
    super(`${kind}s ${ids.join(', ')} no longer exist`);
  }
}

/**
 * Holds what a save cites for the rest of its transaction, and fails with CitedItemsGone when
 * any of it no longer exists: the rows of the cited versions' scripts, then the cited accounts,
 * each in id order (two saves citing the same items cannot wait on each other). A delete holds
 * the row it deletes first too (ScriptStore, AccountStore), then checks what cites it: so a save
 * and a delete of what it cites run one after the other, and the later one sees the earlier.
 */
export async function holdCitations(
  tx: Kysely<Database>,
  cited: { versionIds?: readonly number[]; accountIds?: readonly number[] },
): Promise<void> {
  const versionIds = [...new Set(cited.versionIds ?? [])];
  if (versionIds.length > 0) {
    const versions = await tx
      .selectFrom('script_version')
      .select(['id', 'script_id'])
      .where('id', 'in', versionIds)
      .execute();
    for (const scriptId of [...new Set(versions.map((v) => v.script_id))].sort())
      await holdScript(tx, scriptId);
    // Read again once held: a delete that held a script first has committed by now.
    const left = new Set(
      (await tx.selectFrom('script_version').select('id').where('id', 'in', versionIds).execute()).map(
        (v) => v.id,
      ),
    );
    const gone = versionIds.filter((id) => !left.has(id));
    if (gone.length > 0) throw new CitedItemsGone('script version', gone);
  }
  const gone: number[] = [];
  for (const id of [...new Set(cited.accountIds ?? [])].sort((a, b) => a - b))
    if (!(await holdAccount(tx, id))) gone.push(id);
  if (gone.length > 0) throw new CitedItemsGone('account', gone);
}

/** A script's row, held to the end of the transaction (a no-op update: both engines lock it so). */
export async function holdScript(tx: Kysely<Database>, scriptId: string): Promise<void> {
  await tx
    .updateTable('script')
    .set((eb) => ({ script_id: eb.ref('script_id') }))
    .where('script_id', '=', scriptId)
    .execute();
}

/** An account's row, held as holdScript holds a script's; false when there is none. */
export async function holdAccount(tx: Kysely<Database>, id: number): Promise<boolean> {
  const r = await tx
    .updateTable('account')
    .set((eb) => ({ id: eb.ref('id') }))
    .where('id', '=', id)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}
