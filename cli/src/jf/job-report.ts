/**
 * What a finished (or running) job amounts to: per-step gathered outputs, the summary line and
 * the exit code the CLI answers with.
 */
import type { ApiClient, JobStatus, StepStatus } from './api-client.js';
import { CliError, Exit } from './exit-codes.js';
import { foldHosts } from './host-fold.js';
import { gatherOutputs } from './gather.js';
import type { HostOutput } from './gather.js';
import type { Normaliser } from '@jobfleet/server/output-normalisers';
import { duration, hostLabel, paint } from './render.js';
import type { Output } from './render.js';
import { HOST_STATUS_NAMES, RUN_STATUS_NAMES, hostState, isRunOk, isRunTerminated } from './statuses.js';

export interface StepReport {
  step_instance_id: number;
  name: string;
  status: number;
  status_name: string;
  groups: {
    folded: string;
    count: number;
    exit_code: number | null;
    status: number;
    output: string;
    hosts: string[];
    host_ids: number[];
    /** The server sent only the start of the output (its first 256 KiB). */
    truncated?: boolean;
    /** With --diff: a unified diff against the reference group. */
    diff?: string;
  }[];
}

export function counts(st: JobStatus): Record<'ok' | 'failed' | 'running' | 'waiting', number> {
  const c = { ok: 0, failed: 0, running: 0, waiting: 0 };
  const step = currentStep(st);
  for (const h of step?.step_ip_result_list ?? []) c[hostState(h.status)]++;
  return c;
}

/** The step running now, or the last one that ran. */
export function currentStep(st: JobStatus): StepStatus | undefined {
  const steps = st.step_instance_list;
  return (
    steps.find((s) => s.status === 2 || s.status === 7 || s.status === 15) ??
    [...steps].reverse().find((s) => s.status !== 1) ??
    steps[0]
  );
}

async function hostOutputs(client: ApiClient, jobId: number, step: StepStatus): Promise<HostOutput[]> {
  const hosts = step.step_ip_result_list ?? [];
  const logs = await client.hostLogs(
    jobId,
    step.step_instance_id,
    hosts.map((h) => h.bk_host_id),
  );
  return hosts.map((h) => ({
    host: hostLabel(h),
    ip: h.ip,
    hostId: h.bk_host_id,
    status: h.status,
    exitCode: h.exit_code,
    output: logs.get(h.bk_host_id) ?? '',
  }));
}

type GroupReport = StepReport['groups'][number];

/** Groups asked per call: each carries a representative output of up to 256 KiB. */
const GROUP_PAGE = 100;

interface ServerGroup {
  group_id: string;
  status: number;
  exit_code: number;
  host_count: number;
  representative: { log_content: string | null; truncated?: boolean } | null;
  host_list: { bk_host_id: number; bk_cloud_id: number | null; ip: string | null }[];
}

/**
 * The server's output groups (get_step_output_groups), every host of each group paged in; or
 * undefined from a server without that API, where the CLI gathers the logs itself.
 */
async function serverGroups(
  client: ApiClient,
  jobId: number,
  stepId: number,
  normalisers: readonly string[],
): Promise<GroupReport[] | undefined> {
  const ask = (extra: Record<string, unknown>) =>
    client.call<{ groups: ServerGroup[]; group_count?: number }>('get_step_output_groups', {
      job_instance_id: jobId,
      step_instance_id: stepId,
      length: 1000,
      ...(normalisers.length ? { normalisers: normalisers.join(',') } : {}),
      ...extra,
    });
  let groups: ServerGroup[];
  try {
    const first = await ask({ group_length: GROUP_PAGE });
    groups = first.groups;
    // Servers that page groups say how many there are; older ones answer them all at once.
    while (first.group_count !== undefined && groups.length < first.group_count) {
      const page = (await ask({ group_start: groups.length, group_length: GROUP_PAGE })).groups;
      if (page.length === 0) break;
      groups.push(...page);
    }
  } catch (err) {
    if (err instanceof CliError && /unknown API|\(code 1240004\)/.test(err.message)) return undefined;
    throw err;
  }
  const out: GroupReport[] = [];
  for (const g of groups) {
    const hosts = [...g.host_list];
    while (hosts.length < g.host_count) {
      const page = (await ask({ group_id: g.group_id, start: hosts.length })).groups[0]?.host_list ?? [];
      if (page.length === 0) break;
      hosts.push(...page);
    }
    const labels = hosts.map((h) => hostLabel(h));
    out.push({
      folded: foldHosts(labels),
      count: g.host_count,
      exit_code: g.exit_code,
      status: g.status,
      output: g.representative?.log_content ?? '',
      ...(g.representative?.truncated ? { truncated: true } : {}),
      hosts: labels,
      host_ids: hosts.map((h) => h.bk_host_id),
    });
  }
  return out;
}

/**
 * Gathering on the client, for a server without output groups; normalisers are the server's own
 * (one definition of what they replace), loaded only here. The host normaliser knows the ip.
 */
async function clientGroups(
  client: ApiClient,
  jobId: number,
  step: StepStatus,
  normalisers: readonly Normaliser[],
): Promise<GroupReport[]> {
  const outputs = await hostOutputs(client, jobId, step);
  let keyOf: ((o: HostOutput) => string) | undefined;
  if (normalisers.length) {
    const { normaliseText } = await import('@jobfleet/server/output-normalisers');
    keyOf = (o) => normaliseText(o.output, normalisers, { ip: o.ip ?? '', hostname: '' });
  }
  return gatherOutputs(outputs, keyOf).map((g) => ({
    folded: g.folded,
    count: g.hosts.length,
    exit_code: g.exitCode,
    status: g.status,
    output: g.output,
    hosts: g.hosts,
    host_ids: g.hostIds,
  }));
}

export async function stepReports(
  client: ApiClient,
  st: JobStatus,
  stepId?: number,
  normalisers: readonly Normaliser[] = [],
): Promise<StepReport[]> {
  const steps =
    stepId === undefined
      ? st.step_instance_list
      : st.step_instance_list.filter((s) => s.step_instance_id === stepId);
  const jobId = st.job_instance.job_instance_id;
  const reports: StepReport[] = [];
  for (const s of steps) {
    // The server groups file steps by status alone; their file lines are gathered here.
    const groups =
      (s.type === 2 ? undefined : await serverGroups(client, jobId, s.step_instance_id, normalisers)) ??
      (await clientGroups(client, jobId, s, normalisers));
    reports.push({
      step_instance_id: s.step_instance_id,
      name: s.name,
      status: s.status,
      status_name: RUN_STATUS_NAMES[s.status] ?? String(s.status),
      groups,
    });
  }
  return reports;
}

/** clush -b style: a header of folded hosts with count (and exit code/status when not success), then the output once. */
export function renderGroups(out: Output, reports: StepReport[]): string {
  const c = paint(out);
  const lines: string[] = [];
  for (const r of reports) {
    if (reports.length > 1) lines.push(c.bold(`== step ${r.step_instance_id} ${r.name}: ${r.status_name}`));
    for (const g of r.groups) {
      const state = HOST_STATUS_NAMES[g.status] ?? String(g.status);
      const note =
        g.status === 9 || g.status === 3
          ? ''
          : ` ${c.red(g.exit_code === null ? state : `exit ${g.exit_code}, ${state}`)}`;
      const header = `${g.folded} (${g.count})${note}`;
      const rule = '-'.repeat(Math.min(Math.max(header.length, 15), 80));
      lines.push(c.dim(rule), c.cyan(header), c.dim(rule));
      lines.push(g.output.replace(/\n$/, ''));
      if (g.truncated)
        lines.push(c.dim('[the output goes on past its first 256 KiB: jf logs shows all of it]'));
    }
  }
  return lines.join('\n');
}

export function summaryLine(out: Output, st: JobStatus): string {
  const c = paint(out);
  const j = st.job_instance;
  const n = counts(st);
  const status = RUN_STATUS_NAMES[j.status] ?? String(j.status);
  const took = j.start_time ? duration((j.end_time ?? Date.now()) - j.start_time) : '';
  const colour = isRunOk(j.status) ? c.green : st.finished ? c.red : c.yellow;
  return `job ${j.job_instance_id} ${colour(status)}: ${n.ok} ok, ${n.failed} failed${n.running + n.waiting ? `, ${n.running + n.waiting} pending` : ''}${took ? ` in ${took}` : ''}`;
}

/**
 * 0 success, 3 terminated, 1 otherwise; with maxrc, the largest host exit code (at least 1 for a
 * failed host), and never less than the job's own status gives: a job terminated or refused
 * before its hosts failed did not succeed.
 */
export function exitCodeOf(st: JobStatus, maxrc: boolean): number {
  const own = isRunOk(st.job_instance.status)
    ? Exit.OK
    : isRunTerminated(st.job_instance.status)
      ? Exit.TERMINATED
      : Exit.FAILED;
  if (!maxrc) return own;
  let rc = 0;
  for (const s of st.step_instance_list)
    for (const h of s.step_ip_result_list ?? [])
      rc = Math.max(rc, h.exit_code ?? 0, hostState(h.status) === 'failed' ? 1 : 0);
  return Math.max(Math.min(rc, 255), own);
}
