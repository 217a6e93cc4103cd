/**
 * `clush -b` / `dshbak -c` gathering: hosts whose output and exit code are the same share one
 * group; groups come largest first (then lowest exit code, then first host name).
 */
import { foldHosts } from './host-fold.js';

export interface HostOutput {
  host: string;
  hostId: number;
  ip?: string | null;
  status: number;
  exitCode: number | null;
  output: string;
}

export interface OutputGroup {
  hosts: string[];
  hostIds: number[];
  folded: string;
  exitCode: number | null;
  status: number;
  output: string;
}

/** `keyOf`: what "the same output" means (the output itself unless normalised). */
export function gatherOutputs(
  outputs: readonly HostOutput[],
  keyOf: (o: HostOutput) => string = (o) => o.output,
): OutputGroup[] {
  const byKey = new Map<string, OutputGroup>();
  for (const o of outputs) {
    const key = `${o.exitCode}\u0000${o.status}\u0000${keyOf(o)}`;
    let g = byKey.get(key);
    if (!g)
      byKey.set(
        key,
        (g = {
          hosts: [],
          hostIds: [],
          folded: '',
          exitCode: o.exitCode,
          status: o.status,
          output: o.output,
        }),
      );
    g.hosts.push(o.host);
    g.hostIds.push(o.hostId);
  }
  const groups = [...byKey.values()];
  for (const g of groups) g.folded = foldHosts(g.hosts);
  return groups.sort(
    (a, b) =>
      b.hosts.length - a.hosts.length ||
      (a.exitCode ?? -1) - (b.exitCode ?? -1) ||
      a.folded.localeCompare(b.folded),
  );
}
