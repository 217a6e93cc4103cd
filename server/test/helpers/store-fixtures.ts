/** Inputs for tests that drive a Store directly: agent registrations, new jobs and their steps, rule hits. */
import { RuleAction } from '../../src/rules/dangerous-rules.js';
import type { NewJob, NewStep } from '../../src/store/execution-store.js';
import type { Host, HostRegistration } from '../../src/store/inventory-store.js';
import type { NewRuleHit } from '../../src/store/rule-store.js';

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

/** A script step on registered hosts, each waiting to run. */
export function waitingStep(
  name: string,
  hosts: readonly Host[],
  spec: unknown = { kind: 'script' },
): NewStep {
  return {
    name,
    type: 1,
    spec,
    hosts: hosts.map((h) => ({
      hostId: h.id,
      cloudId: Number(h.cloud_id),
      ip: h.ip,
      ipv6: h.ipv6,
      agentId: h.agent_id,
      status: 5,
      batch: 0,
    })),
  };
}

/** A scan rule's hit on a script run in business `scopeId`, recorded at `createTime`. */
export function ruleHit(scopeId: string, createTime: number): NewRuleHit {
  return {
    ruleId: 1,
    expression: 'rm -rf',
    description: 'removes trees',
    action: RuleAction.SCAN,
    scopeType: 'biz',
    scopeId,
    appCode: 'app',
    operator: 'tester',
    scriptLanguage: 1,
    line: 1,
    lineContent: 'rm -rf /tmp/x',
    matchContent: 'rm -rf',
    intercepted: false,
    jobInstanceId: null,
    createTime,
  };
}
