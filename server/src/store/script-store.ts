/**
 * Storage for the script library: scripts (of one scope, or public to every scope) and their
 * versions. A version moves draft -> online <-> offline -> disabled; at most one version of a
 * script is online. Lists page in insertion order, so rows added meanwhile never shift a page.
 */
import crypto from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { sql } from 'kysely';
import { changeConditions, containsLike } from './list-filters.js';
import type { ChangeFilter } from './list-filters.js';
import type { Database, ScriptTable, ScriptVersionTable } from './schema.js';
import { isUniqueViolation } from './constraint-errors.js';
import { holdScript } from './library-references.js';

export const ScriptVersionStatus = { DRAFT: 0, ONLINE: 1, OFFLINE: 2, DISABLED: 3 } as const;
export type ScriptVersionStatus = (typeof ScriptVersionStatus)[keyof typeof ScriptVersionStatus];

/** Who a script belongs to: one scope, or every scope (public). */
export type ScriptOwner = { public: true } | { public: false; scopeType: string; scopeId: string };

export interface Script {
  /** 32 hex digits */
  id: string;
  public: boolean;
  scopeType: string;
  scopeId: string;
  name: string;
  language: number;
  description: string;
  creator: string;
  createTime: number;
  lastModifyUser: string;
  lastModifyTime: number;
}

export interface ScriptVersion {
  id: number;
  script: Script;
  version: string;
  /** Plain text; null in lists that were not asked for it. */
  content: string | null;
  status: ScriptVersionStatus;
  versionDesc: string;
  creator: string;
  createTime: number;
  lastModifyUser: string;
  lastModifyTime: number;
}

export interface ScriptListItem {
  script: Script;
  onlineVersionId: number | null;
}

export interface Page<T> {
  total: number;
  items: T[];
}

/** Another script of the same owner has this name. */
export const NAME_TAKEN = 'name-taken' as const;
/** The script already has a version of this name. */
export const VERSION_TAKEN = 'version-taken' as const;
/** The script was deleted since it was read (its last version deleted). */
export const SCRIPT_GONE = 'script-gone' as const;

export interface NewVersion {
  version: string;
  content: string;
  versionDesc: string;
}

function toScript(r: Selectable<ScriptTable>): Script {
  return {
    id: r.script_id,
    public: r.public === 1,
    scopeType: r.scope_type,
    scopeId: r.scope_id,
    name: r.name,
    language: r.script_language,
    description: r.description,
    creator: r.creator,
    createTime: r.create_time,
    lastModifyUser: r.last_modify_user,
    lastModifyTime: r.last_modify_time,
  };
}

function toVersion(
  script: Script,
  r: Omit<Selectable<ScriptVersionTable>, 'content'> & { content?: string },
): ScriptVersion {
  return {
    id: r.id,
    script,
    version: r.version,
    content: r.content ?? null,
    status: r.status as ScriptVersionStatus,
    versionDesc: r.version_desc,
    creator: r.creator,
    createTime: r.create_time,
    lastModifyUser: r.last_modify_user,
    lastModifyTime: r.last_modify_time,
  };
}

const SCRIPT_CHANGE_COLUMNS = {
  creator: 'creator',
  createTime: 'create_time',
  lastModifyUser: 'last_modify_user',
  lastModifyTime: 'last_modify_time',
};

/** Who made a row and when; a new row was last changed by its maker. */
function madeBy(user: string, now: number) {
  return { creator: user, create_time: now, last_modify_user: user, last_modify_time: now };
}

function ownerColumns(owner: ScriptOwner) {
  return owner.public
    ? { public: 1, scope_type: '', scope_id: '' }
    : { public: 0, scope_type: owner.scopeType, scope_id: owner.scopeId };
}

export class ScriptStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** A new script with its first version, a draft. */
  async createScript(
    owner: ScriptOwner,
    s: { name: string; language: number; description: string },
    first: NewVersion,
    user: string,
    now = Date.now(),
  ): Promise<ScriptVersion | typeof NAME_TAKEN> {
    const scriptId = crypto.randomUUID().replace(/-/g, '');
    try {
      return await this.db.transaction().execute(async (tx) => {
        const row = await tx
          .insertInto('script')
          .values({
            script_id: scriptId,
            ...ownerColumns(owner),
            name: s.name,
            script_language: s.language,
            description: s.description,
            ...madeBy(user, now),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return this.insertVersion(tx, toScript(row), first, user, now);
      });
    } catch (err) {
      if (isUniqueViolation(err)) return NAME_TAKEN;
      throw err;
    }
  }

  async createVersion(
    script: Script,
    v: NewVersion,
    user: string,
    now = Date.now(),
  ): Promise<ScriptVersion | typeof VERSION_TAKEN | typeof SCRIPT_GONE> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        // A new version changes the script, as BK-JOB records it: its list shows who and when.
        // The script's row goes first: on PostgreSQL that waits for the delete of its last
        // version (which locks it too, see deleteVersion), and then finds it gone.
        const r = await tx
          .updateTable('script')
          .set({ last_modify_user: user, last_modify_time: now })
          .where('script_id', '=', script.id)
          .executeTakeFirst();
        if (r.numUpdatedRows === 0n) return SCRIPT_GONE;
        return this.insertVersion(tx, script, v, user, now);
      });
    } catch (err) {
      if (isUniqueViolation(err)) return VERSION_TAKEN;
      throw err;
    }
  }

  private async insertVersion(
    tx: Transaction<Database>,
    script: Script,
    v: NewVersion,
    user: string,
    now: number,
  ): Promise<ScriptVersion> {
    const row = await tx
      .insertInto('script_version')
      .values({
        script_id: script.id,
        version: v.version,
        content: v.content,
        status: ScriptVersionStatus.DRAFT,
        version_desc: v.versionDesc,
        ...madeBy(user, now),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toVersion(script, row);
  }

  async getScript(scriptId: string): Promise<Script | undefined> {
    const row = await this.db
      .selectFrom('script')
      .selectAll()
      .where('script_id', '=', scriptId)
      .executeTakeFirst();
    return row && toScript(row);
  }

  /**
   * One version with its script (owner, name, language) and status: what anything citing a
   * version by id (fast_execute_script, plan steps) needs to check and run it.
   */
  async getVersion(versionId: number): Promise<ScriptVersion | undefined> {
    const v = await this.db
      .selectFrom('script_version')
      .selectAll()
      .where('id', '=', versionId)
      .executeTakeFirst();
    if (!v) return undefined;
    const script = await this.getScript(v.script_id);
    return script && toVersion(script, v);
  }

  async getVersionByName(script: Script, version: string): Promise<ScriptVersion | undefined> {
    const v = await this.db
      .selectFrom('script_version')
      .selectAll()
      .where('script_id', '=', script.id)
      .where('version', '=', version)
      .executeTakeFirst();
    return v && toVersion(script, v);
  }

  async getOnlineVersion(script: Script): Promise<ScriptVersion | undefined> {
    const v = await this.db
      .selectFrom('script_version')
      .selectAll()
      .where('script_id', '=', script.id)
      .where('status', '=', ScriptVersionStatus.ONLINE)
      .executeTakeFirst();
    return v && toVersion(script, v);
  }

  /** Scripts of one owner, oldest first; `name` matches any part, ignoring case. */
  async listScripts(
    owner: ScriptOwner,
    f: ChangeFilter & {
      name?: string | undefined;
      language?: number | undefined;
      start: number;
      length: number;
    },
  ): Promise<Page<ScriptListItem>> {
    const cols = ownerColumns(owner);
    let q = this.db
      .selectFrom('script')
      .where('public', '=', cols.public)
      .where('scope_type', '=', cols.scope_type)
      .where('scope_id', '=', cols.scope_id);
    const name = f.name;
    if (name) q = q.where((eb) => eb(eb.fn('lower', ['name']), 'like', containsLike(name)));
    if (f.language) q = q.where('script_language', '=', f.language);
    for (const [column, op, value] of changeConditions(f, SCRIPT_CHANGE_COLUMNS))
      q = q.where(sql.ref(`script.${column}`), op, value);
    const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
    const rows = await q
      .selectAll('script')
      .select((eb) =>
        eb
          .selectFrom('script_version as v')
          .select('v.id')
          .whereRef('v.script_id', '=', 'script.script_id')
          .where('v.status', '=', ScriptVersionStatus.ONLINE)
          .limit(1)
          .as('online_version_id'),
      )
      .orderBy('script.id')
      .offset(f.start)
      .limit(f.length)
      .execute();
    return {
      total: Number(total),
      items: rows.map((r) => ({ script: toScript(r), onlineVersionId: r.online_version_id ?? null })),
    };
  }

  /** Versions of a script, oldest first. */
  async listVersions(
    script: Script,
    f: { withContent: boolean; start: number; length: number },
  ): Promise<Page<ScriptVersion>> {
    const q = this.db.selectFrom('script_version').where('script_id', '=', script.id);
    const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
    const base = q.select([
      'id',
      'script_id',
      'version',
      'status',
      'version_desc',
      'creator',
      'create_time',
      'last_modify_user',
      'last_modify_time',
    ]);
    const rows = await (f.withContent ? base.select('content') : base)
      .orderBy('id')
      .offset(f.start)
      .limit(f.length)
      .execute();
    return { total: Number(total), items: rows.map((r) => toVersion(script, r)) };
  }

  async updateScriptBasic(
    script: Script,
    s: { name: string; description: string },
    user: string,
    now = Date.now(),
  ): Promise<Script | typeof NAME_TAKEN | typeof SCRIPT_GONE> {
    try {
      const row = await this.db
        .updateTable('script')
        .set({ name: s.name, description: s.description, last_modify_user: user, last_modify_time: now })
        .where('script_id', '=', script.id)
        .returningAll()
        .executeTakeFirst();
      return row ? toScript(row) : SCRIPT_GONE;
    } catch (err) {
      if (isUniqueViolation(err)) return NAME_TAKEN;
      throw err;
    }
  }

  /** Changes a draft's content; undefined when the version is no longer a draft. */
  async updateDraft(
    version: ScriptVersion,
    v: { content: string; versionDesc: string },
    user: string,
    now = Date.now(),
  ): Promise<ScriptVersion | undefined> {
    const row = await this.db
      .updateTable('script_version')
      .set({ content: v.content, version_desc: v.versionDesc, last_modify_user: user, last_modify_time: now })
      .where('id', '=', version.id)
      .where('status', '=', ScriptVersionStatus.DRAFT)
      .returningAll()
      .executeTakeFirst();
    return row && toVersion(version.script, row);
  }

  /**
   * Puts a version online and the one online before it offline; false, and nothing changed, when
   * the version was disabled or deleted since it was read. The script row is touched first: on
   * PostgreSQL that locks it, so two concurrent publishes cannot both leave a version online.
   */
  async publish(version: ScriptVersion, user: string, now = Date.now()): Promise<boolean> {
    const gone = new Error('version disabled or deleted');
    return this.db
      .transaction()
      .execute(async (tx) => {
        await tx
          .updateTable('script')
          .set({ last_modify_user: user, last_modify_time: now })
          .where('script_id', '=', version.script.id)
          .execute();
        await tx
          .updateTable('script_version')
          .set({ status: ScriptVersionStatus.OFFLINE, last_modify_user: user, last_modify_time: now })
          .where('script_id', '=', version.script.id)
          .where('status', '=', ScriptVersionStatus.ONLINE)
          .where('id', '<>', version.id)
          .execute();
        const r = await tx
          .updateTable('script_version')
          .set({ status: ScriptVersionStatus.ONLINE, last_modify_user: user, last_modify_time: now })
          .where('id', '=', version.id)
          .where('status', '<>', ScriptVersionStatus.DISABLED)
          .executeTakeFirst();
        if (r.numUpdatedRows === 0n) throw gone;
        return true;
      })
      .catch((err: unknown) => {
        if (err === gone) return false;
        throw err;
      });
  }

  /** Sets a status when the version is still in one of `from`; false when it was not. */
  async setStatus(
    version: ScriptVersion,
    to: ScriptVersionStatus,
    from: readonly ScriptVersionStatus[],
    user: string,
    now = Date.now(),
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('script_version')
      .set({ status: to, last_modify_user: user, last_modify_time: now })
      .where('id', '=', version.id)
      .where('status', 'in', [...from])
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Deletes a version unless it is online (it may have been published since it was read); a
   * script left without versions goes with it. False when nothing was deleted. `assertNotCited`
   * runs in the transaction (it throws to refuse), once the script's row is held: a template
   * saved citing the version meanwhile is either seen by it or finds the version gone
   * (holdCitations).
   */
  async deleteVersion(
    version: ScriptVersion,
    assertNotCited: (versionIds: number[], tx: Kysely<Database>) => Promise<void>,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      // The script's row first: a version being added meanwhile (createVersion) either commits
      // before this counts the versions left, or finds the script gone.
      await holdScript(tx, version.script.id);
      await assertNotCited([version.id], tx);
      const r = await tx
        .deleteFrom('script_version')
        .where('id', '=', version.id)
        .where('status', '<>', ScriptVersionStatus.ONLINE)
        .executeTakeFirst();
      if (r.numDeletedRows === 0n) return false;
      const left = await tx
        .selectFrom('script_version')
        .select('id')
        .where('script_id', '=', version.script.id)
        .limit(1)
        .executeTakeFirst();
      if (!left) await tx.deleteFrom('script').where('script_id', '=', version.script.id).execute();
      return true;
    });
  }

  /** Deletes a script and all its versions; `assertNotCited` as for deleteVersion. */
  async deleteScript(
    script: Script,
    assertNotCited: (versionIds: number[], tx: Kysely<Database>) => Promise<void>,
  ): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await holdScript(tx, script.id);
      const versions = await tx
        .selectFrom('script_version')
        .select('id')
        .where('script_id', '=', script.id)
        .execute();
      await assertNotCited(
        versions.map((v) => v.id),
        tx,
      );
      await tx.deleteFrom('script').where('script_id', '=', script.id).execute();
    });
  }
}
