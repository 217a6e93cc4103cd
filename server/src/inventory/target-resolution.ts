/**
 * Target resolution: turns a BK-JOB `target_server` into the de-duplicated hosts of a scope,
 * with BK-JOB's errors (behaviour notes §5):
 * - all lists empty: 1244001;
 * - host_id_list given: ip_list is ignored entirely;
 * - unknown host ids, cloud:ip pairs, topology nodes or dynamic groups: 1244030 listing them;
 * - hosts that exist but belong to no business of the scope: 1244002 listing them;
 * - nothing left after expansion: 1244028.
 *
 * A job a cron starts keeps going when hosts its plan names no longer exist (behaviour notes
 * §5): each host named by id (in `host_id_list`, or an `ip_list` entry carrying `bk_host_id`)
 * that is gone comes back as a missing host, which the job shows at per-host status 2 while
 * the others run; so is a host that has left the scope's businesses (instead of 1244002). A
 * host named only by cloud:ip, and a topology node or dynamic group that is gone, still answer
 * 1244030: there is no host id to mark.
 */
import type { ResolvedScope } from '../api/scope.js';
import type { TargetServer } from '../api/input-types.js';
import { ApiError } from '../api/error-catalogue.js';
import type { InventoryStore, TargetHost } from '../store/inventory-store.js';
import { DynamicGroupFilter, hostMatches } from './dynamic-group.js';

export function isTargetEmpty(t: TargetServer): boolean {
  return (
    !t.host_id_list?.length &&
    !t.ip_list?.length &&
    !t.topo_node_list?.length &&
    !t.dynamic_group_list?.length
  );
}

/** A host named by id that no longer exists, as a cron's job marks it. */
export interface MissingHost {
  hostId: number;
  cloudId: number;
  ip: string;
}

export async function resolveTargets(
  inv: InventoryStore,
  scope: ResolvedScope,
  target: TargetServer,
): Promise<TargetHost[]> {
  return (await resolveTargetsOf(inv, scope, target, false)).hosts;
}

/** As resolveTargets, with the hosts named by id that no longer exist returned instead of refused. */
export async function resolveTargetsKeepingMissing(
  inv: InventoryStore,
  scope: ResolvedScope,
  target: TargetServer,
): Promise<{ hosts: TargetHost[]; missing: MissingHost[] }> {
  return resolveTargetsOf(inv, scope, target, true);
}

type IpEntryWithId = NonNullable<TargetServer['ip_list']>[number] & { bk_host_id?: number };

async function resolveTargetsOf(
  inv: InventoryStore,
  scope: ResolvedScope,
  target: TargetServer,
  keepMissing: boolean,
): Promise<{ hosts: TargetHost[]; missing: MissingHost[] }> {
  if (isTargetEmpty(target)) throw new ApiError('SERVER_EMPTY');
  const found = new Map<number, TargetHost>();
  const missing: string[] = [];
  const gone = new Map<number, MissingHost>();
  const add = (hosts: Iterable<TargetHost>) => {
    for (const h of hosts) if (!found.has(h.id)) found.set(h.id, h);
  };

  if (target.host_id_list?.length) {
    const ids = [...new Set(target.host_id_list)];
    const byId = new Map<number, TargetHost>();
    for (const h of await inv.getTargetHostsByIds(ids)) byId.set(h.id, h);
    // In the order asked (rolling batches follow it); `found` is empty, and the ids distinct.
    for (const id of ids) {
      const h = byId.get(id);
      if (h) found.set(id, h);
      else if (keepMissing) gone.set(id, { hostId: id, cloudId: 0, ip: '' });
      else missing.push(`(host_id:${id})`);
    }
  } else if (target.ip_list?.length) {
    // Plans keep the bk_host_id an ip_list entry was read back with.
    const pairs = (target.ip_list as IpEntryWithId[]).map((p) => ({
      cloudId: p.bk_cloud_id,
      ip: p.ip,
      hostId: p.bk_host_id,
    }));
    const hosts = await inv.getHostsByCloudIps(pairs);
    const byKey = new Map(hosts.map((h) => [`${h.cloud_id}:${h.ip}`, h]));
    for (const p of pairs) {
      const h = byKey.get(`${p.cloudId}:${p.ip}`);
      if (h) add([h]);
      else if (keepMissing && p.hostId !== undefined)
        gone.set(p.hostId, { hostId: p.hostId, cloudId: p.cloudId, ip: p.ip });
      else missing.push(`(ip:${p.cloudId}:${p.ip})`);
    }
  }

  // Each node once: a list repeating a business node read all its hosts for every copy.
  const nodes = new Map((target.topo_node_list ?? []).map((n) => [`${n.node_type}:${n.id}`, n]));
  for (const node of nodes.values()) {
    const hosts = await hostsOfTopoNode(inv, scope, node.node_type, node.id);
    if (hosts === undefined) missing.push(`(topo_node:${node.node_type}:${node.id})`);
    else add(hosts);
  }

  if (target.dynamic_group_list?.length) {
    const ids = [...new Set(target.dynamic_group_list.map((g) => g.id))];
    const groups = await inv.getDynamicGroups(ids);
    const byId = new Map(groups.map((g) => [g.id, g]));
    for (const id of ids) {
      const g = byId.get(id);
      if (!g || !scope.bizIds.includes(g.biz_id)) {
        missing.push(`(dynamic_group:${id})`);
        continue;
      }
      const filter = DynamicGroupFilter.parse(JSON.parse(g.filter));
      const hosts = await inv.groupHostsOfBiz(g.biz_id);
      const modules = filter.module_ids
        ? await inv.moduleIdsOfBizHosts(g.biz_id)
        : new Map<number, number[]>();
      add(hosts.filter((h) => hostMatches(h, modules.get(h.id) ?? [], filter)));
    }
  }

  if (missing.length > 0) {
    throw new ApiError('EXECUTE_OBJECT_NOT_EXIST', {
      count: missing.length,
      objects: missing.slice(0, 100).join(','),
    });
  }
  const outside = [...found.values()].filter((h) => h.biz_id === null || !scope.bizIds.includes(h.biz_id));
  if (keepMissing) {
    // A cron's job: a host moved out of the scope since the plan was saved is marked as one
    // that no longer exists is (BK-JOB marks it invalid for cron runs and runs the rest).
    for (const h of outside) {
      found.delete(h.id);
      gone.set(h.id, { hostId: h.id, cloudId: h.cloud_id, ip: h.ip });
    }
  } else if (outside.length > 0) {
    throw new ApiError('HOST_INVALID', {
      count: outside.length,
      scopeType: scope.type,
      scopeId: scope.id,
      hosts: outside
        .slice(0, 100)
        .map((h) => `(host_id:${h.id},ip:${h.cloud_id}:${h.ip})`)
        .join(','),
    });
  }
  for (const id of found.keys()) gone.delete(id);
  if (found.size === 0 && gone.size === 0) throw new ApiError('STEP_TARGET_EMPTY');
  return { hosts: [...found.values()], missing: [...gone.values()] };
}

/** Hosts under a topology node of the scope, or undefined when the node is not in the scope. */
async function hostsOfTopoNode(
  inv: InventoryStore,
  scope: ResolvedScope,
  nodeType: string,
  id: number,
): Promise<TargetHost[] | undefined> {
  switch (nodeType) {
    case 'biz':
      return scope.bizIds.includes(id) ? inv.targetHostsOfBiz(id) : undefined;
    case 'set': {
      const set = await inv.getSet(id);
      if (!set || !scope.bizIds.includes(set.biz_id)) return undefined;
      return inv.targetHostsInModules(await inv.moduleIdsOfSets([id]), set.biz_id);
    }
    case 'module': {
      const module = await inv.getModule(id);
      if (!module || !scope.bizIds.includes(module.biz_id)) return undefined;
      return inv.targetHostsInModules([id], module.biz_id);
    }
    default:
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'topo_node_list.node_type',
        reason: `"${nodeType}" is not one of biz, set, module`,
      });
  }
}
