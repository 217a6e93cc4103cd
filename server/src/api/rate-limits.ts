/**
 * Per-address and per-app request rates on the BK-JOB API: fixed one-second windows held in
 * memory, so each server of a cluster counts what reaches it (a client spread over N servers
 * gets up to N times the rate; a load balancer with sticky addresses keeps it exact).
 *
 * The address is counted before authentication, so guessing secrets is throttled too.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { ServerConfig } from '../config.js';
import { ApiError } from './error-catalogue.js';

/** A refusal, and whether it is the first in its window (only that one is worth an audit entry). */
export class RateLimited extends ApiError {
  constructor(
    who: string,
    limit: number,
    retryMs: number,
    readonly firstInWindow: boolean,
  ) {
    super('API_RATE_LIMITED', { who, limit, retryMs });
  }
}

class WindowLimit {
  private readonly limiter: RateLimiterMemory | undefined;

  constructor(
    private readonly perSecond: number,
    keyPrefix: string,
  ) {
    this.limiter =
      perSecond > 0 ? new RateLimiterMemory({ points: perSecond, duration: 1, keyPrefix }) : undefined;
  }

  async take(key: string, who: string): Promise<void> {
    if (!this.limiter) return;
    try {
      await this.limiter.consume(key);
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      throw new RateLimited(who, this.perSecond, res.msBeforeNext, res.consumedPoints === this.perSecond + 1);
    }
  }
}

export class ApiRateLimits {
  private readonly byAddress: WindowLimit;
  private readonly byApp: WindowLimit;

  constructor(config: Pick<ServerConfig, 'apiRatePerAddress' | 'apiRatePerApp'>) {
    this.byAddress = new WindowLimit(config.apiRatePerAddress, 'address');
    this.byApp = new WindowLimit(config.apiRatePerApp, 'app');
  }

  takeAddress(ip: string): Promise<void> {
    return this.byAddress.take(ip, `address ${ip}`);
  }

  takeApp(appCode: string): Promise<void> {
    return this.byApp.take(appCode, `app ${appCode}`);
  }
}
