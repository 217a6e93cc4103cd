/**
 * Registrations share commits (group-commit.ts), with their audit entries, so a fleet rolled
 * out at once registers at the store's commit rate times the batch instead of two synced
 * commits per agent.
 */
import { GroupCommit } from '../group-commit.js';
import type { AuditRecord } from '../store/audit-store.js';
import type { Host, HostRegistration, InventoryStore } from '../store/inventory-store.js';

/** Keeps one transaction short enough not to hold the store's write lock for long. */
const MAX_BATCH = 500;

type AuditOf = (host: Host) => AuditRecord & { at: number };

export class RegistrationBatch {
  private readonly commits: GroupCommit<{ reg: HostRegistration; auditOf: AuditOf }, Host>;

  constructor(inventory: InventoryStore) {
    this.commits = new GroupCommit(
      (batch) =>
        inventory.registerAgentHosts(
          batch.map((w) => w.reg),
          (host, i) => batch[i]!.auditOf(host),
        ),
      MAX_BATCH,
    );
  }

  /** Stored, with its audit entry, once the commit that holds it is durable. */
  register(reg: HostRegistration, auditOf: AuditOf): Promise<Host> {
    return this.commits.add({ reg, auditOf });
  }
}
