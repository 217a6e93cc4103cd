/**
 * P4.back: a connected fleet's return after its server restarts, as an upgrade or a supervisor
 * restarts it: SIGTERM, and the same command on the same port, data and database the moment
 * the old process exited. What an operator waits for is every agent connected again and a job
 * submitted meanwhile finished on every host, so both are timed from the moment it listens.
 */
import { BkApi } from './bk-api.js';
import { fanOut } from './fan-out.js';
import type { ServerHandle } from './processes.js';

export interface FleetReturn {
  /** The restarted server: the caller stops it. */
  server: ServerHandle;
  /** SIGTERM until the old process exited. */
  stopSeconds: number;
  /** The old process's exit until the new one listened. */
  startSeconds: number;
  /** Listening until every agent was connected again. */
  backSeconds: number;
  /** Listening until the job on every host, submitted then, was seen finished with every host successful. */
  jobSeconds: number;
}

/** /metrics is read this often while the fleet comes back: small beside seconds, light on the server. */
const POLL_MS = 100;

export async function fleetReturn(
  server: ServerHandle,
  hostIds: number[],
  account: string,
  timeoutMs: number,
): Promise<FleetReturn> {
  const t0 = performance.now();
  await server.stop();
  const stopped = performance.now();
  const back = await server.restart();
  const listening = performance.now();
  try {
    const job = fanOut(new BkApi(back.url, back.secrets), hostIds, account);
    // A job that fails must not leave a rejection unobserved while the fleet is awaited.
    job.catch(() => undefined);
    const deadline = listening + timeoutMs;
    let connected = 0;
    while ((connected = await connectedAgents(back.url)) < hostIds.length) {
      if (performance.now() > deadline)
        throw new Error(
          `${connected} of ${hostIds.length} agents connected ${timeoutMs} ms after the restart`,
        );
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const allBack = performance.now();
    const run = await job;
    return {
      server: back,
      stopSeconds: (stopped - t0) / 1000,
      startSeconds: (listening - stopped) / 1000,
      backSeconds: (allBack - listening) / 1000,
      jobSeconds: run.totalSeconds,
    };
  } catch (err) {
    await back.stop();
    throw err;
  }
}

/** The agents connected to the server, from its metrics. */
export async function connectedAgents(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^jobfleet_agents\{state="connected"\} (\d+)$/m.exec(text);
  if (!m?.[1]) throw new Error('the server metrics have no jobfleet_agents{state="connected"}');
  return Number(m[1]);
}
