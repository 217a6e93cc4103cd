/**
 * Dynamic groups: a saved filter over the hosts of one business, evaluated when a job is
 * submitted (so a host added later is picked up by the next job).
 * Conditions are ANDed; the values inside one condition are ORed.
 */
import { z } from 'zod';
import type { Host } from '../store/inventory-store.js';

/** Octets above 255 or a mask above 32 were stored and then matched other hosts (300 as 44). */
const IPV4 = z.ipv4();
const CIDR = z.cidrv4();
const IpOrCidr = z
  .string()
  .refine(
    (v) => IPV4.safeParse(v).success || CIDR.safeParse(v).success,
    'is not an IPv4 address or CIDR block',
  );

export const DynamicGroupFilter = z
  .object({
    /** IPv4 addresses or CIDR blocks (a.b.c.d/n). */
    ip: z.array(IpOrCidr).optional(),
    /** Glob on the hostname: * any run of characters, ? one character. */
    hostname: z.string().min(1).max(255).optional(),
    os_type: z.enum(['linux', 'windows']).optional(),
    module_ids: z.array(z.number().int()).optional(),
  })
  .strict();
export type DynamicGroupFilter = z.infer<typeof DynamicGroupFilter>;

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + (Number(part) & 255), 0);
}

export function ipMatches(ip: string, pattern: string): boolean {
  const [base, bitsText] = pattern.split('/');
  if (bitsText === undefined) return ip === base;
  const bits = Math.min(32, Number(bitsText));
  if (bits === 0) return true;
  // Division-free masking: JavaScript bit operators are 32-bit signed, so compare floored quotients.
  const block = 2 ** (32 - bits);
  return Math.floor(ipToInt(ip) / block) === Math.floor(ipToInt(base ?? '') / block);
}

/**
 * `*` any run of characters, `?` one, case-insensitive. Matched by the two-pointer walk that
 * goes back only to the last `*`: at most text × glob steps, where a regular expression of
 * several `.*` backtracks without bound (a glob of six stars against a long hostname held the
 * server's thread for seconds).
 */
export function globMatches(text: string, glob: string): boolean {
  const t = text.toLowerCase();
  const g = glob.toLowerCase();
  let ti = 0;
  let gi = 0;
  let star = -1;
  let resume = 0;
  while (ti < t.length) {
    if (gi < g.length && (g[gi] === '?' || g[gi] === t[ti])) {
      ti++;
      gi++;
    } else if (gi < g.length && g[gi] === '*') {
      star = gi++;
      resume = ti;
    } else if (star >= 0) {
      gi = star + 1;
      ti = ++resume;
    } else return false;
  }
  while (gi < g.length && g[gi] === '*') gi++;
  return gi === g.length;
}

export function hostMatches(
  host: Pick<Host, 'ip' | 'hostname' | 'os_type'>,
  moduleIds: readonly number[],
  f: DynamicGroupFilter,
): boolean {
  if (f.ip && !f.ip.some((p) => ipMatches(host.ip, p))) return false;
  if (f.hostname && !globMatches(host.hostname, f.hostname)) return false;
  if (f.os_type && host.os_type !== f.os_type) return false;
  if (f.module_ids && !f.module_ids.some((m) => moduleIds.includes(m))) return false;
  return true;
}
