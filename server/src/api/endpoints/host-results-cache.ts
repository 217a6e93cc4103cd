/**
 * The serialized step_ip_result_list of get_job_instance_status, kept per step execution and
 * brought up to date by version instead of being read and serialized on every poll.
 *
 * Every commit that changes a host's result bumps its step's hosts_version and stamps the rows
 * it changed with the new version (execution-store commitTaskWrites). A poll reads the step
 * row anyway; when its hosts_version is the one held here, the list is served as it is; when
 * it moved, only the rows stamped after the held version are read and re-serialized. The
 * version comes from the store on every call, so a change recorded by any server of a cluster
 * is seen at the next poll and a stale list is never served.
 *
 * A finished step's list is read whole as JSON text built by the store and held as that one
 * string: its hosts no longer change, and a row object and a string per host (50,000 of each
 * for a large step) were garbage the next request paid for.
 */
import { isRunFinished } from '../../engine/statuses.js';
import type { ExecutionStore, HostTask, StepHead } from '../../store/execution-store.js';
import { totalTime } from './job-lookup.js';

/**
 * One host of get_job_instance_status's step_ip_result_list. ExecutionStore.hostResultsJson
 * builds the same objects, with the same fields in the same order, in the database.
 */
export function stepIpResult(t: HostTask) {
  return {
    bk_host_id: t.host_id,
    ip: t.ip,
    bk_cloud_id: t.cloud_id,
    status: t.status,
    tag: t.tag,
    exit_code: t.exit_code ?? 0,
    error_code: t.error_code,
    start_time: t.start_time,
    end_time: t.end_time,
    total_time: totalTime(t.start_time, t.end_time),
  };
}

function serialize(t: HostTask): string {
  return JSON.stringify(stepIpResult(t));
}

interface StepHosts {
  executeCount: number;
  version: number;
  /** One JSON object per host, in host id order; not kept for a finished step's list. */
  hosts: Map<number, string> | undefined;
  /** `[...]` of all of them, built on first use after a change. */
  joined: string | undefined;
}

/** Step executions kept per store; a 10,000-host list is about 2 MB. */
const MAX_STEPS = 16;
const caches = new WeakMap<object, Map<number, StepHosts>>();
const updating = new WeakMap<object, Map<string, Promise<void>>>();

export async function hostResultsJson(owner: object, ex: ExecutionStore, step: StepHead): Promise<string> {
  let cache = caches.get(owner);
  if (!cache) caches.set(owner, (cache = new Map()));
  // One update of a step's list at a time, so that a slower read never overwrites a newer one.
  const lockKey = `${step.id}`;
  let locks = updating.get(owner);
  if (!locks) updating.set(owner, (locks = new Map()));
  for (let busy = locks.get(lockKey); busy; busy = locks.get(lockKey)) await busy;
  const version = Number(step.hosts_version);
  let entry = cache.get(step.id);
  if (entry && entry.executeCount !== step.execute_count) entry = undefined;
  if (entry?.version !== version) {
    const update = refresh(ex, step, entry);
    const done = update.then(
      () => undefined,
      () => undefined,
    );
    locks.set(lockKey, done);
    try {
      entry = await update;
    } finally {
      locks.delete(lockKey);
    }
    // Stamped with the version read before the rows: anything newer is read again next time.
    entry.version = version;
    entry.executeCount = step.execute_count;
  }
  cache.delete(step.id);
  cache.set(step.id, entry);
  if (cache.size > MAX_STEPS) cache.delete(cache.keys().next().value as number);
  entry.joined ??= `[${[...(entry.hosts?.values() ?? [])].join(',')}]`;
  return entry.joined;
}

async function refresh(ex: ExecutionStore, step: StepHead, entry: StepHosts | undefined): Promise<StepHosts> {
  if (isRunFinished(step.status)) {
    const joined = await ex.hostResultsJson(step.id, step.execute_count);
    return { executeCount: -1, version: -1, hosts: undefined, joined };
  }
  if (entry) {
    const rows = await ex.listHostTasksChangedSince(step.id, step.execute_count, entry.version);
    const updated = apply(entry, rows);
    if (updated) return updated;
  }
  return full(await ex.listHostTasks(step.id, step.execute_count));
}

/** The held list with `rows` replacing their hosts; undefined when a full read is needed. */
function apply(entry: StepHosts | undefined, rows: HostTask[]): StepHosts | undefined {
  if (!entry?.hosts) return undefined;
  const hosts = entry.hosts;
  // A host the list does not have yet would be out of order: read the whole list instead.
  if (rows.some((r) => !hosts.has(r.host_id))) return undefined;
  for (const r of rows) hosts.set(r.host_id, serialize(r));
  if (rows.length > 0) entry.joined = undefined;
  return entry;
}

function full(rows: HostTask[]): StepHosts {
  return {
    executeCount: -1,
    version: -1,
    hosts: new Map(rows.map((r) => [r.host_id, serialize(r)])),
    joined: undefined,
  };
}
