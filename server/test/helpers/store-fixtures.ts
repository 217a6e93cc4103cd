/** Inputs for tests that drive a Store directly: agent registrations and new jobs. */
import type { NewJob, NewStep } from '../../src/store/execution-store.js';
import type { HostRegistration } from '../../src/store/inventory-store.js';

/** `count` distinct agent hosts on `${net}.x.y`, in three clouds, every other one with an IPv6. */
export function agentRegistrations(count: number, net: string, bizId: number | null): HostRegistration[] {
  return Array.from({ length: count }, (_, i) => ({
    cloudId: i % 3,
    ip: `${net}.${i >> 8}.${i & 255}`,
    ipv6: i % 2 ? `fd00::${i}` : '',
    hostname: `h${i}`,
    osType: 'linux',
    agentId: `agent-${i}`,
    agentTokenHash: 'x',
    bizId,
  }));
}

/** A job of business `scopeId` started through the API by one app, with the given steps. */
export function newJob(scopeId: string, name: string, steps: NewStep[]): NewJob {
  return {
    scopeType: 'biz',
    scopeId,
    name,
    type: 3,
    launchMode: 2,
    operator: 'tester',
    appCode: 'app',
    callbackUrl: null,
    clientRequestId: null,
    steps,
  };
}
