/**
 * The step's hosts as the step page holds them: the reply of get_step_host_summary (BK-JOB's
 * status-and-tag groups with their counts, the output groups inside them, the rolling batches
 * and a first page of each group's hosts, filtered and sorted by the server), and the counts
 * moved at once by the job's event stream until the next summary settles them.
 */
export interface OutputGroupInfo {
  group_id: string;
  status: number;
  tag: string;
  exit_code: number | null;
  fingerprint: string | null;
  host_count: number;
}

export interface HostRow {
  bk_host_id: number;
  bk_cloud_id: number;
  ip: string;
  status: number;
  tag: string;
  exit_code: number | null;
  start_time: number | null;
  end_time: number | null;
  batch: number;
  log_bytes: number;
  output_group_id: string | null;
}

export interface SummaryGroup {
  status: number;
  tag: string;
  host_count: number;
  /** Ids of the output groups inside it, largest first (the first 100). */
  output_groups: string[];
  /** How many output groups it has. */
  output_group_count?: number;
  /** Hosts that pass the filters (null for a group the request did not pick). */
  matched_count: number | null;
  hosts: HostRow[];
}

export interface StepHostSummary {
  job_instance_id: number;
  step_instance_id: number;
  execute_count: number;
  step_execute_count: number;
  status: number;
  current_batch: number;
  host_count: number;
  batches: { batch: number; host_count: number; finished: number; failed: number }[];
  output_groups: OutputGroupInfo[];
  groups: SummaryGroup[];
}

export type SortKey = 'host' | 'duration' | 'exit_code' | 'ip';

export function groupKey(g: { status: number; tag: string }): string {
  return `${g.status}\u0000${g.tag}`;
}

export function duration(h: HostRow): number | null {
  const s = h.start_time;
  const e = h.end_time;
  return s != null && e != null ? e - s : s != null ? Date.now() - s : null;
}
