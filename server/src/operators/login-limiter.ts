/**
 * Failed sign-ins are counted per user name and per client address; once either count reaches
 * its limit within the window, further attempts are refused (even with the right password)
 * until the window ends. A successful sign-in clears the user name's count. An attempt counts
 * from the moment it arrives and is given back when it succeeds.
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

  /**
   * Counts a sign-in attempt before its password is checked, so that attempts sent together
   * cannot all pass while the first ones are still being verified; throws LOGIN_RATE_LIMITED
   * once the user name or the address is over its limit.
   */
  async attempt(username: string, address: string): Promise<void> {
    const [user, addr] = await Promise.allSettled([
      this.byUser.consume(username),
      this.byAddress.consume(address),
    ]);
    // consume() rejects with the counter once a key is over its points.
    const over = (r: PromiseSettledResult<RateLimiterRes>) =>
      r.status === 'rejected'
        ? Math.ceil(((r.reason as RateLimiterRes).msBeforeNext ?? 0) / 1000)
        : undefined;
    const userWait = over(user);
    if (userWait !== undefined) throw new ApiError('LOGIN_RATE_LIMITED', { what: 'user', seconds: userWait });
    const addressWait = over(addr);
    if (addressWait !== undefined)
      throw new ApiError('LOGIN_RATE_LIMITED', { what: 'address', seconds: addressWait });
  }

  /** A sign-in that succeeded: the user name's count is cleared, and the address gets its attempt back. */
  async succeeded(username: string, address: string): Promise<void> {
    await Promise.allSettled([this.byUser.delete(username), this.byAddress.reward(address, 1)]);
  }
}
