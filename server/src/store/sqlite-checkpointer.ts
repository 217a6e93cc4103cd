/**
 * Checkpoints of the SQLite write-ahead log, on a thread of their own.
 *
 * SQLite copies the WAL back into the database file (a checkpoint, two fsyncs) inside whichever
 * commit finds the WAL past 1,000 pages; better-sqlite3 is synchronous, so that commit stalls the
 * server's only thread for as long as the copy and its syncs take: every 4 MiB of stored output,
 * and at random moments for any other write. Here a worker thread with its own connection runs
 * a passive checkpoint every interval instead, and the server's connection checkpoints itself
 * only as a backstop, should the worker fall far behind or die. Durability does not change: a
 * commit is durable in the WAL whoever copies it later, and a checkpoint cut short by a crash
 * is redone from the WAL on the next open.
 */
import { Worker } from 'node:worker_threads';
import type SQLite from 'better-sqlite3';

const INTERVAL_MS = 250;
/** The server's own checkpoint: only past this many WAL pages (256 MiB of 4 KiB pages). */
const BACKSTOP_PAGES = 65_536;

export interface Checkpointer {
  stop(): Promise<void>;
}

/** Rare and not fatal (the backstop checkpoints): a process warning, on stderr. */
const warn = (message: string) => process.emitWarning(message, 'JobfleetStoreWarning');

export function startCheckpointer(sqlite: SQLite.Database, file: string): Checkpointer {
  const worker = new Worker(new URL('./sqlite-checkpoint-worker.js', import.meta.url), {
    workerData: { file, intervalMs: INTERVAL_MS },
  });
  // An idle server may exit while the worker ticks; the store closes it on the way out.
  worker.unref();
  sqlite.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  let running = true;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (msg: { error?: string }) => {
    if (msg.error) warn(`WAL checkpoint failed: ${msg.error}`);
  });
  worker.on('error', (err) => {
    running = false;
    warn(`WAL checkpointer stopped: ${err.message}`);
    // Without the worker, the server's connection checkpoints as SQLite does by default.
    if (sqlite.open) sqlite.pragma('wal_autocheckpoint = 1000');
  });
  return {
    async stop() {
      if (running) worker.postMessage('stop');
      running = false;
      await exited;
    },
  };
}
