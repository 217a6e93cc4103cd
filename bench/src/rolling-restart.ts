/**
 * P9.roll: the servers of a cluster restarted one by one, as an upgrade restarts them: each in
 * turn stopped by SIGTERM and started again on its port, data and database the moment it
 * exited, the next one once every agent is connected again. Its agents move to the next entry
 * of their lists meanwhile. A job on every host is submitted to the next server at each SIGTERM,
 * as clients go on using the cluster through an upgrade.
 */
import { BkApi } from './bk-api.js';
import { fanOut } from './fan-out.js';
import { connectedAgents, untilConnected } from './fleet-return.js';
import type { ServerHandle } from './processes.js';

export interface Restart {
  /** SIGTERM until every agent was connected again, to any server. */
  backSeconds: number;
  /** SIGTERM until the job on every host, submitted to the next server then, was seen finished. */
  jobSeconds: number;
}

export interface RollingRestart {
  restarts: Restart[];
  /** Agents connected to each server once the last one is back. */
  spread: number[];
}

/** Restarts `servers` in place (each entry replaced by its restarted server). */
export async function rollingRestart(
  servers: ServerHandle[],
  hostIds: number[],
  account: string,
  timeoutMs: number,
): Promise<RollingRestart> {
  const restarts: Restart[] = [];
  const connected = async () => Promise.all(servers.map((s) => connectedAgents(s.url).catch(() => 0)));
  for (let i = 0; i < servers.length; i++) {
    const next = servers[(i + 1) % servers.length] as ServerHandle;
    const t0 = performance.now();
    const job = fanOut(new BkApi(next.url, next.secrets), hostIds, account);
    // A job that fails must not leave a rejection unobserved while the fleet is awaited.
    job.catch(() => undefined);
    servers[i] = await (servers[i] as ServerHandle).restart();
    const back = await untilConnected(
      async () => (await connected()).reduce((a, b) => a + b, 0),
      hostIds.length,
      { at: t0, what: `the SIGTERM of server ${i + 1}` },
      timeoutMs,
    );
    const run = await job;
    restarts.push({ backSeconds: (back - t0) / 1000, jobSeconds: run.totalSeconds });
  }
  return { restarts, spread: await connected() };
}
