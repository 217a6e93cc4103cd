/**
 * Encoded get_job_instance_status and get_step_instance_status replies (the `data` part), kept
 * per store and keyed by everything a reply shows: the serialized job and step fields, and per
 * step its execute count and hosts_version (bumped in the same commit as any host result of
 * the step, see host-results-cache.ts), with what was asked. The key is rebuilt from rows read
 * on every call, so a reply is served from here only while the store holds exactly what it
 * says, on any server of a cluster; a running job's poll hits as long as none of its hosts
 * changed. Least recently used replies go first, past a count and a byte budget (a
 * 50,000-host reply is 8.5 MB).
 */
const MAX_ENTRIES = 64;
const MAX_BYTES = 64 * 1024 * 1024;

interface Cache {
  replies: Map<string, Buffer>;
  bytes: number;
}

const caches = new WeakMap<object, Cache>();

export function cachedReply(owner: object, key: string): Buffer | undefined {
  const cache = caches.get(owner);
  const hit = cache?.replies.get(key);
  if (cache && hit !== undefined) {
    cache.replies.delete(key);
    cache.replies.set(key, hit);
  }
  return hit;
}

export function rememberReply(owner: object, key: string, reply: Buffer): void {
  let cache = caches.get(owner);
  if (!cache) caches.set(owner, (cache = { replies: new Map(), bytes: 0 }));
  const old = cache.replies.get(key);
  if (old) {
    cache.replies.delete(key);
    cache.bytes -= old.length;
  }
  cache.replies.set(key, reply);
  cache.bytes += reply.length;
  for (const [k, v] of cache.replies) {
    if (cache.replies.size <= MAX_ENTRIES && cache.bytes <= MAX_BYTES) break;
    if (k === key) continue;
    cache.replies.delete(k);
    cache.bytes -= v.length;
  }
}
