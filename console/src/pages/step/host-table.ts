/**
 * The step's hosts as the step page holds them: the columnar reply of get_step_host_table, the
 * status-and-tag groups (BK-JOB's first level) and the output groups inside them, and the
 * ordering of a group's host list. Everything is indices into the columns, so a 10,000-host
 * step switches groups and sorts without copying rows.
 */
export interface OutputGroupInfo {
  group_id: string;
  status: number;
  tag: string;
  exit_code: number | null;
  fingerprint: string | null;
  host_count: number;
}

export interface HostTable {
  job_instance_id: number;
  step_instance_id: number;
  execute_count: number;
  step_execute_count: number;
  status: number;
  current_batch: number;
  output_groups: OutputGroupInfo[];
  hosts: {
    bk_host_id: number[];
    bk_cloud_id: number[];
    ip: string[];
    status: number[];
    tag: string[];
    exit_code: (number | null)[];
    start_time: (number | null)[];
    end_time: (number | null)[];
    batch: number[];
    log_bytes: number[];
    output_group: number[];
  };
}

export interface StatusGroup {
  key: string;
  status: number;
  tag: string;
  count: number;
  /** Output groups (indices into output_groups) inside it, largest first. */
  outputGroups: number[];
}

export function statusGroups(table: HostTable): StatusGroup[] {
  const byKey = new Map<string, StatusGroup>();
  const h = table.hosts;
  for (let i = 0; i < h.bk_host_id.length; i++) {
    const status = h.status[i] ?? 0;
    const tag = h.tag[i] ?? '';
    const key = `${status}\u0000${tag}`;
    let g = byKey.get(key);
    if (!g) {
      g = { key, status, tag, count: 0, outputGroups: [] };
      byKey.set(key, g);
    }
    g.count++;
  }
  table.output_groups.forEach((og, i) => byKey.get(`${og.status}\u0000${og.tag}`)?.outputGroups.push(i));
  // Failures first, then by size (BK-JOB shows the groups that need attention first).
  return [...byKey.values()].sort((a, b) => rank(a.status) - rank(b.status) || b.count - a.count);
}

function rank(status: number): number {
  if (status === 7 || status === 5) return 1;
  if (status === 9 || status === 3) return 2;
  return 0;
}

export type SortKey = 'host' | 'duration' | 'exit_code' | 'ip';

export function duration(table: HostTable, i: number): number | null {
  const s = table.hosts.start_time[i];
  const e = table.hosts.end_time[i];
  return s != null && e != null ? e - s : s != null ? Date.now() - s : null;
}

/** The rows of a group (a status group, optionally one output group in it), filtered and sorted. */
export function groupRows(
  table: HostTable,
  group: StatusGroup | undefined,
  outputGroup: number | undefined,
  opts: { batch: number; search: string; sort: SortKey; descending: boolean },
): number[] {
  const h = table.hosts;
  const rows: number[] = [];
  const search = opts.search.trim();
  for (let i = 0; i < h.bk_host_id.length; i++) {
    if (group && (h.status[i] !== group.status || h.tag[i] !== group.tag)) continue;
    if (outputGroup !== undefined && h.output_group[i] !== outputGroup) continue;
    if (opts.batch > 0 && h.batch[i] !== opts.batch) continue;
    if (search && !(h.ip[i] ?? '').includes(search)) continue;
    rows.push(i);
  }
  const dir = opts.descending ? -1 : 1;
  const key: (i: number) => number | string =
    opts.sort === 'duration'
      ? (i) => duration(table, i) ?? -1
      : opts.sort === 'exit_code'
        ? (i) => h.exit_code[i] ?? -1
        : opts.sort === 'ip'
          ? (i) => ipKey(h.ip[i] ?? '')
          : (i) => h.bk_host_id[i] ?? 0;
  rows.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return (ka < kb ? -1 : ka > kb ? 1 : (h.bk_host_id[a] ?? 0) - (h.bk_host_id[b] ?? 0)) * dir;
  });
  return rows;
}

function ipKey(ip: string): string {
  return ip
    .split('.')
    .map((p) => p.padStart(3, '0'))
    .join('.');
}

/** Host counts of each rolling batch (batch numbers from 1). */
export function batchCounts(
  table: HostTable,
): Map<number, { total: number; finished: number; failed: number }> {
  const out = new Map<number, { total: number; finished: number; failed: number }>();
  const h = table.hosts;
  for (let i = 0; i < h.batch.length; i++) {
    const b = h.batch[i] ?? 0;
    if (b === 0) continue;
    const c = out.get(b) ?? { total: 0, finished: 0, failed: 0 };
    c.total++;
    const s = h.status[i] ?? 0;
    if (s !== 5 && s !== 7) c.finished++;
    if (s !== 5 && s !== 7 && s !== 9 && s !== 3) c.failed++;
    out.set(b, c);
  }
  return out;
}
