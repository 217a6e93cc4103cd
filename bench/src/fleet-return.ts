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
    const allBack = await untilConnected(
      () => connectedAgents(back.url),
      hostIds.length,
      { at: listening, what: 'the restart' },
      timeoutMs,
    );
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

/**
 * Reads `connected` every POLL_MS until it counts `agents`; returns that moment
 * (performance.now()). Throws once `timeoutMs` passed since `since.at`.
 */
export async function untilConnected(
  connected: () => Promise<number>,
  agents: number,
  since: { at: number; what: string },
  timeoutMs: number,
): Promise<number> {
  let n = 0;
  while ((n = await connected()) < agents) {
    if (performance.now() > since.at + timeoutMs)
      throw new Error(`${n} of ${agents} agents connected ${timeoutMs} ms after ${since.what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return performance.now();
}

/** The agents connected to the server, from its metrics. */
export async function connectedAgents(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^jobfleet_agents\{state="connected"\} (\d+)$/m.exec(text);
  if (!m?.[1]) throw new Error('the server metrics have no jobfleet_agents{state="connected"}');
  return Number(m[1]);
}
