/**
 * Turning rows of the job event log into Server-Sent Events messages, and folding many host
 * and log events into one `coalesced` message when a client may not receive them one by one.
 *
 * Job, step and batch events are never folded (they are few and each matters); a run of host
 * and log events between two of them becomes one message carrying exact counts: for each step
 * attempt, how many hosts entered and left each status (apply these to the `host_counts` of
 * the job's `created` event or of a retry's `step` event to get exact totals), and how many log
 * bytes were appended on how many hosts. Its id is the id of the last event it covers, so a
 * client resuming from it misses nothing and sees nothing twice.
 */
import type { JobEventRow } from '../store/job-event-log.js';

export function sseMessage(id: number, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
}

export function messageOf(row: JobEventRow): string {
  return sseMessage(row.id, row.kind, row.data);
}

interface AttemptFold {
  job_instance_id: number;
  step_instance_id: number;
  execute_count: number;
  host_events: number;
  status_delta: Record<string, number>;
  exit_codes: Record<string, number>;
  log_notices: number;
  log_hosts: Set<number>;
  log_bytes: number;
}

interface HostOrLog {
  job_instance_id: number;
  step_instance_id: number;
  execute_count: number;
  bk_host_id: number;
  from_status?: number | null;
  status?: number;
  exit_code?: number | null;
  length?: number;
}

function foldRun(rows: readonly JobEventRow[]): string {
  const attempts = new Map<string, AttemptFold>();
  for (const row of rows) {
    const e = JSON.parse(row.data) as HostOrLog;
    const key = `${e.step_instance_id}:${e.execute_count}`;
    let a = attempts.get(key);
    if (!a) {
      a = {
        job_instance_id: e.job_instance_id,
        step_instance_id: e.step_instance_id,
        execute_count: e.execute_count,
        host_events: 0,
        status_delta: {},
        exit_codes: {},
        log_notices: 0,
        log_hosts: new Set(),
        log_bytes: 0,
      };
      attempts.set(key, a);
    }
    if (row.kind === 'host' && e.status !== undefined) {
      a.host_events++;
      if (e.from_status !== undefined && e.from_status !== null)
        a.status_delta[e.from_status] = (a.status_delta[e.from_status] ?? 0) - 1;
      a.status_delta[e.status] = (a.status_delta[e.status] ?? 0) + 1;
      if (e.exit_code !== undefined && e.exit_code !== null)
        a.exit_codes[e.exit_code] = (a.exit_codes[e.exit_code] ?? 0) + 1;
    } else if (row.kind === 'log') {
      a.log_notices++;
      a.log_hosts.add(e.bk_host_id);
      a.log_bytes += e.length ?? 0;
    }
  }
  const first = rows[0];
  const last = rows[rows.length - 1];
  if (!first || !last) return '';
  const data = {
    first_id: first.id,
    last_id: last.id,
    events: rows.length,
    steps: [...attempts.values()].map((a) => ({ ...a, log_hosts: a.log_hosts.size })),
  };
  return sseMessage(last.id, 'coalesced', JSON.stringify(data));
}

/** Messages for `rows`: one each, or with host/log runs folded when `fold` is set. */
export function messagesOf(rows: readonly JobEventRow[], fold: boolean): string[] {
  if (!fold) return rows.map(messageOf);
  const out: string[] = [];
  let run: JobEventRow[] = [];
  const flush = () => {
    if (run.length === 1 && run[0]) out.push(messageOf(run[0]));
    else if (run.length > 1) out.push(foldRun(run));
    run = [];
  };
  for (const row of rows) {
    if (row.kind === 'host' || row.kind === 'log') {
      run.push(row);
      continue;
    }
    flush();
    out.push(messageOf(row));
  }
  flush();
  return out;
}
