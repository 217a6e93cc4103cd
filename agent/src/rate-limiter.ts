/**
 * Paces a byte stream (or several sharing one limit) to at most `bytesPerSecond`.
 *
 * It keeps the time at which every byte reserved so far will have passed at the limit; a
 * chunk reserves its share after that and waits until its turn. The schedule starts empty and
 * idle time is not saved up, so N bytes always take at least N / limit seconds, also when
 * many streams share one limiter (they interleave in the order they ask).
 */
export class RateLimiter {
  private freeAt = performance.now();

  /** `bytesPerSecond` 0 means no limit. */
  constructor(private readonly bytesPerSecond: number) {}

  /** Reserves `bytes` and returns how many milliseconds to wait before sending them. */
  reserve(bytes: number): number {
    if (this.bytesPerSecond <= 0) return 0;
    const now = performance.now();
    this.freeAt = Math.max(this.freeAt, now) + (bytes * 1000) / this.bytesPerSecond;
    return this.freeAt - now;
  }

  /** Resolves when `bytes` may be sent. */
  wait(bytes: number, signal?: AbortSignal): Promise<void> {
    const ms = this.reserve(bytes);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason as Error);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.ceil(ms));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
