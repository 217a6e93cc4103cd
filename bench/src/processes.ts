/**
 * Child processes the bench starts: Jobfleet servers, a real `jobfleet agent`, the fleet
 * simulator. Each is started through `sh -c 'ulimit -n …; exec …'` because ten thousand
 * WebSockets need more descriptors than the usual default, on both ends. Every process
 * started here is tracked so that `stopAll()` can end it, whatever happened before.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { tmpfsScriptDir } from './script-dir.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs from bench/dist/src/). */
export const REPO_ROOT = path.resolve(here, '../../..');
const CLI = path.join(REPO_ROOT, 'cli', 'bin', 'jobfleet.js');
const SIMULATOR = path.join(here, 'fleet-simulator.js');

/** The simulated fleet's niceness (0 is the default, 19 the lowest priority); see startShard. */
const FLEET_NICENESS = 10;

/** Descriptors for the server and the simulator: one per connection plus files and pipes. */
export const FD_LIMIT = 200_000;

const live = new Set<ChildProcess>();

/**
 * The open-file limit the server and simulators get: FD_LIMIT, or the hard limit where it cannot
 * be raised (a container without CAP_SYS_RESOURCE keeps root at its hard limit too).
 */
export function childFdLimit(): number {
  const out = execFileSync('sh', [
    '-c',
    `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n`,
  ]);
  const n = Number(out.toString().trim());
  return Number.isFinite(n) ? n : FD_LIMIT;
}

export interface Secrets {
  appCode: string;
  appSecret: string;
  adminToken: string;
  bootstrapToken: string;
}

export function newSecrets(): Secrets {
  const s = () => crypto.randomBytes(16).toString('hex');
  return { appCode: 'jobfleet-bench', appSecret: s(), adminToken: s(), bootstrapToken: s() };
}

/** Keeps the last `limit` characters a process printed, for error messages. */
class Tail {
  text = '';
  constructor(private readonly limit = 64 * 1024) {}
  push(chunk: Buffer): void {
    this.text += chunk.toString();
    if (this.text.length > this.limit * 2) this.text = this.text.slice(-this.limit);
  }
}

/**
 * Extra node flags for every Node.js process started here, e.g. `--cpu-prof --cpu-prof-dir=DIR`
 * to profile the server and the simulator during a run (they write the profile when stopped).
 * Passed as arguments because NODE_OPTIONS does not accept --cpu-prof.
 */
const CHILD_NODE_ARGS = (process.env.JOBFLEET_BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);

function spawnLimited(command: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const [exe, ...rest] = command;
  const argv = exe === process.execPath ? [exe, ...CHILD_NODE_ARGS, ...rest] : command;
  // `ulimit -n` raises the soft and hard limit; the bench runs as root, so the hard one may grow.
  const script = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const proc = spawn('sh', ['-c', script, 'sh', ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  return proc;
}

/** Calls `onLine` for each complete stdout line until it returns a value; rejects on exit or timeout. */
function awaitLine<T>(
  proc: ChildProcess,
  tail: Tail,
  onLine: (line: string) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let partial = '';
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      proc.stdout?.off('data', onData);
      proc.off('exit', onExit);
      fn();
    };
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const v = onLine(line);
          if (v !== undefined) return finish(() => resolve(v));
        } catch (err) {
          return finish(() => reject(err instanceof Error ? err : new Error(String(err))));
        }
      }
    };
    const onExit = (code: number | null) =>
      finish(() => reject(new Error(`${what}: process exited (${code}) first:\n${tail.text.slice(-3000)}`)));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`${what}: timed out:\n${tail.text.slice(-3000)}`))),
      timeoutMs,
    );
    proc.stdout?.on('data', onData);
    proc.once('exit', onExit);
  });
}

export interface ServerHandle {
  url: string;
  pid: number;
  secrets: Secrets;
  dataDir: string;
  output(): string;
  stop(): Promise<void>;
  /** Stops this server and starts it again on the same port, data and database (as an upgrade does). */
  restart(): Promise<ServerHandle>;
}

export interface ServerOptions {
  secrets: Secrets;
  databaseUrl?: string;
  tmpRoot: string;
  args?: string[];
}

export async function startServer(
  opts: ServerOptions,
  again?: { dataDir: string; port: number },
): Promise<ServerHandle> {
  const dataDir = again?.dataDir ?? fs.mkdtempSync(path.join(opts.tmpRoot, 'server-'));
  const proc = spawnLimited(
    [
      process.execPath,
      CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(again?.port ?? 0),
      '--data-dir',
      dataDir,
      ...(opts.args ?? []),
    ],
    {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JOBFLEET_APP_CODE: opts.secrets.appCode,
      JOBFLEET_APP_SECRET: opts.secrets.appSecret,
      JOBFLEET_ADMIN_TOKEN: opts.secrets.adminToken,
      JOBFLEET_AGENT_BOOTSTRAP_TOKEN: opts.secrets.bootstrapToken,
      ...(opts.databaseUrl ? { JOBFLEET_DATABASE_URL: opts.databaseUrl } : {}),
    },
  );
  const tail = new Tail();
  proc.stdout?.on('data', (d: Buffer) => tail.push(d));
  proc.stderr?.on('data', (d: Buffer) => tail.push(d));
  const Listening = z.object({ msg: z.literal('jobfleet server listening'), url: z.string() });
  const url = await awaitLine(
    proc,
    tail,
    (line) => {
      if (!line.includes('jobfleet server listening')) return undefined;
      const parsed = Listening.safeParse(JSON.parse(line));
      return parsed.success ? parsed.data.url : undefined;
    },
    30_000,
    'jobfleet serve',
  );
  const stop = () => stopProcess(proc);
  return {
    url,
    pid: childPid(proc),
    secrets: opts.secrets,
    dataDir,
    output: () => tail.text,
    stop,
    restart: () => stop().then(() => startServer(opts, { dataDir, port: Number(new URL(url).port) })),
  };
}

export interface AgentHandle {
  pid: number;
  hostId: number;
  stop(): Promise<void>;
}

/** One real `jobfleet agent` process, resolved once it has been welcomed. */
export async function startAgentProcess(opts: {
  server: ServerHandle;
  ip: string;
  tmpRoot: string;
  /** The agent's own view of "/" for file steps (several agents on one machine). */
  fileRoot?: string;
}): Promise<AgentHandle> {
  const stateDir = fs.mkdtempSync(path.join(opts.tmpRoot, 'agent-'));
  // Where a deployed agent's scripts go by default (a tmpfs), as for the simulated hosts.
  const ownScripts = process.env.JOBFLEET_BENCH_SCRIPT_DIR === undefined ? tmpfsScriptDir() : undefined;
  const scriptDir = process.env.JOBFLEET_BENCH_SCRIPT_DIR ?? ownScripts;
  const proc = spawnLimited(
    [
      process.execPath,
      CLI,
      'agent',
      '--server',
      opts.server.url,
      '--ip',
      opts.ip,
      '--cloud-id',
      '0',
      '--biz',
      '1',
      '--hostname',
      `bench-${opts.ip}`,
      '--state-dir',
      stateDir,
      ...(scriptDir ? ['--script-dir', scriptDir] : []),
    ],
    {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JOBFLEET_AGENT_BOOTSTRAP_TOKEN: opts.server.secrets.bootstrapToken,
      ...(opts.fileRoot ? { JOBFLEET_AGENT_FILE_ROOT: opts.fileRoot } : {}),
    },
  );
  const tail = new Tail();
  proc.stdout?.on('data', (d: Buffer) => tail.push(d));
  proc.stderr?.on('data', (d: Buffer) => tail.push(d));
  const Registered = z.object({ msg: z.literal('registered'), hostId: z.number() });
  let hostId: number | undefined;
  const stop = async () => {
    await stopProcess(proc);
    if (ownScripts) fs.rmSync(ownScripts, { recursive: true, force: true });
  };
  try {
    await awaitLine(
      proc,
      tail,
      (line) => {
        if (line.includes('"msg":"registered"')) hostId = Registered.parse(JSON.parse(line)).hostId;
        return line.includes('"msg":"state ready"') && hostId !== undefined ? true : undefined;
      },
      30_000,
      'jobfleet agent',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: childPid(proc), hostId: hostId ?? -1, stop };
}

const SimulatorEvent = z.discriminatedUnion('event', [
  z.object({ event: z.literal('progress'), ready: z.number(), total: z.number() }),
  z.object({ event: z.literal('ready'), total: z.number(), ms: z.number(), hostIds: z.array(z.number()) }),
  z.object({ event: z.literal('failed'), message: z.string(), problems: z.record(z.string(), z.number()) }),
]);

export interface FleetHandle {
  /** One per simulator process. */
  pids: number[];
  hostIds: number[];
  /** Milliseconds from start until every agent was ready. */
  readyMs: number;
  stop(): Promise<void>;
}

/**
 * Runs the fleet as `shards` simulator processes of N/shards agents each, and waits until
 * every agent is ready. Several smaller processes instead of one: every script an agent runs
 * is a fork of the process hosting it, and forking a process that holds 10,000 connections
 * takes milliseconds of its only thread, long enough to starve the heartbeats of the others.
 */
export async function startFleet(opts: {
  /** Several: shard k connects to server k mod n, so the agents spread evenly over them. */
  server: ServerHandle | readonly ServerHandle[];
  agents: number;
  executor: 'process' | 'noop';
  tmpRoot: string;
  shards?: number;
  /** The longest one agent may take to become ready (the simulator's default otherwise). */
  agentReadyTimeoutMs?: number;
  onProgress?: (ready: number, total: number) => void;
}): Promise<FleetHandle> {
  const servers = Array.isArray(opts.server) ? opts.server : [opts.server as ServerHandle];
  const shards = Math.max(1, Math.min(opts.shards ?? 1, opts.agents));
  const per = Math.ceil(opts.agents / shards);
  const progress = new Array<number>(shards).fill(0);
  const started = performance.now();
  const parts = await Promise.all(
    Array.from({ length: shards }, (_, k) =>
      startShard({
        ...opts,
        server: servers[k % servers.length] as ServerHandle,
        first: k * per,
        fleetSize: opts.agents,
        // 64 agents between start and ready per server, shared by the shards connecting to it:
        // each server of a cluster takes its agents as one server alone does (a window shared by
        // the whole cluster left each of three servers a third of it, waiting on round trips).
        concurrency: Math.max(1, Math.ceil((64 * servers.length) / shards)),
        agents: Math.min(per, opts.agents - k * per),
        onProgress: (ready) => {
          progress[k] = ready;
          opts.onProgress?.(
            progress.reduce((a, b) => a + b, 0),
            opts.agents,
          );
        },
      }),
    ),
  );
  return {
    pids: parts.map((p) => p.pid),
    hostIds: parts.flatMap((p) => p.hostIds),
    readyMs: performance.now() - started,
    stop: async () => {
      await Promise.all(parts.map((p) => p.stop()));
    },
  };
}

async function startShard(opts: {
  server: ServerHandle;
  agents: number;
  first: number;
  fleetSize: number;
  concurrency: number;
  executor: 'process' | 'noop';
  tmpRoot: string;
  agentReadyTimeoutMs?: number;
  onProgress?: (ready: number) => void;
}): Promise<{ pid: number; hostIds: number[]; stop(): Promise<void> }> {
  const stateRoot = fs.mkdtempSync(path.join(opts.tmpRoot, 'fleet-'));
  const proc = spawnLimited(
    [
      process.execPath,
      '--max-old-space-size=8192',
      SIMULATOR,
      '--server',
      opts.server.url,
      '--agents',
      String(opts.agents),
      '--first-index',
      String(opts.first),
      '--concurrency',
      String(opts.concurrency),
      '--executor',
      opts.executor,
      '--state-root',
      stateRoot,
      ...(opts.agentReadyTimeoutMs ? ['--ready-timeout-ms', String(opts.agentReadyTimeoutMs)] : []),
      // To compare with another place (e.g. /tmp on the disk); each simulator makes its own on /dev/shm otherwise.
      ...(process.env.JOBFLEET_BENCH_SCRIPT_DIR
        ? ['--script-dir', process.env.JOBFLEET_BENCH_SCRIPT_DIR]
        : []),
    ],
    {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JOBFLEET_AGENT_BOOTSTRAP_TOKEN: opts.server.secrets.bootstrapToken,
    },
  );
  // The simulated hosts stand in for other machines: at the default priority their launchers and
  // scripts took the cores from the server (a fifth of one core, and requests waiting 50 s, while
  // a 10,000-host job ran on a machine where a script costs 16 ms of CPU). Below the server's
  // priority they still use every cycle the server leaves; their launchers and scripts inherit it.
  os.setPriority(childPid(proc), FLEET_NICENESS);
  const stop = async () => {
    await stopProcess(proc);
    fs.rmSync(stateRoot, { recursive: true, force: true });
  };
  const tail = new Tail();
  proc.stderr?.on('data', (d: Buffer) => tail.push(d));
  // The shards share one pace, so each is given the time the whole fleet needs.
  // A bound for a stuck start-up, not a pace: a loaded machine readies 20 agents a second.
  const timeoutMs = 60_000 + opts.fleetSize * 100;
  try {
    const ready = await awaitLine(
      proc,
      tail,
      (line) => {
        if (!line.startsWith('{')) return undefined;
        const ev = SimulatorEvent.safeParse(JSON.parse(line));
        if (!ev.success) return undefined;
        if (ev.data.event === 'progress') opts.onProgress?.(ev.data.ready);
        if (ev.data.event === 'failed') {
          throw new Error(`fleet simulator failed: ${ev.data.message} ${JSON.stringify(ev.data.problems)}`);
        }
        return ev.data.event === 'ready' ? ev.data : undefined;
      },
      timeoutMs,
      'fleet simulator',
    );
    opts.onProgress?.(ready.total);
    return { pid: childPid(proc), hostIds: ready.hostIds, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function childPid(proc: ChildProcess): number {
  if (proc.pid === undefined) throw new Error('process did not start');
  return proc.pid;
}

export function stopProcess(proc: ChildProcess, graceMs = 10_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stopProcess(p, 3000)));
}

/** Resident set size of a process in bytes (VmRSS from /proc). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m?.[1]) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

export function tmpRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-bench-'));
}
