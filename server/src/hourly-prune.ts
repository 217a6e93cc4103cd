/**
 * Pruning of records kept for a number of days (the audit log, job events, a cluster's
 * leftovers): once at start, then every hour. Each server of a cluster runs it; deletes are idempotent, so that is safe.
 */
import type { FastifyBaseLogger } from 'fastify';

const EVERY_MS = 3600_000;
export const DAY_MS = 24 * 3600_000;

export function startHourlyPrune(opts: {
  /** What is pruned, for the log lines. */
  what: string;
  /** 0 keeps everything (nothing runs). */
  retentionDays: number;
  /** Removes what is older than `before` (ms); resolves with how many it removed. */
  prune: (before: number) => Promise<number>;
  log: FastifyBaseLogger;
}): { stop(): void } {
  const { what, retentionDays, log } = opts;
  if (retentionDays <= 0) return { stop: () => undefined };
  const run = () =>
    opts
      .prune(Date.now() - retentionDays * DAY_MS)
      .then((n) => {
        if (n > 0) log.info({ removed: n, retentionDays }, `${what} past retention removed`);
      })
      .catch((err: unknown) => log.error({ err }, `${what} retention failed`));
  void run();
  const timer = setInterval(() => void run(), EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
