/**
 * Host lists as people type them, one per line: `10.0.0.1` (cloud area 0), `2:10.0.0.1` (cloud
 * area 2) or `#17` (a bk_host_id); and back from a BK-JOB target_server.
 */

export interface TargetServer {
  /** A plan's detail adds `bk_host_id`, and null cloud and ip for a host the inventory lacks. */
  ip_list?: { bk_host_id?: number | null; bk_cloud_id: number | null; ip: string | null }[];
  host_id_list?: number[];
  [other: string]: unknown;
}

export function serverToText(server: TargetServer | null | undefined): string {
  if (!server) return '';
  // A plan's detail lists the hosts of host_id_list again in ip_list (BK-JOB's shape), those the
  // inventory does not know without an ip: each host once, by the id it was given by.
  const ids = new Set(server.host_id_list ?? []);
  const lines = [...ids].map((id) => `#${id}`);
  for (const h of server.ip_list ?? []) {
    if (h.ip === null || (h.bk_host_id != null && ids.has(h.bk_host_id))) continue;
    lines.push(h.bk_cloud_id ? `${h.bk_cloud_id}:${h.ip}` : h.ip);
  }
  return lines.join('\n');
}

export function textToServer(text: string): { server: TargetServer; bad: string[] } {
  const ipList: { bk_cloud_id: number; ip: string }[] = [];
  const ids: number[] = [];
  const bad: string[] = [];
  for (const raw of text.split(/[\s,;]+/)) {
    const s = raw.trim();
    if (!s) continue;
    const id = /^#(\d+)$/.exec(s);
    const ip = /^(?:(\d+):)?(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
    if (id) ids.push(Number(id[1]));
    else if (ip) ipList.push({ bk_cloud_id: Number(ip[1] ?? 0), ip: ip[2] ?? '' });
    else bad.push(s);
  }
  const server: TargetServer = {};
  if (ipList.length) server.ip_list = ipList;
  if (ids.length) server.host_id_list = ids;
  return { server, bad };
}

/**
 * A target edited as text: the host lists from the text; what the text does not show
 * (topology nodes, dynamic groups) kept from the original, so saving an edit does not drop it.
 */
export function withTextHosts(original: TargetServer | null | undefined, text: string): TargetServer {
  const kept: TargetServer = { ...(original ?? {}) };
  delete kept.ip_list;
  delete kept.host_id_list;
  delete kept.variable;
  return { ...kept, ...textToServer(text).server };
}
