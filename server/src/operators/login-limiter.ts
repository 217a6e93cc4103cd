/**
 * Failed sign-ins are counted per user name and per client address; once either count reaches
 * its limit within the window, further attempts are refused (even with the right password)
 * until the window ends. A successful sign-in clears the user name's count. An attempt counts
 * from the moment it arrives and is given back when it succeeds.
 *
 * Counters live in the server's memory: on a cluster each server counts on its own, so an
 * attacker spreading attempts gets at most (servers × limit) tries per window.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError } from '../api/error-catalogue.js';

/** `firstInWindow`: the first attempt refused in the window, the one worth an audit entry. */
export class LoginRateLimited extends ApiError {
  constructor(
    what: string,
    seconds: number,
    readonly firstInWindow: boolean,
  ) {
    super('LOGIN_RATE_LIMITED', { what, seconds });
  }
}

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
   * cannot all pass while the first ones are still being verified; throws LoginRateLimited
   * once the address or the user name is over its limit. A blocked address's attempts are not
   * counted against the names it tries: each new name would be kept for the whole window.
   */
  async attempt(username: string, address: string): Promise<void> {
    await this.count(this.byAddress, address, 'address', this.limits.perAddress);
    await this.count(this.byUser, username, 'user', this.limits.perUser);
  }

  private async count(limiter: RateLimiterMemory, key: string, what: string, points: number): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (err) {
      // consume() rejects with the counter once a key is over its points.
      if (!(err instanceof RateLimiterRes)) throw err;
      throw new LoginRateLimited(what, Math.ceil(err.msBeforeNext / 1000), err.consumedPoints === points + 1);
    }
  }

  /** A sign-in that succeeded: the user name's count is cleared, and the address gets its attempt back. */
  async succeeded(username: string, address: string): Promise<void> {
    await Promise.allSettled([this.byUser.delete(username), this.byAddress.reward(address, 1)]);
  }
}
