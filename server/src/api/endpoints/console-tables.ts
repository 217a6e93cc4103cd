/**
 * Jobfleet extensions for the web console, where a page needs a whole step or a whole pasted
 * target list at once:
 * - get_step_host_table: every host of a step attempt in one compact, columnar reply (status,
 *   tag, exit code, times, batch and the output group each host is in), so a 10,000-host step
 *   paints from one request and switching groups, sorting and filtering need no more.
 * - resolve_hosts: a pasted list of addresses (ip, cloud:ip or host id), resolved to the scope's
 *   hosts with their agent status; unknown entries, and hosts of other scopes, come back named.
 */
import { z } from 'zod';
import { normaliserKey } from '../../outputs/output-normalisers.js';
import type { Host } from '../../store/inventory-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { liveAgentStatus } from './live-agent-status.js';
import { AttemptFields, attemptHead, attemptOf } from './output-groups.js';

const MAX_RESOLVE = 50_000;

export const getStepHostTable = defineEndpoint({
  name: 'get_step_host_table',
  kind: 'read',
  permission: 'read',
  scoped: true,
  input: z.object(AttemptFields),
  async handle(ctx, input) {
    const { job, step, executeCount } = await attemptOf(ctx, input);
    const groups = await ctx.services.outputs.groups(
      step.id,
      executeCount,
      normaliserKey(input.normalisers ?? []),
    );
    const tasks = groups.flatMap((g) => g.hosts);
    tasks.sort((a, b) => a.host_id - b.host_id);
    const groupOf = new Map<number, number>();
    groups.forEach((g, i) => {
      for (const h of g.hosts) groupOf.set(h.host_id, i);
    });
    return {
      ...attemptHead(job, step, executeCount),
      output_groups: groups.map((g) => ({
        group_id: g.groupId,
        status: g.status,
        tag: g.tag,
        exit_code: g.exitCode,
        fingerprint: g.fingerprint,
        host_count: g.hosts.length,
      })),
      // Columns, one entry per host in host id order: a 10,000-host table stays a few hundred KB.
      hosts: {
        bk_host_id: tasks.map((t) => t.host_id),
        bk_cloud_id: tasks.map((t) => t.cloud_id),
        ip: tasks.map((t) => t.ip),
        status: tasks.map((t) => t.status),
        tag: tasks.map((t) => t.tag),
        exit_code: tasks.map((t) => t.exit_code),
        start_time: tasks.map((t) => t.start_time),
        end_time: tasks.map((t) => t.end_time),
        batch: tasks.map((t) => t.batch),
        log_bytes: tasks.map((t) => t.log_bytes),
        output_group: tasks.map((t) => groupOf.get(t.host_id) ?? -1),
      },
    };
  },
});

const Entry = z.string().max(200);

function hostView(ctx: EndpointContext, h: Host) {
  return {
    bk_host_id: h.id,
    bk_cloud_id: h.cloud_id,
    ip: h.ip,
    hostname: h.hostname,
    agent_status: liveAgentStatus(ctx, h),
    agent_version: h.agent_version,
    last_heartbeat: h.last_heartbeat,
  };
}

export const resolveHosts = defineEndpoint({
  name: 'resolve_hosts',
  kind: 'read',
  permission: 'read',
  scoped: true,
  input: z.object({ entries: z.array(Entry).max(MAX_RESOLVE) }),
  async handle(ctx, input) {
    const inv = ctx.services.store.inventory;
    const ids: number[] = [];
    const pairs: { cloudId: number; ip: string }[] = [];
    const invalid: string[] = [];
    const parsed = input.entries
      .map((e) => e.trim())
      .filter(Boolean)
      .map((e) => {
        // At most 15 digits: a longer number is no id a host can have (PostgreSQL refused the
        // query for one past its bigint).
        let m = /^(\d{1,15})$/.exec(e);
        if (m) {
          ids.push(Number(m[1]));
          return { e, key: `id:${Number(m[1])}` };
        }
        m = /^(?:(\d{1,15}):)?(\d{1,3}(?:\.\d{1,3}){3})$/.exec(e);
        if (m) {
          const p = { cloudId: Number(m[1] ?? 0), ip: m[2] ?? '' };
          pairs.push(p);
          return { e, key: `ip:${p.cloudId}:${p.ip}` };
        }
        invalid.push(e);
        return undefined;
      });
    const found = [...(await inv.getHostsByIds([...new Set(ids)])), ...(await inv.getHostsByCloudIps(pairs))];
    const byKey = new Map<string, Host>();
    for (const h of found) {
      byKey.set(`id:${h.id}`, h);
      byKey.set(`ip:${h.cloud_id}:${h.ip}`, h);
    }
    const hosts = new Map<number, Host>();
    const unknown: string[] = [];
    const otherScope: string[] = [];
    const duplicates: string[] = [];
    for (const p of parsed) {
      if (!p) continue;
      const h = byKey.get(p.key);
      if (!h) unknown.push(p.e);
      else if (h.biz_id === null || !ctx.scope.bizIds.includes(h.biz_id)) otherScope.push(p.e);
      else if (hosts.has(h.id)) duplicates.push(p.e);
      else hosts.set(h.id, h);
    }
    return {
      hosts: [...hosts.values()].map((h) => hostView(ctx, h)),
      unknown,
      other_scope: otherScope,
      invalid,
      duplicates,
    };
  },
});
