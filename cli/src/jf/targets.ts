/**
 * Target expressions of `jf run -t`, turned into a v3 `target_server`:
 *   42                  host id
 *   10.0.1.5, 2:10.0.1.5   ip (cloud 0 unless given as cloud:ip)
 *   10.0.1.[1-40,50]    a range of ips (any bracketed part; several brackets multiply)
 *   topo:module:7       a topology node (node type : id)
 *   group:ID            a dynamic group
 *   @hosts.txt          the expressions in a file (whitespace, comma or newline separated; # comments)
 * Several expressions are separated by commas or repeated -t flags.
 */
import fs from 'node:fs';
import { CliError, Exit } from './exit-codes.js';

export interface TargetServer {
  host_id_list?: number[];
  ip_list?: { bk_cloud_id: number; ip: string }[];
  topo_node_list?: { id: number; node_type: string }[];
  dynamic_group_list?: { id: string }[];
}

const MAX_EXPANSION = 100_000;

/** Splits on commas that are not inside brackets. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of text) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if ((c === ',' && depth === 0) || /\s/.test(c)) {
      if (cur) parts.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur) parts.push(cur);
  return parts;
}

function tooMany(expr: string): CliError {
  return new CliError(`target "${expr}" expands to more than ${MAX_EXPANSION} hosts`, Exit.USAGE);
}

/** `10.0.1.[1-3,7]` -> 10.0.1.1, 10.0.1.2, 10.0.1.3, 10.0.1.7 (zero padding kept: web[01-03]). */
export function expandBrackets(expr: string): string[] {
  const m = /^(.*?)\[([^\]]*)\](.*)$/.exec(expr);
  if (!m) {
    if (/[[\]]/.test(expr)) throw new CliError(`target "${expr}" has an unbalanced bracket`, Exit.USAGE);
    return [expr];
  }
  const [, head = '', body = '', tail = ''] = m;
  const items: string[] = [];
  for (const part of body.split(',')) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!r)
      throw new CliError(`target "${expr}": "${part}" is not a number or a range like 1-40`, Exit.USAGE);
    const from = Number(r[1]);
    const to = r[2] === undefined ? from : Number(r[2]);
    if (to < from) throw new CliError(`target "${expr}": range ${part} runs backwards`, Exit.USAGE);
    if (to - from + items.length >= MAX_EXPANSION) throw tooMany(expr);
    const width = (r[1] as string).startsWith('0') ? (r[1] as string).length : 0;
    for (let n = from; n <= to; n++) items.push(String(n).padStart(width, '0'));
  }
  const rests = expandBrackets(tail);
  // Brackets multiply: two of 100,000 each would make 10^10 names before any limit was seen.
  if (items.length * rests.length > MAX_EXPANSION) throw tooMany(expr);
  return items.flatMap((i) => rests.map((rest) => `${head}${i}${rest}`));
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIp(text: string): boolean {
  const m = IPV4.exec(text);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

export function parseTargets(
  exprs: string[],
  readFile = (f: string) => fs.readFileSync(f, 'utf8'),
): TargetServer {
  const hostIds = new Set<number>();
  const ips = new Map<string, { bk_cloud_id: number; ip: string }>();
  const topo: { id: number; node_type: string }[] = [];
  const groups: { id: string }[] = [];
  const visit = (expr: string): void => {
    if (expr.startsWith('@')) {
      let text: string;
      try {
        text = readFile(expr.slice(1));
      } catch {
        throw new CliError(`cannot read target file ${expr.slice(1)}`, Exit.USAGE);
      }
      for (const line of text.split('\n')) splitTop(line.replace(/#.*/, '')).forEach(visit);
      return;
    }
    const topoM = /^topo:([a-z_]+):(\d+)$/.exec(expr);
    if (topoM) return void topo.push({ node_type: topoM[1] as string, id: Number(topoM[2]) });
    const groupM = /^group:(.+)$/.exec(expr);
    if (groupM) return void groups.push({ id: groupM[1] as string });
    for (const one of expandBrackets(expr)) {
      if (/^\d+$/.test(one)) {
        hostIds.add(Number(one));
        continue;
      }
      const cm = /^(\d+):(.+)$/.exec(one);
      const cloud = cm ? Number(cm[1]) : 0;
      const ip = cm ? (cm[2] as string) : one;
      if (!isIp(ip))
        throw new CliError(
          `target "${one}" is not a host id, ip, cloud:ip, ip range, topo:<type>:<id>, group:<id> or @file`,
          Exit.USAGE,
        );
      ips.set(`${cloud}:${ip}`, { bk_cloud_id: cloud, ip });
    }
  };
  for (const e of exprs) splitTop(e).forEach(visit);
  // The v3 API ignores ip_list when host_id_list is given (BK-JOB's rule): refuse the mix rather
  // than silently run on fewer hosts.
  if (hostIds.size && ips.size)
    throw new CliError(
      'targets mix host ids and ips; the API takes one or the other: give all as ids or all as ips',
      Exit.USAGE,
    );
  const out: TargetServer = {};
  if (hostIds.size) out.host_id_list = [...hostIds];
  if (ips.size) out.ip_list = [...ips.values()];
  if (topo.length) out.topo_node_list = topo;
  if (groups.length) out.dynamic_group_list = groups;
  if (Object.keys(out).length === 0)
    throw new CliError('no targets: pass -t with hosts (see jf run script --help)', Exit.USAGE);
  return out;
}
