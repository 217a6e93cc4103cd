/**
 * Host targets as get_job_plan_detail shows them (behaviour notes §3.16): whatever was authored,
 * BK-JOB answers a step's or host variable's hosts as `ip_list` entries `{bk_host_id,
 * bk_cloud_id, ip}`, with `dynamic_group_list` and `topo_node_list` always present. Templates
 * and plans store the server as authored; it is rendered here, at read time, so a host that
 * moves to another ip shows its current address.
 */
import type { InventoryStore } from '../store/inventory-store.js';
import type { StepServer } from './plan-shapes.js';

/** The inventory's answer for the hosts of one detail, looked up once for all its servers. */
export interface HostLookup {
  byId: Map<number, { cloudId: number; ip: string }>;
  /** `cloud:ip` -> bk_host_id */
  byCloudIp: Map<string, number>;
}

export interface IpView {
  bk_host_id: number | null;
  bk_cloud_id: number | null;
  ip: string | null;
}

const cloudIp = (cloudId: number, ip: string) => `${cloudId}:${ip}`;

/** Whether the server's hosts come from host_id_list (ip_list is then ignored, as in a run). */
const byHostIds = (s: StepServer) => (s.host_id_list?.length ?? 0) > 0;

/**
 * The hosts the servers name, among those of the scope's businesses (`bizIds`): a host of
 * another business shows as one the inventory does not know, so a plan or cron cannot be used
 * to read other businesses' addresses (a run refuses such a host anyway, 1244002).
 */
export async function lookUpHosts(
  inv: InventoryStore,
  servers: readonly (StepServer | null | undefined)[],
  bizIds: readonly number[],
): Promise<HostLookup> {
  const inScope = (h: { biz_id: number | null }) => h.biz_id !== null && bizIds.includes(h.biz_id);
  const ids = new Set<number>();
  const pairs = new Map<string, { cloudId: number; ip: string }>();
  for (const s of servers) {
    if (!s) continue;
    if (byHostIds(s)) for (const id of s.host_id_list ?? []) ids.add(id);
    else
      for (const e of s.ip_list ?? [])
        pairs.set(cloudIp(e.bk_cloud_id, e.ip), { cloudId: e.bk_cloud_id, ip: e.ip });
  }
  const byId = new Map<number, { cloudId: number; ip: string }>();
  if (ids.size > 0)
    for (const h of await inv.getTargetHostsByIds([...ids]))
      if (inScope(h)) byId.set(h.id, { cloudId: h.cloud_id, ip: h.ip });
  const byCloudIp = new Map<string, number>();
  if (pairs.size > 0)
    for (const h of await inv.getHostsByCloudIps([...pairs.values()]))
      if (inScope(h)) byCloudIp.set(cloudIp(h.cloud_id, h.ip), h.id);
  return { byId, byCloudIp };
}

/**
 * A server as BK-JOB renders it: `{variable?, ip_list, host_id_list?, dynamic_group_list,
 * topo_node_list}`. host_id_list stays when it was authored, so that a client writing the detail
 * back keeps naming hosts by id.
 *
 * A host id the inventory does not know (the host was deleted since) stays in ip_list as
 * `{bk_host_id, bk_cloud_id: null, ip: null}` rather than being left out: the plan still names
 * it (a run refuses it with 1244030, a cron's job shows it as missing), a client counting the
 * entries should see it, and null is what BK-JOB's serialiser writes for fields it cannot fill.
 * An ip_list entry the inventory does not know keeps its cloud:ip, with the bk_host_id it was
 * written back with, if any.
 */
export function serverView(s: StepServer, hosts: HostLookup) {
  const ipList: IpView[] = [];
  const seen = new Set<string>();
  if (byHostIds(s)) {
    for (const id of s.host_id_list ?? []) {
      if (seen.has(String(id))) continue;
      seen.add(String(id));
      const h = hosts.byId.get(id);
      ipList.push({ bk_host_id: id, bk_cloud_id: h?.cloudId ?? null, ip: h?.ip ?? null });
    }
  } else {
    for (const e of s.ip_list ?? []) {
      const key = cloudIp(e.bk_cloud_id, e.ip);
      if (seen.has(key)) continue;
      seen.add(key);
      const id = hosts.byCloudIp.get(key) ?? e.bk_host_id ?? null;
      ipList.push({ bk_host_id: id, bk_cloud_id: e.bk_cloud_id, ip: e.ip });
    }
  }
  return {
    ...(s.variable !== undefined ? { variable: s.variable } : {}),
    ip_list: ipList,
    ...(s.host_id_list !== undefined ? { host_id_list: s.host_id_list } : {}),
    dynamic_group_list: s.dynamic_group_list ?? [],
    topo_node_list: s.topo_node_list ?? [],
  };
}
