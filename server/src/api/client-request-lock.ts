/**
 * Submissions that carry the same `client_request_id` from one app run one at a time, so a
 * client's retry sent while its first request is still being handled finds the job that one
 * created (priorSubmission) instead of creating a second. Per server: a retry that reaches
 * another server of a cluster at that very moment is not held back.
 */
export class ClientRequestLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(appCode: string, clientRequestId: unknown, fn: () => Promise<T>): Promise<T> {
    if (typeof clientRequestId !== 'string' || clientRequestId === '') return fn();
    const key = `${appCode}\u0000${clientRequestId}`;
    const before = this.tails.get(key) ?? Promise.resolve();
    let release = () => undefined as void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
