/**
 * Agent sessions opened together. Every hello in cluster mode opens a session (a new epoch for
 * the host, committed before the agent is welcomed, since results are fenced by it); after a
 * server restart or a failover the whole fleet says hello at once, and one synced commit per
 * agent made the roll-out as slow as the database's commit rate. Hellos that arrive in one turn
 * of the event loop, or while a batch is being committed, share the next batch: one statement,
 * one commit. Each agent is answered only after the commit that holds its session. A host
 * appears at most once in a batch (a second hello of the same host, from a newer connection,
 * goes in the next one and gets the higher epoch).
 */

/** Keeps one statement, and the row locks it holds, small. */
const MAX_BATCH = 500;

interface Waiting {
  hostId: number;
  resolve: (epoch: number) => void;
  reject: (err: unknown) => void;
}

export class SessionBatch {
  private waiting: Waiting[] = [];
  private committing = false;

  constructor(
    /** Opens the hosts' sessions in one commit; answers each host's new epoch. */
    private readonly openMany: (hostIds: number[]) => Promise<Map<number, number>>,
    /** Called with the sessions of each commit, once it is durable. */
    private readonly opened: (epochs: Map<number, number>) => void,
  ) {}

  open(hostId: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ hostId, resolve, reject });
      if (!this.committing) {
        this.committing = true;
        setImmediate(() => void this.commitWaiting());
      }
    });
  }

  private async commitWaiting(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.take();
      try {
        this.settle(batch, await this.openMany(batch.map((w) => w.hostId)));
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        // One host's failure must not fail the others: each goes again on its own.
        else for (const w of batch) this.openMany([w.hostId]).then((e) => this.settle([w], e), w.reject);
      }
    }
    this.committing = false;
  }

  /** The next batch: waiting hellos in arrival order, each host once, at most MAX_BATCH. */
  private take(): Waiting[] {
    const batch: Waiting[] = [];
    const later: Waiting[] = [];
    const hosts = new Set<number>();
    for (const w of this.waiting) {
      if (batch.length < MAX_BATCH && !hosts.has(w.hostId)) {
        hosts.add(w.hostId);
        batch.push(w);
      } else later.push(w);
    }
    this.waiting = later;
    return batch;
  }

  private settle(batch: readonly Waiting[], epochs: Map<number, number>): void {
    for (const w of batch) {
      const epoch = epochs.get(w.hostId);
      if (epoch === undefined) w.reject(new Error(`no session stored for host ${w.hostId}`));
      else w.resolve(epoch);
    }
    this.opened(epochs);
  }
}
