/**
 * Serialized get_job_instance_status replies of finished jobs. Clients poll finished jobs
 * over and over, and a finished job's hosts do not change unless an operation moves the job
 * again — which changes the job's or a step's status, end time or execute count, all part of
 * the key, so a stale reply is never served (on any server of a cluster: the key is read from
 * the store on every call). A few replies per store, the least recently used dropped first.
 */
import type { JobInstance, StepInstance } from '../../store/execution-store.js';

const MAX_ENTRIES = 32;
const caches = new WeakMap<object, Map<string, string>>();

export function replyKey(job: JobInstance, steps: readonly StepInstance[], withHosts: boolean): string {
  return JSON.stringify([
    job.id,
    job.status,
    job.end_time,
    withHosts,
    steps.map((s) => [s.id, s.status, s.execute_count, s.end_time]),
  ]);
}

export function cachedReply(owner: object, key: string): string | undefined {
  const cache = caches.get(owner);
  const hit = cache?.get(key);
  if (cache && hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
  }
  return hit;
}

export function rememberReply(owner: object, key: string, json: string): void {
  let cache = caches.get(owner);
  if (!cache) caches.set(owner, (cache = new Map()));
  cache.set(key, json);
  if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
}
