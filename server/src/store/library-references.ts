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

/** One thing citing a library item: its label for messages (e.g. "template 12 (deploy)") and its scope. */
export interface Citation {
  label: string;
  scopeType: string;
  scopeId: string;
}

export interface LibraryCiter {
  /** What cites, for messages: e.g. "job plan". */
  readonly citerName: string;
  /** What cites any of these script versions; empty when none. */
  citingScriptVersions(versionIds: readonly number[]): Promise<Citation[]>;
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

  async scriptVersionsCitedBy(versionIds: readonly number[]): Promise<Citation[]> {
    if (versionIds.length === 0) return [];
    const all = await Promise.all(this.citers.map((c) => c.citingScriptVersions(versionIds)));
    return all.flat();
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
