/**
 * Real server and agent processes for end-to-end tests. Each server gets its own data
 * directory and a free port; each agent its own identity (ip on 127.0.0.x) and state dir.
 * Every process started here is tracked and killed by `stopAll()` (call it in `after`).
 */
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './api-client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (this file is at server/dist/test/helpers/). */
export const REPO_ROOT = path.resolve(here, '../../../..');
export const CLI = path.join(REPO_ROOT, 'cli', 'bin', 'jobfleet.js');

const live = new Set<ChildProcess>();

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `jobfleet-test-${prefix}-`));
}

export interface ServerOptions {
  /** postgres:// URL; SQLite in the data dir when omitted. */
  databaseUrl?: string;
  dataDir?: string;
  /** Fixed port (to restart on the same address); a free one when omitted. */
  port?: number;
  env?: Record<string, string>;
  args?: string[];
  /** How long the start may take (default 20 s). */
  readyTimeoutMs?: number;
}

export interface ServerProcess {
  url: string;
  port: number;
  dataDir: string;
  /** The PostgreSQL URL it runs on; undefined for SQLite in its data dir. */
  databaseUrl: string | undefined;
  appCode: string;
  appSecret: string;
  adminToken: string;
  bootstrapToken: string;
  proc: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the same server again (same data dir, database and port). */
  restart(): Promise<ServerProcess>;
}

/**
 * For a fleet whose server a test restarts while tasks run: the heartbeat window within which
 * a host's agent must come back before its tasks end at 310. Agents return within a second or
 * so (their reconnect wait is capped at 1 s in tests), but a loaded machine can stretch the
 * reconnect and handshake past the default 3 s; the wider window costs nothing while agents
 * are there. Tests that wait for a lost agent's 310 keep the default.
 */
export const RESTART_HEARTBEAT_ENV = { JOBFLEET_HEARTBEAT_TIMEOUT_MS: '10000' } as const;

export const TEST_SECRETS = {
  appCode: 'test-app',
  appSecret: 'test-app-secret-1234',
  adminToken: 'test-admin-token-1234',
  /**
   * One per test file (process): its servers, a cluster's included, share it. Test files run
   * two at a time, every fleet uses the same ips, and an agent whose server is down retries its
   * address each second: if another file's server has taken that port meanwhile, the agent's
   * token is refused there and it registers again with the bootstrap token. With one token for
   * all files it then took over that fleet's host of the same ip, and ran its tasks.
   */
  bootstrapToken: `test-bootstrap-${crypto.randomBytes(9).toString('base64url')}`,
};

function track(proc: ChildProcess): void {
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
}

function waitForLine(
  proc: ChildProcess,
  out: { text: string },
  match: (line: string) => boolean,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for process output; got:\n${out.text.slice(-4000)}`)),
      timeoutMs,
    );
    const check = () => {
      for (const line of out.text.split('\n')) {
        if (match(line)) {
          clearTimeout(timer);
          proc.stdout?.off('data', check);
          resolve(line);
          return;
        }
      }
    };
    proc.stdout?.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited with ${code} before it was ready:\n${out.text.slice(-4000)}`));
    });
    check();
  });
}

export async function startServer(opts: ServerOptions = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? tempDir('server');
  const args = [
    CLI,
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(opts.port ?? 0),
    '--data-dir',
    dataDir,
    '--log-level',
    'info',
    ...(opts.args ?? []),
  ];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    JOBFLEET_APP_CODE: TEST_SECRETS.appCode,
    JOBFLEET_APP_SECRET: TEST_SECRETS.appSecret,
    JOBFLEET_ADMIN_TOKEN: TEST_SECRETS.adminToken,
    JOBFLEET_AGENT_BOOTSTRAP_TOKEN: TEST_SECRETS.bootstrapToken,
    JOBFLEET_HEARTBEAT_INTERVAL_MS: '300',
    JOBFLEET_HEARTBEAT_TIMEOUT_MS: '3000',
    ...(opts.databaseUrl ? { JOBFLEET_DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(proc);
  const out = { text: '' };
  proc.stdout?.on('data', (d: Buffer) => (out.text += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out.text += d.toString()));
  const line = await waitForLine(
    proc,
    out,
    (l) => l.includes('"msg":"jobfleet server listening"'),
    opts.readyTimeoutMs ?? 20_000,
  );
  const url = (JSON.parse(line) as { url: string }).url;
  const port = Number(new URL(url).port);
  const server: ServerProcess = {
    url,
    port,
    dataDir,
    databaseUrl: opts.databaseUrl,
    ...TEST_SECRETS,
    proc,
    output: () => out.text,
    kill: (signal = 'SIGTERM') => killProcess(proc, signal),
    restart: () => startServer({ ...opts, dataDir, port }),
  };
  return server;
}

export interface AgentOptions {
  server: { url: string; bootstrapToken: string };
  ip: string;
  cloudId?: number;
  biz?: number;
  stateDir?: string;
  hostname?: string;
  env?: Record<string, string>;
  /** Resolve as soon as the process is spawned instead of once it is ready (default true: wait). */
  waitReady?: boolean;
}

export interface AgentProcess {
  ip: string;
  stateDir: string;
  proc: ChildProcess;
  output(): string;
  /** Resolves once the agent has been welcomed by a server (n-th time when `times` > 1). */
  waitReady(times?: number, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<AgentProcess>;
}

export async function startAgent(opts: AgentOptions): Promise<AgentProcess> {
  const stateDir = opts.stateDir ?? tempDir(`agent-${opts.ip}`);
  const args = [
    CLI,
    'agent',
    '--server',
    opts.server.url,
    '--token',
    opts.server.bootstrapToken,
    '--ip',
    opts.ip,
    '--cloud-id',
    String(opts.cloudId ?? 0),
    '--state-dir',
    stateDir,
    '--hostname',
    opts.hostname ?? `host-${opts.ip}`,
    ...(opts.biz !== undefined ? ['--biz', String(opts.biz)] : []),
  ];
  const proc = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // Scripts' directories go to the run's directory: an agent a test kills mid-task (and does
      // not start again to clear them) leaves them there, not in the machine's /tmp.
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      // Back within a second of a server restart, well inside the tests' 3 s heartbeat window
      // (the default 30 s cap can keep an agent away for 8 s after a 7 s outage).
      JOBFLEET_AGENT_RECONNECT_MAX_MS: '1000',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(proc);
  const out = { text: '' };
  proc.stdout?.on('data', (d: Buffer) => (out.text += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out.text += d.toString()));
  const agent: AgentProcess = {
    ip: opts.ip,
    stateDir,
    proc,
    output: () => out.text,
    waitReady: (times = 1, timeoutMs = 15_000) =>
      waitForLine(proc, out, () => out.text.split('"msg":"state ready"').length - 1 >= times, timeoutMs).then(
        () => undefined,
      ),
    kill: (signal = 'SIGTERM') => killProcess(proc, signal),
    restart: () => startAgent({ ...opts, stateDir }),
  };
  if (opts.waitReady !== false) await agent.waitReady();
  return agent;
}

export function killProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill(signal);
  });
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => killProcess(p, 'SIGKILL')));
}

/** Runs `jobfleet admin ...`; resolves with exit code, stdout and stderr. */
export function adminCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'admin', ...args],
      { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The figures of the server's log line reporting its start-up reseal, once it is there. */
export function resealReport(server: {
  output(): string;
}): Promise<{ resealed: number; unopenable: number; changed: number }> {
  return eventually(async () => {
    const line = server
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"secrets resealed under the current server key"'));
    return line ? (JSON.parse(line) as { resealed: number; unopenable: number; changed: number }) : undefined;
  });
}
