/**
 * The SQLite count thread's side (see sqlite-count-thread.ts): its own connection to the
 * database file, read-only, answering each request with the store's counts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database } from '../store/schema.js';
import type { CountReply } from './sqlite-count-thread.js';
import { readStoreCounts } from './store-figures.js';

const { file } = workerData as { file: string };
const sqlite = new SQLite(file, { readonly: true, fileMustExist: true });
// The server's checkpoints and writes hold SQLite's locks only for moments; wait those out.
sqlite.pragma('busy_timeout = 5000');
const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });

parentPort?.on('message', (id: number) => {
  readStoreCounts(db).then(
    (counts) => parentPort?.postMessage({ id, counts } satisfies CountReply),
    (err: unknown) => parentPort?.postMessage({ id, error: (err as Error).message } satisfies CountReply),
  );
});
