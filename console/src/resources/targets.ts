/**
 * Host lists as people type them, one per line: `10.0.0.1` (cloud area 0), `2:10.0.0.1` (cloud
 * area 2) or `#17` (a bk_host_id); and back from a BK-JOB target_server.
 */

export interface TargetServer {
  ip_list?: { bk_cloud_id: number; ip: string }[];
  host_id_list?: number[];
  [other: string]: unknown;
}

export function serverToText(server: TargetServer | null | undefined): string {
  if (!server) return '';
  const lines = [
    ...(server.host_id_list ?? []).map((id) => `#${id}`),
    ...(server.ip_list ?? []).map((h) => (h.bk_cloud_id ? `${h.bk_cloud_id}:${h.ip}` : h.ip)),
  ];
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
