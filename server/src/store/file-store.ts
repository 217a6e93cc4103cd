/**
 * Storage operations for file distribution: files the server holds (local uploads and
 * push_config_file contents) and the per-file logs of file steps.
 */
import type { Kysely, Selectable } from 'kysely';
import { idChunks } from './id-chunks.js';
import type { Database, FileLogTable, StoredFileTable } from './schema.js';

export type StoredFile = Selectable<StoredFileTable>;
export type FileLog = Selectable<FileLogTable>;

/** The token hash of an upload in progress; a token never hashes to a value with this prefix. */
function claimedMark(tokenHash: string): string {
  return `claimed:${tokenHash}`;
}

export class FileStore {
  constructor(private readonly db: Kysely<Database>) {}

  async createStoredFiles(rows: StoredFile[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.insertInto('stored_file').values(rows).execute();
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
   * Takes an open upload URL for one upload, atomically: of two requests racing on one URL only
   * one gets the row; the other is refused before it writes anything. The claim marks the token
   * hash, so the URL stops answering until the upload completes or is released.
   */
  async claimUpload(tokenHash: string, now: number): Promise<StoredFile | undefined> {
    const r = await this.db
      .updateTable('stored_file')
      .set({ upload_token_hash: claimedMark(tokenHash) })
      .where('upload_token_hash', '=', tokenHash)
      .where('expires_at', '>=', now)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) return undefined;
    return this.db
      .selectFrom('stored_file')
      .selectAll()
      .where('upload_token_hash', '=', claimedMark(tokenHash))
      .executeTakeFirst();
  }

  /** A claimed upload failed: the URL opens again for another try. */
  async releaseUpload(tokenHash: string): Promise<void> {
    await this.db
      .updateTable('stored_file')
      .set({ upload_token_hash: tokenHash })
      .where('upload_token_hash', '=', claimedMark(tokenHash))
      .execute();
  }

  /** The bytes of a claimed upload arrived: the upload URL closes and the file becomes usable. */
  async completeUpload(tokenHash: string, size: number, sha256: string): Promise<boolean> {
    const r = await this.db
      .updateTable('stored_file')
      .set({ size, sha256, upload_token_hash: null })
      .where('upload_token_hash', '=', claimedMark(tokenHash))
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Stores file logs in one transaction; when the store refuses it, each row is tried alone, so
   * one row the store cannot take (a key over PostgreSQL's index row limit: paths of some 2.7 KB)
   * costs its own log only. The rows refused; throws when every row is (a passing failure).
   */
  async upsertFileLogs(rows: readonly FileLog[]): Promise<FileLog[]> {
    if (rows.length === 0) return [];
    try {
      await this.db.transaction().execute((tx) => upsertLogs(tx, rows));
      return [];
    } catch (err) {
      const refused: FileLog[] = [];
      for (const r of rows) await upsertLogs(this.db, [r]).catch(() => refused.push(r));
      if (refused.length === rows.length) throw err;
      return refused;
    }
  }

  /**
   * A file step's logs of one execution; with `only`, those of these hosts (their downloads and
   * their own uploads) and, with `uploadsTo`, the sources' uploads to them and the sources'
   * failures (which name no target). The key leads with (step, execution, host): a host's own
   * rows are read by it; the uploads to a host are filtered within the step's rows in the store,
   * so a reply of one host no longer carries the whole step's logs.
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
    return q.orderBy('host_id').orderBy('mode').orderBy('src_path').execute();
  }
}

async function upsertLogs(db: Kysely<Database>, rows: readonly FileLog[]): Promise<void> {
  for (const r of rows) {
    await db
      .insertInto('file_log')
      .values(r)
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
          .doUpdateSet({
            status: r.status,
            size: r.size,
            bytes: r.bytes,
            speed: r.speed,
            content: r.content,
            updated_at: r.updated_at,
          }),
      )
      .execute();
  }
}
