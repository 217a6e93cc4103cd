/**
 * Registrations that arrive while a commit is in flight wait for it and then share the next one,
 * so a fleet rolled out at once registers at the store's commit rate times the batch instead of
 * one commit per agent (SQLite serialises commits; 50,000 agents would wait on each other).
 * There is no added delay: a lone registration commits at once.
 */
import type { Host, HostRegistration, InventoryStore } from '../store/inventory-store.js';

/** Keeps one transaction short enough not to hold the store's write lock for long. */
const MAX_BATCH = 500;

interface Waiting {
  reg: HostRegistration;
  resolve: (host: Host) => void;
  reject: (err: unknown) => void;
}

export class RegistrationBatch {
  private waiting: Waiting[] = [];
  private committing = false;

  constructor(private readonly inventory: InventoryStore) {}

  register(reg: HostRegistration): Promise<Host> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ reg, resolve, reject });
      if (!this.committing) void this.commitWaiting();
    });
  }

  private async commitWaiting(): Promise<void> {
    this.committing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_BATCH);
      try {
        const hosts = await this.inventory.registerAgentHosts(batch.map((w) => w.reg));
        batch.forEach((w, i) => w.resolve(hosts[i]!));
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        // One bad registration must not fail the others: each goes again on its own.
        else
          for (const w of batch)
            this.inventory.registerAgentHosts([w.reg]).then(([h]) => w.resolve(h!), w.reject);
      }
    }
    this.committing = false;
  }
}
