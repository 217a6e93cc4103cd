/**
 * Hosts per status of each step, kept up to date from the job's event stream (the `created`
 * event's host counts, then each host's from → to status, or a coalesced message's exact
 * deltas), or read from a status snapshot when polling. The live line is drawn from it.
 */
import type { JobStatus } from './api-client.js';
import type { JobEvent } from './job-events.js';
import { duration } from './render.js';
import { RUN_STATUS_NAMES, hostState } from './statuses.js';
import type { HostState } from './statuses.js';

export interface StepProgress {
  id: number;
  status: number;
  executeCount: number;
  /** Hosts per host status code. */
  hosts: Map<number, number>;
  batch: number;
  /** The step's number of rolling batches, once a batch event told it (0 before). */
  batchCount: number;
}

export interface Progress {
  jobId: number;
  status: number;
  steps: StepProgress[];
}

export function progressOf(st: JobStatus): Progress {
  return {
    jobId: st.job_instance.job_instance_id,
    status: st.job_instance.status,
    steps: st.step_instance_list.map((s) => {
      const hosts = new Map<number, number>();
      for (const h of s.step_ip_result_list ?? []) hosts.set(h.status, (hosts.get(h.status) ?? 0) + 1);
      return {
        id: s.step_instance_id,
        status: s.status,
        executeCount: s.execute_count,
        hosts,
        batch: 0,
        batchCount: 0,
      };
    }),
  };
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

function countsOf(v: unknown): Map<number, number> {
  const m = new Map<number, number>();
  if (v && typeof v === 'object')
    for (const [k, n] of Object.entries(v as Record<string, unknown>))
      if (typeof n === 'number') m.set(Number(k), n);
  return m;
}

function add(hosts: Map<number, number>, status: number, n: number): void {
  hosts.set(status, (hosts.get(status) ?? 0) + n);
}

/** Applies stream events to the progress (created from the job's first event). */
export function applyEvents(
  p: Progress | undefined,
  jobId: number,
  events: JobEvent[],
): Progress | undefined {
  let cur = p;
  for (const e of events) {
    const d = e.data;
    if (e.event === 'job') {
      if (d.created === true && Array.isArray(d.steps))
        cur = {
          jobId,
          status: num(d.status) ?? 1,
          steps: (d.steps as Record<string, unknown>[]).map((s) => ({
            id: num(s.step_instance_id) ?? 0,
            status: num(s.status) ?? 1,
            executeCount: num(s.execute_count) ?? 0,
            hosts: countsOf(s.host_counts),
            batch: 0,
            batchCount: 0,
          })),
        };
      else if (cur && num(d.status) !== undefined) cur.status = num(d.status) ?? cur.status;
      continue;
    }
    if (e.event === 'end') {
      if (cur) cur.status = num(d.status) ?? cur.status;
      continue;
    }
    if (!cur) continue;
    const stepOf = (id: unknown) => cur?.steps.find((s) => s.id === id);
    if (e.event === 'step') {
      const s = stepOf(d.step_instance_id);
      if (!s) continue;
      s.status = num(d.status) ?? s.status;
      if (num(d.current_batch) !== undefined) s.batch = num(d.current_batch) ?? s.batch;
      if (d.host_counts) {
        s.hosts = countsOf(d.host_counts);
        s.executeCount = num(d.execute_count) ?? s.executeCount;
      }
    } else if (e.event === 'batch') {
      const s = stepOf(d.step_instance_id);
      if (s) {
        s.batch = num(d.batch) ?? s.batch;
        s.batchCount = num(d.batch_count) ?? s.batchCount;
      }
    } else if (e.event === 'host') {
      const s = stepOf(d.step_instance_id);
      if (!s || num(d.execute_count) !== s.executeCount) continue;
      const from = num(d.from_status);
      if (from !== undefined) add(s.hosts, from, -1);
      add(s.hosts, num(d.status) ?? 0, 1);
    } else if (e.event === 'coalesced' && Array.isArray(d.steps)) {
      for (const c of d.steps as Record<string, unknown>[]) {
        const s = stepOf(c.step_instance_id);
        if (!s || num(c.execute_count) !== s.executeCount) continue;
        for (const [status, n] of countsOf(c.status_delta)) add(s.hosts, status, n);
      }
    }
  }
  return cur;
}

/** The step running now, or the last one that ran (as job-report's currentStep). */
export function currentStepOf(p: Progress): StepProgress | undefined {
  return (
    p.steps.find((s) => s.status === 2 || s.status === 7 || s.status === 15) ??
    [...p.steps].reverse().find((s) => s.status !== 1) ??
    p.steps[0]
  );
}

export function stateCounts(s: StepProgress | undefined): Record<HostState, number> {
  const c = { ok: 0, failed: 0, running: 0, waiting: 0 };
  for (const [status, n] of s?.hosts ?? []) if (n > 0) c[hostState(status)] += n;
  return c;
}

/** The live line: counts by state, rate, elapsed, step N/M and the rolling batch. */
export function progressLine(p: Progress, startedAt: number): string {
  const step = currentStepOf(p);
  const n = stateCounts(step);
  const done = n.ok + n.failed;
  const secs = (Date.now() - startedAt) / 1000;
  const stepText = p.steps.length > 1 && step ? ` · step ${p.steps.indexOf(step) + 1}/${p.steps.length}` : '';
  const batchText =
    step && step.batch > 0 ? ` · batch ${step.batch}${step.batchCount > 0 ? `/${step.batchCount}` : ''}` : '';
  return `job ${p.jobId} ${RUN_STATUS_NAMES[p.status] ?? ''} · ${n.ok} ok ${n.failed} failed ${n.running} running ${n.waiting} waiting · ${secs > 0 ? (done / secs).toFixed(1) : '0'}/s · ${duration(Date.now() - startedAt)}${stepText}${batchText}`;
}
