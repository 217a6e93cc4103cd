/** Replies of repeated reads, taken in the order the reads were made. */
export type ReadOutcome<T> = { value: T } | { error: unknown };

/**
 * Orders the replies of reads a page repeats (live reloads, a filter typed key by key): a reply
 * is taken only if no reply of a later read was taken before it, and `abortAll` drops every read
 * still out (call it when the inputs change, and on unmount). Aborting each read as the next one
 * starts would not do for live reloads: while events keep coming, a reply slower than the
 * reload interval would never land.
 */
export class ReadOrder {
  private issued = 0;
  private taken = 0;
  private readonly out = new Set<AbortController>();

  /** The read's outcome, or undefined when it was aborted or overtaken by a later read. */
  async read<T>(read: (signal: AbortSignal) => Promise<T>): Promise<ReadOutcome<T> | undefined> {
    const mine = ++this.issued;
    const ctl = new AbortController();
    this.out.add(ctl);
    try {
      const value = await read(ctl.signal);
      return this.take(mine, ctl) ? { value } : undefined;
    } catch (error) {
      return this.take(mine, ctl) ? { error } : undefined;
    } finally {
      this.out.delete(ctl);
    }
  }

  abortAll(): void {
    for (const ctl of this.out) ctl.abort();
    this.out.clear();
  }

  private take(mine: number, ctl: AbortController): boolean {
    if (ctl.signal.aborted || mine < this.taken) return false;
    this.taken = mine;
    return true;
  }
}
