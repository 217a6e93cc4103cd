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
  /** What cites this execution account; empty when none. */
  citingAccount(accountId: number): Promise<Citation[]>;
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

  async accountCitedBy(accountId: number): Promise<Citation[]> {
    const all = await Promise.all(this.citers.map((c) => c.citingAccount(accountId)));
    return all.flat();
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

/** A template (or other citer) saved citing script versions that were deleted meanwhile; nothing was saved. */
export class CitedVersionsGone extends Error {
  constructor(readonly versionIds: readonly number[]) {
    super(`script versions ${versionIds.join(', ')} no longer exist`);
  }
}

/**
 * Takes the rows of the scripts of these versions for the rest of the transaction, one at a
 * time in id order (two saves citing the same scripts cannot wait on each other), and fails
 * with CitedVersionsGone when any version no longer exists. A version's delete takes its
 * script's row first too (ScriptStore), so a save citing a version and that version's delete
 * run one after the other: the save sees the version gone, or the delete sees the citation.
 */
export async function holdCitedVersions(tx: Kysely<Database>, versionIds: readonly number[]): Promise<void> {
  if (versionIds.length === 0) return;
  const ids = [...new Set(versionIds)];
  const versions = await tx
    .selectFrom('script_version')
    .select(['id', 'script_id'])
    .where('id', 'in', ids)
    .execute();
  for (const scriptId of [...new Set(versions.map((v) => v.script_id))].sort())
    await holdScript(tx, scriptId);
  // Read again once held: a delete that held a script first has committed by now.
  const left = new Set(
    (await tx.selectFrom('script_version').select('id').where('id', 'in', ids).execute()).map((v) => v.id),
  );
  const gone = ids.filter((id) => !left.has(id));
  if (gone.length > 0) throw new CitedVersionsGone(gone);
}

/** A script's row, held to the end of the transaction (a no-op update: both engines lock it so). */
export async function holdScript(tx: Kysely<Database>, scriptId: string): Promise<void> {
  await tx
    .updateTable('script')
    .set((eb) => ({ script_id: eb.ref('script_id') }))
    .where('script_id', '=', scriptId)
    .execute();
}
