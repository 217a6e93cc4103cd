/**
 * Writes audit entries in batches: an API write costs one queued object, and the entries queued
 * while a write is in flight go to the store together in the next one, so the batches grow with
 * the load instead of waiting for it. An idle server writes an entry in the turn after its reply
 * left, while the job the call started is out on its hosts, not a fixed delay later, when that
 * job's results come back and the write's commit would hold them up. An entry can be lost only
 * if the process dies before its write; a failed write is logged with the count of entries it
 * lost (never their content).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AuditRecord, AuditStore } from '../store/audit-store.js';

/** Rows per statement: 12 parameters each stays far under every engine's bound-parameter limit. */
const CHUNK = 500;

export class AuditTrail {
  private queue: (AuditRecord & { at: number })[] = [];
  private scheduled = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: AuditStore,
    private readonly log: FastifyBaseLogger,
  ) {}

  add(entry: AuditRecord): void {
    this.queue.push({ ...entry, at: Date.now() });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** Writes everything queued so far (after a write in flight, with what came meanwhile); resolves when stored. */
  flush(): Promise<void> {
    this.writing = this.writing.then(async () => {
      const batch = this.queue;
      this.queue = [];
      for (let i = 0; i < batch.length; i += CHUNK) {
        const chunk = batch.slice(i, i + CHUNK);
        try {
          await this.store.recordMany(chunk);
        } catch (err) {
          this.log.error({ err, lost: chunk.length }, 'audit entries could not be stored');
        }
      }
    });
    return this.writing;
  }
}
