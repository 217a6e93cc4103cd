/**
 * The SQLite checkpointer's thread (see sqlite-checkpointer.ts): its own connection to the
 * database file, a passive checkpoint every interval, and a clean close when told to stop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';

const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new SQLite(file);

function checkpoint(): void {
  try {
    // PASSIVE waits for no reader or writer: it copies what it can and leaves the rest for next time.
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    parentPort?.postMessage({ error: (err as Error).message });
  }
}

const timer = setInterval(checkpoint, intervalMs);
parentPort?.on('message', (msg: unknown) => {
  if (msg !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
