/**
 * Registrations share commits: those that arrive in one turn of the event loop, or while a
 * commit is in flight, are stored together in the next one, with their audit entries, so a
 * fleet rolled out at once registers at the store's commit rate times the batch instead of two
 * synced commits per agent. Each is answered only after the commit that holds it. The wait for
 * the end of the turn adds no timer: a lone registration commits as soon as the requests read
 * with it have been parsed (SQLite commits block the thread, so without it every registration
 * found the store idle and committed alone).
 */
import type { AuditRecord } from '../store/audit-store.js';
import type { Host, HostRegistration, InventoryStore } from '../store/inventory-store.js';

/** Keeps one transaction short enough not to hold the store's write lock for long. */
const MAX_BATCH = 500;

type AuditOf = (host: Host) => AuditRecord & { at: number };

interface Waiting {
  reg: HostRegistration;
  auditOf: AuditOf;
  resolve: (host: Host) => void;
  reject: (err: unknown) => void;
}

export class RegistrationBatch {
  private waiting: Waiting[] = [];
  private committing = false;

  constructor(private readonly inventory: InventoryStore) {}

  register(reg: HostRegistration, auditOf: AuditOf): Promise<Host> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ reg, auditOf, resolve, reject });
      if (!this.committing) {
        this.committing = true;
        setImmediate(() => void this.commitWaiting());
      }
    });
  }

  private async commitWaiting(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_BATCH);
      try {
        const hosts = await this.store(batch);
        batch.forEach((w, i) => w.resolve(hosts[i]!));
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        // One bad registration must not fail the others: each goes again on its own.
        else for (const w of batch) this.store([w]).then(([h]) => w.resolve(h!), w.reject);
      }
    }
    this.committing = false;
  }

  private store(batch: readonly Waiting[]): Promise<Host[]> {
    return this.inventory.registerAgentHosts(
      batch.map((w) => w.reg),
      (host, i) => batch[i]!.auditOf(host),
    );
  }
}
