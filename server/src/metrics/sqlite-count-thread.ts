/**
 * The thread that reads the store's counts for /metrics on SQLite (see store-figures.ts), with
 * its own connection to the database file. It starts at the first scrape, so a server nobody
 * scrapes has none, and again at the next scrape after it failed.
 */
import { Worker } from 'node:worker_threads';
import type { StoreCounts } from './store-figures.js';

/** What the worker answers a request with. */
export type CountReply = { id: number; counts: StoreCounts } | { id: number; error: string };

interface Waiting {
  resolve(counts: StoreCounts): void;
  reject(err: Error): void;
}

export class SqliteCountThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  constructor(private readonly file: string) {}

  read(): Promise<StoreCounts> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage(id);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private start(): Worker {
    const worker = new Worker(new URL('./sqlite-count-worker.js', import.meta.url), {
      workerData: { file: this.file },
    });
    // A scrape in flight must not keep a stopping server alive.
    worker.unref();
    worker.on('message', (reply: CountReply) => {
      const waiting = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if ('error' in reply) waiting?.reject(new Error(reply.error));
      else waiting?.resolve(reply.counts);
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the metrics count thread stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}
