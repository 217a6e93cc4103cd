/**
 * Storage operations for file distribution: files the server holds (local uploads and
 * push_config_file contents) and the per-file logs of file steps.
 */
import crypto from 'node:crypto';
import type { Expression, ExpressionBuilder, Insertable, Kysely, Selectable, SqlBool } from 'kysely';
import { StepType } from '../engine/statuses.js';
import { idChunks } from './id-chunks.js';
import type { Database, FileLogTable, StoredFileTable } from './schema.js';

export type StoredFile = Selectable<StoredFileTable>;
/** A file log with its paths whole, as its writers make it and its readers see it. */
export type FileLog = Omit<Selectable<FileLogTable>, 'src_path_full' | 'dest_path_full'>;

/** The token hash of an upload in progress; a token never hashes to a value with this prefix. */
function claimedMark(tokenHash: string): string {
  return `claimed:${tokenHash}`;
}

/** The server process taking an upload URL, and how it tells a live claim from one left behind. */
export interface UploadClaimant {
  /** Made at each start of the process; in cluster mode its `server_node` id. */
  id: string;
  /**
   * Cluster mode: other servers write to the same store, and their claims hold while their
   * `server_node` row is alive. Otherwise this process is the store's only writer, and a claim
   * made by any other process was left by an earlier run of the server.
   */
  clustered: boolean;
}

/** The row's claim belongs to no upload that can still be running. */
function claimLeftBehind(
  eb: ExpressionBuilder<Database, 'stored_file'>,
  claimant: UploadClaimant,
): Expression<SqlBool> {
  if (!claimant.clustered)
    return eb.or([eb('upload_claimed_by', 'is', null), eb('upload_claimed_by', '<>', claimant.id)]);
  // A claim naming no claimant was made by a version that did not record it: during a rolling
  // upgrade that may be a live server of the older version, so it is left to expire with its URL.
  // A dead server is fenced (the trigger on stored_file and stored_file_chunk): once it is marked
  // dead none of its writes to the file can land, and it is never alive again.
  return eb.and([
    eb('upload_claimed_by', 'is not', null),
    eb.not(
      eb.exists(
        eb
          .selectFrom('server_node')
          .select('server_node.id')
          .whereRef('server_node.id', '=', 'stored_file.upload_claimed_by')
          .where('server_node.state', '=', 'alive'),
      ),
    ),
  ]);
}

export class FileStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** New rows: no upload has claimed them yet, and they count as used from their creation. */
  async createStoredFiles(rows: Omit<StoredFile, 'upload_claimed_by' | 'used_at'>[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db
      .insertInto('stored_file')
      .values(rows.map((r) => ({ ...r, used_at: r.created_at })))
      .execute();
  }

  /**
   * A job or a template names these files: the history retention keeps them for its days from
   * now. Resolves with how many of them are stored whole; fewer means one was removed (or is
   * being removed) by the retention, whose removal starts with a conditional update of the same
   * row, so of the two only one takes effect.
   */
  async useStoredFiles(paths: readonly string[], now: number): Promise<number> {
    return markStoredFilesUsed(this.db, paths, now);
  }

  /**
   * Retention: a page of files no job or template has named since `before` (ms), in path
   * order after `afterPath`.
   */
  async unusedBefore(before: number, afterPath: string, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('stored_file')
      .select('path')
      .where('path', '>', afterPath)
      .where((eb) => eb(eb.fn.coalesce('used_at', 'created_at'), '<', before))
      .orderBy('path')
      .limit(limit)
      .execute();
    return rows.map((r) => r.path);
  }

  /**
   * Retention: of these files, those still unused since `before`, made unusable (no size: as an
   * upload that never completed, which no job accepts or serves) before their bytes go. A row
   * made so and left by a crash is found again by the next pass, so no bytes are left behind
   * without a row naming them.
   */
  async retireUnused(paths: readonly string[], before: number): Promise<string[]> {
    const out: string[] = [];
    for (const part of idChunks(paths)) {
      const rows = await this.db
        .updateTable('stored_file')
        .set({ size: null, sha256: null, upload_token_hash: null, upload_claimed_by: null })
        .where('path', 'in', part)
        .where((eb) => eb(eb.fn.coalesce('used_at', 'created_at'), '<', before))
        .returning('path')
        .execute();
      out.push(...rows.map((r) => r.path));
    }
    return out;
  }

  /** Retention: the rows of retired files whose bytes are gone. */
  async deleteRetired(paths: readonly string[]): Promise<void> {
    for (const part of idChunks(paths))
      await this.db.deleteFrom('stored_file').where('path', 'in', part).where('size', 'is', null).execute();
  }

  /**
   * Every text that may name a stored file and outlives the retention's view of jobs: template
   * and plan bodies (file lists, variables' defaults) and crons' variable values, with the step
   * specs of the jobs created before `createdBefore` that the retention keeps (not finished, or
   * finished at or after `finishedBefore`). Jobs created since have named their files as they
   * were accepted.
   */
  async *namingTexts(
    createdBefore: number,
    finishedBefore: number,
    finishedStatuses: readonly number[],
  ): AsyncGenerator<string> {
    for (const table of ['job_template', 'job_plan'] as const) {
      for (let after = 0; ;) {
        const rows = await this.db
          .selectFrom(table)
          .select(['id', 'body'])
          .where('id', '>', after)
          .orderBy('id')
          .limit(500)
          .execute();
        for (const r of rows) yield r.body;
        if (rows.length < 500) break;
        after = rows[rows.length - 1]!.id;
      }
    }
    for (const r of await this.db.selectFrom('cron_job').select('vars').execute()) yield r.vars;
    const specs = await this.db
      .selectFrom('step_instance as s')
      .innerJoin('job_instance as j', 'j.id', 's.job_instance_id')
      .select('s.spec')
      .where('s.type', '=', StepType.FILE)
      .where('j.create_time', '<', createdBefore)
      .where((eb) =>
        eb.or([eb('j.status', 'not in', finishedStatuses), eb('j.end_time', '>=', finishedBefore)]),
      )
      .execute();
    for (const r of specs) yield r.spec;
  }

  async getStoredFiles(paths: readonly string[]): Promise<StoredFile[]> {
    const rows: StoredFile[] = [];
    for (const part of idChunks(paths))
      rows.push(...(await this.db.selectFrom('stored_file').selectAll().where('path', 'in', part).execute()));
    return rows;
  }

  /** The file of `paths` named `fileName` (the uploads of one step have distinct names). */
  async findStoredFile(paths: readonly string[], fileName: string): Promise<StoredFile | undefined> {
    for (const part of idChunks(paths)) {
      const row = await this.db
        .selectFrom('stored_file')
        .selectAll()
        .where('path', 'in', part)
        .where('file_name', '=', fileName)
        .executeTakeFirst();
      if (row) return row;
    }
    return undefined;
  }

  /**
   * Takes an upload URL for one upload, atomically: of two requests racing on one URL only one
   * gets the row; the other is refused before it writes anything. The claim marks the token hash,
   * so the URL stops answering until the upload completes or is released, and names the claimant,
   * so that a claim whose process is gone (killed mid-upload) is taken over by the next request.
   */
  async claimUpload(
    tokenHash: string,
    now: number,
    claimant: UploadClaimant,
  ): Promise<StoredFile | undefined> {
    const claimed = claimedMark(tokenHash);
    return this.db
      .updateTable('stored_file')
      .set({ upload_token_hash: claimed, upload_claimed_by: claimant.id })
      .where('upload_token_hash', 'in', [tokenHash, claimed])
      .where('expires_at', '>=', now)
      .where((eb) => eb.or([eb('upload_token_hash', '=', tokenHash), claimLeftBehind(eb, claimant)]))
      .returningAll()
      .executeTakeFirst();
  }

  /** An upload failed: the URL opens again for another try, unless its claim was taken over. */
  async releaseUpload(tokenHash: string, claimantId: string): Promise<void> {
    await this.db
      .updateTable('stored_file')
      .set({ upload_token_hash: tokenHash, upload_claimed_by: null })
      .where('upload_token_hash', '=', claimedMark(tokenHash))
      .where('upload_claimed_by', '=', claimantId)
      .execute();
  }

  /**
   * The bytes of an upload arrived: the upload URL closes and the file becomes usable. False when
   * the claim is no longer the claimant's (another upload took it over and owns the file).
   */
  async completeUpload(
    tokenHash: string,
    claimantId: string,
    size: number,
    sha256: string,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('stored_file')
      .set({ size, sha256, upload_token_hash: null, upload_claimed_by: null })
      .where('upload_token_hash', '=', claimedMark(tokenHash))
      .where('upload_claimed_by', '=', claimantId)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Stores file logs in one transaction; when the store refuses it, each row is tried alone, so
   * one row the store cannot take (text PostgreSQL refuses, such as a NUL in a message) costs its
   * own log only. The rows refused; throws when every row is (a passing failure).
   */
  async upsertFileLogs(rows: readonly FileLog[]): Promise<FileLog[]> {
    if (rows.length === 0) return [];
    try {
      await this.db.transaction().execute((tx) => upsertLogs(tx, rows));
      return [];
    } catch (err) {
      const refused: FileLog[] = [];
      for (const r of rows)
        await this.db
          .transaction()
          .execute((tx) => upsertLogs(tx, [r]))
          .catch(() => refused.push(r));
      if (refused.length === rows.length) throw err;
      return refused;
    }
  }

  /**
   * A file step's logs of one execution; with `only`, those of these hosts (their downloads and
   * their own uploads) and, with `uploadsTo`, the sources' uploads to them and the sources'
   * failures (which name no target). The key leads with (step, execution, host): a host's own
   * rows are read by it; the uploads to a host are filtered within the step's rows in the store,
   * so a reply of one host no longer carries the whole step's logs. The order is the stored
   * src_path's, where a long path has its stand-in: such a row sorts by its digest rather than its
   * text, in the same place at every read and on servers of either version.
   */
  async fileLogs(
    stepInstanceId: number,
    executeCount: number,
    only?: { hosts: readonly number[]; uploadsTo: boolean },
  ): Promise<FileLog[]> {
    let q = this.db
      .selectFrom('file_log')
      .selectAll()
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount);
    if (only) {
      const hosts = only.hosts.length > 0 ? only.hosts : [0];
      q = q.where((eb) =>
        only.uploadsTo
          ? eb.or([
              eb('host_id', 'in', hosts),
              eb.and([eb('mode', '=', 0), eb('dest_host_id', 'in', [...hosts, 0])]),
            ])
          : eb('host_id', 'in', hosts),
      );
    }
    const rows = await q.orderBy('host_id').orderBy('mode').orderBy('src_path').execute();
    return rows.map(wholePaths);
  }
}

/**
 * The longest path a file log's key holds as it is, in UTF-8 bytes. The key is one entry of the
 * primary key's btree, which PostgreSQL caps at 2,704 bytes (a third of an 8 KB page), and random
 * text does not compress: two paths of 1,000 bytes leave some 700 for the labels ("cloud:IPv4",
 * a few dozen bytes each), the four numbers (24) and the entry's and the texts' headers. Paths
 * of ordinary transfers are far shorter and are keyed as an older server keys them.
 */
const KEY_PATH_MAX_BYTES = 1000;

/**
 * Begins a longer path's stand-in in the key, followed by the hex SHA-256 of the path: 72
 * characters whatever its length, and the same ones at each write of its log, which the upsert
 * then updates. No path a file log names begins so: host paths are absolute ("REGEX:" patterns
 * end one), a server source's are "<scope id>/<uuid>/<user>/<name>", a source that failed may
 * name none (''), and the relative paths an agent refuses to serve are never one plain name
 * like this.
 */
const LONG_PATH_MARK = '#sha256:';

function keyed(path: string): { key: string; full: string | null } {
  if (Buffer.byteLength(path, 'utf8') <= KEY_PATH_MAX_BYTES) return { key: path, full: null };
  return { key: LONG_PATH_MARK + crypto.createHash('sha256').update(path, 'utf8').digest('hex'), full: path };
}

function keyedPaths(r: FileLog): Insertable<FileLogTable> {
  const src = keyed(r.src_path);
  const dest = keyed(r.dest_path);
  return { ...r, src_path: src.key, src_path_full: src.full, dest_path: dest.key, dest_path_full: dest.full };
}

function wholePaths({ src_path_full, dest_path_full, ...r }: Selectable<FileLogTable>): FileLog {
  return { ...r, src_path: src_path_full ?? r.src_path, dest_path: dest_path_full ?? r.dest_path };
}

/** 18 values a row: 1,000 rows stay under SQLite's 32,766 bound values a statement. */
const LOG_ROWS_PER_STATEMENT = 1000;

/** SQLite parses a chain of ORs as deep as it is long, and refuses a depth over 1,000. */
const LONG_ROWS_PER_DELETE = 100;

/**
 * The rows' keys are distinct (PostgreSQL refuses a statement that updates one row twice). Run in
 * a transaction: a log with a long path may replace a row of it keyed by the whole path.
 */
async function upsertLogs(db: Kysely<Database>, rows: readonly FileLog[]): Promise<void> {
  for (const part of idChunks(rows, LOG_ROWS_PER_STATEMENT)) {
    const stored = part.map(keyedPaths);
    // A long path's log may be stored under the whole path: written before migration 0049, or
    // by a server of the older version (SQLite has no limit, and a PostgreSQL index entry holds
    // a path that compresses). Left there, the log would show twice, that copy going stale.
    const long = part.filter((_, i) => stored[i]?.src_path_full != null || stored[i]?.dest_path_full != null);
    for (const some of idChunks(long, LONG_ROWS_PER_DELETE))
      await db
        .deleteFrom('file_log')
        .where((eb) =>
          eb.or(
            some.map((r) =>
              eb.and({
                step_instance_id: r.step_instance_id,
                execute_count: r.execute_count,
                host_id: r.host_id,
                mode: r.mode,
                src_label: r.src_label,
                src_path: r.src_path,
                dest_label: r.dest_label,
                dest_path: r.dest_path,
              }),
            ),
          ),
        )
        .execute();
    await db
      .insertInto('file_log')
      .values(stored)
      .onConflict((oc) =>
        oc
          .columns([
            'step_instance_id',
            'execute_count',
            'host_id',
            'mode',
            'src_label',
            'src_path',
            'dest_label',
            'dest_path',
          ])
          .doUpdateSet((eb) => ({
            status: eb.ref('excluded.status'),
            size: eb.ref('excluded.size'),
            bytes: eb.ref('excluded.bytes'),
            speed: eb.ref('excluded.speed'),
            content: eb.ref('excluded.content'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
      )
      .execute();
  }
}

/** See FileStore.useStoredFiles; `db` may be a transaction that stores what names the files. */
export async function markStoredFilesUsed(
  db: Kysely<Database>,
  paths: readonly string[],
  now: number,
): Promise<number> {
  let n = 0;
  for (const part of idChunks([...new Set(paths)])) {
    const r = await db
      .updateTable('stored_file')
      .set({ used_at: now })
      .where('path', 'in', part)
      .where('size', 'is not', null)
      .executeTakeFirst();
    n += Number(r.numUpdatedRows);
  }
  return n;
}
