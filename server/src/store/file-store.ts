/**
 * Storage operations for file distribution: files the server holds (local uploads and
 * push_config_file contents) and the per-file logs of file steps.
 */
import type { Kysely, Selectable } from 'kysely';
import type { Database, FileLogTable, StoredFileTable } from './schema.js';

export type StoredFile = Selectable<StoredFileTable>;
export type FileLog = Selectable<FileLogTable>;

export class FileStore {
  constructor(private readonly db: Kysely<Database>) {}

  async createStoredFiles(rows: StoredFile[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.insertInto('stored_file').values(rows).execute();
  }

  async findByUploadToken(tokenHash: string): Promise<StoredFile | undefined> {
    return this.db
      .selectFrom('stored_file')
      .selectAll()
      .where('upload_token_hash', '=', tokenHash)
      .executeTakeFirst();
  }

  async getStoredFiles(paths: readonly string[]): Promise<StoredFile[]> {
    if (paths.length === 0) return [];
    return this.db.selectFrom('stored_file').selectAll().where('path', 'in', paths).execute();
  }

  /** The bytes arrived: the upload URL closes and the file becomes usable. */
  async completeUpload(path: string, size: number, sha256: string): Promise<boolean> {
    const r = await this.db
      .updateTable('stored_file')
      .set({ size, sha256, upload_token_hash: null })
      .where('path', '=', path)
      .where('upload_token_hash', 'is not', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async upsertFileLogs(rows: readonly FileLog[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.transaction().execute(async (tx) => {
      for (const r of rows) {
        await tx
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
    });
  }

  async fileLogs(stepInstanceId: number, executeCount: number): Promise<FileLog[]> {
    return this.db
      .selectFrom('file_log')
      .selectAll()
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .orderBy('host_id')
      .orderBy('mode')
      .orderBy('src_path')
      .execute();
  }
}
