/**
 * Requests that share commits: those that arrive in one turn of the event loop, or while a
 * commit is in flight, are stored together in the next one (at most `max` of them), and each is
 * answered only after the commit that holds it. The wait for the end of the turn adds no timer:
 * a lone request commits as soon as the requests read with it have been parsed (SQLite commits
 * block the thread, so without it every request would find the store idle and commit alone).
 * One bad request must not fail the others: when a shared commit fails, each of its requests
 * is committed again on its own.
 */
interface Waiting<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<In, Out> {
  private waiting: Waiting<In, Out>[] = [];
  private committing = false;

  constructor(
    /** Stores the items in one commit; answers one result per item, in their order. */
    private readonly commitMany: (items: In[]) => Promise<Out[]>,
    /** Keeps one commit, and the locks it holds, short. */
    private readonly max: number,
    /** Items of one key never share a commit: a later one waits for the next, in arrival order. */
    private readonly keyOf?: (item: In) => unknown,
  ) {}

  add(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
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
        const out = await this.commitMany(batch.map((w) => w.item));
        batch.forEach((w, i) => w.resolve(out[i] as Out));
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        else
          for (const w of batch) this.commitMany([w.item]).then(([out]) => w.resolve(out as Out), w.reject);
      }
    }
    this.committing = false;
  }

  /** The next commit's requests: in arrival order, each key once, at most `max`. */
  private take(): Waiting<In, Out>[] {
    const keyOf = this.keyOf;
    if (!keyOf) return this.waiting.splice(0, this.max);
    const batch: Waiting<In, Out>[] = [];
    const later: Waiting<In, Out>[] = [];
    const keys = new Set<unknown>();
    for (const w of this.waiting) {
      const key = keyOf(w.item);
      if (batch.length < this.max && !keys.has(key)) {
        keys.add(key);
        batch.push(w);
      } else later.push(w);
    }
    this.waiting = later;
    return batch;
  }
}
