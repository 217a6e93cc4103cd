/** The bytes of stored files as numbered chunks, where servers share the database. */
import type { Kysely } from 'kysely';
import { idChunks } from './id-chunks.js';
import type { Database } from './schema.js';

export class FileChunkStore {
  constructor(private readonly db: Kysely<Database>) {}

  async put(path: string, seq: number, data: Buffer): Promise<void> {
    await this.db.insertInto('stored_file_chunk').values({ path, seq, data }).execute();
  }

  async get(path: string, seq: number): Promise<Buffer | undefined> {
    const row = await this.db
      .selectFrom('stored_file_chunk')
      .select('data')
      .where('path', '=', path)
      .where('seq', '=', seq)
      .executeTakeFirst();
    return row ? Buffer.from(row.data) : undefined;
  }

  async has(path: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('stored_file_chunk')
      .select('seq')
      .where('path', '=', path)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async deleteAll(path: string): Promise<void> {
    await this.deleteAllOf([path]);
  }

  async deleteAllOf(paths: readonly string[]): Promise<void> {
    // A hundred files a statement: one large file alone is thousands of chunk rows.
    for (const part of idChunks(paths, 100))
      await this.db.deleteFrom('stored_file_chunk').where('path', 'in', part).execute();
  }
}
