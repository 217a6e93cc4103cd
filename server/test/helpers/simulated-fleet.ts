/**
 * A big fleet for end-to-end tests: the bench's fleet simulator (one process, many agents,
 * each with its own identity and WebSocket) with the noop executor, placed in business BIZ.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { admin } from './api-client.js';
import type { ApiCreds } from './api-client.js';
import { REPO_ROOT, killProcess, startServer, tempDir } from './processes.js';
import type { ServerProcess } from './processes.js';

const SIMULATOR = path.join(REPO_ROOT, 'bench', 'dist', 'src', 'fleet-simulator.js');

export interface SimulatedFleet {
  hostIds: number[];
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The ids of the fleet's hosts numbered `from` to `to` (1-based, the simulator's order, which its
 * `sim-output` rules go by), in id order.
 */
export function numberedHosts(fleet: SimulatedFleet, from: number, to: number): number[] {
  return fleet.hostIds.slice(from - 1, to).sort((a, b) => a - b);
}

export function startSimulatedFleet(
  server: { url: string; bootstrapToken: string },
  agents: number,
  biz: number,
  executor: 'noop' | 'process' = 'noop',
): Promise<SimulatedFleet> {
  const proc = spawn(
    process.execPath,
    [
      SIMULATOR,
      '--server',
      server.url,
      '--token',
      server.bootstrapToken,
      '--agents',
      String(agents),
      '--biz',
      String(biz),
      '--executor',
      executor,
      '--state-root',
      tempDir('sim'),
      '--concurrency',
      '32',
      // A loaded machine registers hundreds of agents slowly; the test waits rather than fails.
      '--ready-timeout-ms',
      '600000',
    ],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as { event: string; hostIds?: number[]; message?: string };
        if (msg.event === 'ready')
          resolve({ hostIds: msg.hostIds ?? [], proc, stop: () => killProcess(proc, 'SIGTERM') });
        if (msg.event === 'failed') reject(new Error(`fleet simulator failed: ${msg.message ?? ''}`));
      }
    });
    proc.once('exit', (code) => reject(new Error(`fleet simulator exited with ${code}`)));
  });
}

/**
 * A server (on `databaseUrl`; SQLite when undefined) whose business `biz` has an account of the
 * current user and `hosts` simulated agents, and the app's credentials to call it. Its agents
 * beat every 2 s (`env` may say otherwise): hundreds beating every 300 ms (the test default)
 * keep PostgreSQL's host rows busy.
 */
export async function startSimulatedServer(opts: {
  databaseUrl: string | undefined;
  env?: Record<string, string>;
  biz: number;
  bizName: string;
  hosts: number;
}): Promise<{ server: ServerProcess; fleet: SimulatedFleet; creds: ApiCreds }> {
  const { databaseUrl } = opts;
  const env = { JOBFLEET_HEARTBEAT_TIMEOUT_MS: '30000', JOBFLEET_HEARTBEAT_INTERVAL_MS: '2000', ...opts.env };
  const server = await startServer(databaseUrl ? { databaseUrl, env } : { env });
  await admin(server.url, server.adminToken, 'POST', '/biz', { id: opts.biz, name: opts.bizName });
  await admin(server.url, server.adminToken, 'POST', '/accounts', {
    bk_biz_id: opts.biz,
    alias: os.userInfo().username,
    os_user: os.userInfo().username,
  });
  const fleet = await startSimulatedFleet(server, opts.hosts, opts.biz);
  return {
    server,
    fleet,
    creds: { appCode: server.appCode, appSecret: server.appSecret, username: 'tester' },
  };
}
