/**
 * get_step_host_summary (Jobfleet extension, for the console's step result): a step attempt's
 * BK-JOB status-and-tag groups with their host counts, the output groups inside them, the rolling
 * batches, and one page of hosts per group, filtered and sorted on the server. A 10,000-host step
 * paints from a reply of a few dozen rows; the rest of a group is read page by page as it is
 * scrolled to.
 *
 * The grouping of an attempt is kept per step and reused while the step's hosts_version (bumped
 * by every commit that changes a host's result, on any server of a cluster) has not moved, so
 * paging through a group or refreshing counts does not regroup the attempt.
 */
import { z } from 'zod';
import { isHostFinished } from '../../engine/statuses.js';
import type { OutputGroup } from '../../outputs/output-groups.js';
import { normaliserKey } from '../../outputs/output-normalisers.js';
import type { HostTask } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import { zInt } from '../input-types.js';
import { AttemptFields, attemptHead, attemptOf } from './output-groups.js';

const MAX_PAGE = 50_000;
const MAX_STEPS = 8;

interface Grouped {
  key: string;
  version: number;
  groups: OutputGroup[];
}

/** Groupings kept per services object (one per server), the most recently used last. */
const kept = new WeakMap<object, Map<number, Grouped>>();

const SORTS = ['host', 'ip', 'duration', 'exit_code'] as const;
type Sort = (typeof SORTS)[number];

/** Failed and stopped hosts first (what needs attention), then the biggest groups. */
function rank(status: number): number {
  if (status === 7 || status === 5) return 1;
  if (status === 9 || status === 3) return 2;
  return 0;
}

function ipKey(ip: string): string {
  return ip
    .split('.')
    .map((p) => p.padStart(3, '0'))
    .join('.');
}

function sorter(sort: Sort, descending: boolean, now: number): (a: HostTask, b: HostTask) => number {
  const key: (t: HostTask) => number | string =
    sort === 'duration'
      ? (t) => (t.start_time === null ? -1 : (t.end_time ?? now) - t.start_time)
      : sort === 'exit_code'
        ? (t) => t.exit_code ?? -1
        : sort === 'ip'
          ? (t) => ipKey(t.ip)
          : (t) => t.host_id;
  const dir = descending ? -1 : 1;
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return (ka < kb ? -1 : ka > kb ? 1 : a.host_id - b.host_id) * dir;
  };
}

/**
 * Output groups named per reply, largest first (the counts say how many there are): a step
 * of 50,000 different outputs would otherwise name them all, in every reply of its page.
 */
const MAX_OUTPUT_GROUPS = 100;

export const getStepHostSummary = defineEndpoint({
  name: 'get_step_host_summary',
  kind: 'read',
  permission: 'read',
  scoped: true,
  input: z.object({
    ...AttemptFields,
    status: zInt.optional(),
    tag: z.string().max(256).optional(),
    output_group_id: z.string().max(2000).optional(),
    batch: zInt.pipe(z.number().min(0)).optional(),
    ip: z.string().max(200).optional(),
    sort: z.enum(SORTS).default('host'),
    order: z.enum(['asc', 'desc']).default('asc'),
    offset: zInt.pipe(z.number().min(0)).default(0),
    limit: zInt.pipe(z.number().min(0).max(MAX_PAGE)).default(50),
  }),
  async handle(ctx, input) {
    const { job, step, executeCount } = await attemptOf(ctx, input);
    const key = `${executeCount}:${normaliserKey(input.normalisers ?? [])}`;
    const version = Number(step.hosts_version);
    let byStep = kept.get(ctx.services);
    if (!byStep) kept.set(ctx.services, (byStep = new Map()));
    let grouped = byStep.get(step.id);
    if (grouped?.key !== key || grouped.version !== version) {
      const groups = await ctx.services.outputs.groups(
        step.id,
        executeCount,
        normaliserKey(input.normalisers ?? []),
      );
      grouped = { key, version, groups };
    }
    byStep.delete(step.id);
    byStep.set(step.id, grouped);
    if (byStep.size > MAX_STEPS) byStep.delete(byStep.keys().next().value as number);

    const statusGroups = new Map<
      string,
      { status: number; tag: string; outputs: OutputGroup[]; hostCount: number }
    >();
    const batches = new Map<number, { total: number; finished: number; failed: number }>();
    let hostCount = 0;
    for (const og of grouped.groups) {
      const k = `${og.status}\u0000${og.tag}`;
      let g = statusGroups.get(k);
      if (!g) statusGroups.set(k, (g = { status: og.status, tag: og.tag, outputs: [], hostCount: 0 }));
      g.outputs.push(og);
      g.hostCount += og.hosts.length;
      hostCount += og.hosts.length;
      for (const t of og.hosts) {
        if (t.batch === 0) continue;
        let b = batches.get(t.batch);
        if (!b) batches.set(t.batch, (b = { total: 0, finished: 0, failed: 0 }));
        b.total++;
        if (isHostFinished(t.status)) {
          b.finished++;
          if (t.status !== 9 && t.status !== 3) b.failed++;
        }
      }
    }
    const ordered = [...statusGroups.values()].sort(
      (a, b) => rank(a.status) - rank(b.status) || b.hostCount - a.hostCount,
    );

    const now = Date.now();
    const compare = sorter(input.sort, input.order === 'desc', now);
    const ip = input.ip?.trim() ?? '';
    const picked = (g: { status: number; tag: string }) =>
      input.status === undefined || (g.status === input.status && g.tag === (input.tag ?? ''));
    const groups = ordered.map((g) => {
      const base = {
        status: g.status,
        tag: g.tag,
        host_count: g.hostCount,
        output_groups: g.outputs.slice(0, MAX_OUTPUT_GROUPS).map((og) => og.groupId),
        output_group_count: g.outputs.length,
      };
      if (!picked(g)) return { ...base, matched_count: null, hosts: [] };
      const outputs =
        input.output_group_id === undefined
          ? g.outputs
          : g.outputs.filter((og) => og.groupId === input.output_group_id);
      const matched: HostTask[] = [];
      const outputOf = new Map<number, string>();
      for (const og of outputs)
        for (const t of og.hosts) {
          if (input.batch && t.batch !== input.batch) continue;
          if (ip && !t.ip.includes(ip)) continue;
          matched.push(t);
          outputOf.set(t.host_id, og.groupId);
        }
      matched.sort(compare);
      return {
        ...base,
        matched_count: matched.length,
        hosts: matched.slice(input.offset, input.offset + input.limit).map((t) => ({
          bk_host_id: t.host_id,
          bk_cloud_id: t.cloud_id,
          ip: t.ip,
          status: t.status,
          tag: t.tag,
          exit_code: t.exit_code,
          start_time: t.start_time,
          end_time: t.end_time,
          batch: t.batch,
          log_bytes: t.log_bytes,
          output_group_id: outputOf.get(t.host_id) ?? null,
        })),
      };
    });
    return {
      ...attemptHead(job, step, executeCount),
      host_count: hostCount,
      batches: [...batches.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([batch, c]) => ({ batch, host_count: c.total, finished: c.finished, failed: c.failed })),
      output_group_count: grouped.groups.length,
      output_groups: grouped.groups.slice(0, MAX_OUTPUT_GROUPS).map((og) => ({
        group_id: og.groupId,
        status: og.status,
        tag: og.tag,
        exit_code: og.exitCode,
        fingerprint: og.fingerprint,
        host_count: og.hosts.length,
      })),
      groups,
    };
  },
});
