/**
 * Writes audit entries in batches: an API write costs one queued object, and entries reach the
 * store together, one statement every few milliseconds, instead of one commit per call. An entry
 * can be lost only if the process dies within that delay; a failed write is logged with the
 * count of entries it lost (never their content).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AuditRecord, AuditStore } from '../store/audit-store.js';

/** Rows per statement: 12 parameters each stays far under every engine's bound-parameter limit. */
const CHUNK = 500;

export class AuditTrail {
  private queue: (AuditRecord & { at: number })[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: AuditStore,
    private readonly log: FastifyBaseLogger,
    private readonly delayMs = 20,
  ) {}

  add(entry: AuditRecord): void {
    this.queue.push({ ...entry, at: Date.now() });
    this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Writes everything queued so far; resolves when it is stored. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    this.writing = this.writing.then(async () => {
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
