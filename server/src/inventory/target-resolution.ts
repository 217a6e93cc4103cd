/**
 * Target resolution: turns a BK-JOB `target_server` into the de-duplicated hosts of a scope,
 * with BK-JOB's errors (behaviour notes §5):
 * - all lists empty: 1244001;
 * - host_id_list given: ip_list is ignored entirely;
 * - unknown host ids, cloud:ip pairs, topology nodes or dynamic groups: 1244030 listing them;
 * - hosts that exist but belong to no business of the scope: 1244002 listing them;
 * - nothing left after expansion: 1244028.
 */
import type { ResolvedScope } from '../api/scope.js';
import type { TargetServer } from '../api/input-types.js';
import { ApiError } from '../api/error-catalogue.js';
import type { Host, InventoryStore } from '../store/inventory-store.js';
import { DynamicGroupFilter, hostMatches } from './dynamic-group.js';

export function isTargetEmpty(t: TargetServer): boolean {
  return (
    !t.host_id_list?.length &&
    !t.ip_list?.length &&
    !t.topo_node_list?.length &&
    !t.dynamic_group_list?.length
  );
}

export async function resolveTargets(
  inv: InventoryStore,
  scope: ResolvedScope,
  target: TargetServer,
): Promise<Host[]> {
  if (isTargetEmpty(target)) throw new ApiError('SERVER_EMPTY');
  const found = new Map<number, Host>();
  const missing: string[] = [];
  const add = (hosts: Iterable<Host>) => {
    for (const h of hosts) if (!found.has(h.id)) found.set(h.id, h);
  };

  if (target.host_id_list?.length) {
    const ids = [...new Set(target.host_id_list)];
    const hosts = await inv.getHostsByIds(ids);
    const byId = new Map(hosts.map((h) => [h.id, h]));
    for (const id of ids) {
      const h = byId.get(id);
      if (h) add([h]);
      else missing.push(`(host_id:${id})`);
    }
  } else if (target.ip_list?.length) {
    const pairs = target.ip_list.map((p) => ({ cloudId: p.bk_cloud_id, ip: p.ip }));
    const hosts = await inv.getHostsByCloudIps(pairs);
    const byKey = new Map(hosts.map((h) => [`${h.cloud_id}:${h.ip}`, h]));
    for (const p of pairs) {
      const h = byKey.get(`${p.cloudId}:${p.ip}`);
      if (h) add([h]);
      else missing.push(`(ip:${p.cloudId}:${p.ip})`);
    }
  }

  for (const node of target.topo_node_list ?? []) {
    const hosts = await hostsOfTopoNode(inv, scope, node.node_type, node.id);
    if (hosts === undefined) missing.push(`(topo_node:${node.node_type}:${node.id})`);
    else add(hosts);
  }

  if (target.dynamic_group_list?.length) {
    const ids = [...new Set(target.dynamic_group_list.map((g) => g.id))];
    const groups = await inv.getDynamicGroups(ids);
    for (const id of ids) {
      const g = groups.find((x) => x.id === id);
      if (!g || !scope.bizIds.includes(g.biz_id)) {
        missing.push(`(dynamic_group:${id})`);
        continue;
      }
      const filter = DynamicGroupFilter.parse(JSON.parse(g.filter));
      const hosts = await inv.listHosts({ bizId: g.biz_id });
      const modules = filter.module_ids
        ? await inv.moduleIdsOfHosts(hosts.map((h) => h.id))
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
  if (outside.length > 0) {
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
  if (found.size === 0) throw new ApiError('STEP_TARGET_EMPTY');
  return [...found.values()];
}

/** Hosts under a topology node of the scope, or undefined when the node is not in the scope. */
async function hostsOfTopoNode(
  inv: InventoryStore,
  scope: ResolvedScope,
  nodeType: string,
  id: number,
): Promise<Host[] | undefined> {
  switch (nodeType) {
    case 'biz':
      return scope.bizIds.includes(id) ? inv.listHosts({ bizId: id }) : undefined;
    case 'set': {
      const set = await inv.getSet(id);
      if (!set || !scope.bizIds.includes(set.biz_id)) return undefined;
      return inv.getHostsByIds(await inv.hostIdsInModules(await inv.moduleIdsOfSets([id])));
    }
    case 'module': {
      const module = await inv.getModule(id);
      if (!module || !scope.bizIds.includes(module.biz_id)) return undefined;
      return inv.getHostsByIds(await inv.hostIdsInModules([id]));
    }
    default:
      throw new ApiError('ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'topo_node_list.node_type',
        reason: `"${nodeType}" is not one of biz, set, module`,
      });
  }
}
