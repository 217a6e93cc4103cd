/**
 * Failed sign-ins are counted per user name and per client address; once either count reaches
 * its limit within the window, further attempts are refused (even with the right password)
 * until the window ends. A successful sign-in clears the user name's count.
 *
 * Counters live in the server's memory: on a cluster each server counts on its own, so an
 * attacker spreading attempts gets at most (servers × limit) tries per window.
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError } from '../api/error-catalogue.js';

export interface LoginLimits {
  perUser: number;
  perAddress: number;
  windowSeconds: number;
}

export class LoginLimiter {
  private readonly byUser: RateLimiterMemory;
  private readonly byAddress: RateLimiterMemory;

  constructor(private readonly limits: LoginLimits) {
    this.byUser = new RateLimiterMemory({
      keyPrefix: 'login-user',
      points: limits.perUser,
      duration: limits.windowSeconds,
    });
    this.byAddress = new RateLimiterMemory({
      keyPrefix: 'login-address',
      points: limits.perAddress,
      duration: limits.windowSeconds,
    });
  }

  /** Throws LOGIN_RATE_LIMITED when the user name or the address has used up its failures. */
  async check(username: string, address: string): Promise<void> {
    const blocked = (res: RateLimiterRes | null, points: number) =>
      res !== null && res.consumedPoints >= points;
    const user = await this.byUser.get(username);
    if (blocked(user, this.limits.perUser))
      throw new ApiError('LOGIN_RATE_LIMITED', {
        what: 'user',
        seconds: Math.ceil((user?.msBeforeNext ?? 0) / 1000),
      });
    const addr = await this.byAddress.get(address);
    if (blocked(addr, this.limits.perAddress))
      throw new ApiError('LOGIN_RATE_LIMITED', {
        what: 'address',
        seconds: Math.ceil((addr?.msBeforeNext ?? 0) / 1000),
      });
  }

  async failed(username: string, address: string): Promise<void> {
    // consume() rejects once a key is over its points; the count is what matters here.
    await Promise.allSettled([this.byUser.consume(username), this.byAddress.consume(address)]);
  }

  async succeeded(username: string): Promise<void> {
    await this.byUser.delete(username);
  }
}
