/**
 * The fleet simulator: one process running many agents, each an `Agent` from @jobfleet/agent
 * with its own host identity (ip 10.x.y.z, cloud 0, one business), its own state directory
 * and its own WebSocket to the server, exactly as separate hosts would have.
 *
 * Executors: `process` gives every agent the real TaskRunner, so scripts run as real child
 * processes; `noop` gives it a runner that reports success at once (control-plane cost only).
 *
 * Scripts: the agents of one simulator share one task launcher (see agent/src/task-launcher.ts),
 * where every real host has its own: a launcher per simulated host would be thousands of
 * processes. It is the one process that forks scripts, as each host's launcher is for its host.
 *
 * Source addresses: a server on loopback sees agent i connect from 127.0.0.(2 + i / 10,000), so
 * that 50,000 connections do not run out of the 28,000 ephemeral ports of one address pair.
 *
 * Start-up is paced: at most `concurrency` agents are between start and ready at a time, so
 * ten thousand registrations and handshakes queue here instead of hitting the server at once.
 *
 * As a command it prints one JSON object per line on stdout:
 *   {"event":"progress","ready":n,"total":N}   every second while starting
 *   {"event":"ready","total":N,"ms":..,"hostIds":[..]}   when every agent is ready
 *   {"event":"failed","message":..}   when start-up did not complete (then it exits 1)
 * and stops every agent on SIGTERM or SIGINT.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { Agent, TaskRunner, defaultStarter } from '@jobfleet/agent';
import type { AgentState, ProcessStarter } from '@jobfleet/agent';
import { NoopRunner } from './noop-runner.js';
import { tmpfsScriptDir } from './script-dir.js';

export type Executor = 'process' | 'noop';

export interface FleetOptions {
  serverUrl: string;
  bootstrapToken: string;
  agents: number;
  bizId: number;
  executor: Executor;
  /** Each agent keeps its state in <stateRoot>/<ip>. */
  stateRoot: string;
  /** Agents between start and ready at once. */
  concurrency: number;
  /** How long one agent may take from start to ready before start-up fails. */
  readyTimeoutMs: number;
  /** Index of this simulator's first host, so that several simulators give distinct identities. */
  firstIndex: number;
  /** Where the agents' scripts get their directories (the agent's --script-dir); the agent's default when absent. */
  scriptDir?: string;
}

/** Distinct, never-contacted addresses: host i (from 0) is 10.a.b.c with c never 0. */
export function simulatedIp(i: number): string {
  const n = i + 1 + Math.floor(i / 255);
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Agents per loopback source address: well under the 28,000 ephemeral ports of one address pair. */
const AGENTS_PER_SOURCE_ADDRESS = 10_000;

/**
 * The source address of host i's connections, for servers on loopback; undefined otherwise.
 * `serverUrl` may be an agent's comma-separated server list (a cluster).
 */
export function sourceAddress(serverUrl: string, i: number): string | undefined {
  const hosts = serverUrl.split(',').map((u) => new URL(u.trim()).hostname);
  if (!hosts.every((h) => h.startsWith('127.') || h === 'localhost')) return undefined;
  return `127.0.0.${2 + Math.floor(i / AGENTS_PER_SOURCE_ADDRESS)}`;
}

export class FleetSimulator {
  readonly agents: Agent[] = [];
  private readonly problems = new Map<string, number>();
  private readonly starter: ProcessStarter | undefined;

  constructor(private readonly opts: FleetOptions) {
    if (opts.executor === 'process') this.starter = defaultStarter();
  }

  /** Starts every agent, paced; resolves when all are ready, rejects when one cannot get there. */
  async start(onProgress?: (ready: number) => void): Promise<void> {
    let next = 0;
    let ready = 0;
    const worker = async (): Promise<void> => {
      while (next < this.opts.agents) {
        const agent = this.createAgent(this.opts.firstIndex + next++);
        this.agents.push(agent);
        agent.start();
        await agent.waitFor('ready', this.opts.readyTimeoutMs);
        ready++;
        onProgress?.(ready);
      }
    };
    const workers = Array.from({ length: Math.min(this.opts.concurrency, this.opts.agents) }, worker);
    await Promise.all(workers);
  }

  private createAgent(i: number): Agent {
    const ip = simulatedIp(i);
    const stateDir = path.join(this.opts.stateRoot, ip);
    const localAddress = sourceAddress(this.opts.serverUrl, i);
    const starter = this.starter;
    return new Agent({
      serverUrl: this.opts.serverUrl,
      bootstrapToken: this.opts.bootstrapToken,
      host: { ip, ipv6: '', cloudId: 0, hostname: `sim-${i + 1}`, osType: 'linux' },
      bizId: this.opts.bizId,
      stateDir,
      ...(localAddress ? { localAddress } : {}),
      log: (level, msg) => {
        if (level !== 'info') this.problems.set(msg, (this.problems.get(msg) ?? 0) + 1);
      },
      createRunner: (reports) =>
        starter
          ? new TaskRunner(stateDir, reports, {
              starter,
              ...(this.opts.scriptDir ? { scriptDir: this.opts.scriptDir } : {}),
            })
          : new NoopRunner(reports, i + 1),
    });
  }

  hostIds(): number[] {
    return this.agents.map((a) => a.hostId ?? -1);
  }

  states(): Partial<Record<AgentState, number>> {
    const out: Partial<Record<AgentState, number>> = {};
    for (const a of this.agents) out[a.state] = (out[a.state] ?? 0) + 1;
    return out;
  }

  /** Warnings and errors the agents logged, with how often each was seen. */
  problemCounts(): Record<string, number> {
    return Object.fromEntries(this.problems);
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
    this.starter?.close();
  }
}

interface CliFlags {
  server: string;
  token: string;
  agents: string;
  biz: string;
  executor: Executor;
  stateRoot?: string;
  concurrency: string;
  readyTimeoutMs: string;
  firstIndex: string;
  scriptDir?: string;
}

function count(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const cmd = new Command('fleet-simulator')
    .description('run many Jobfleet agents in one process, each with its own host identity and connection')
    .addOption(new Option('--server <url>', 'server base URL').makeOptionMandatory())
    .addOption(
      new Option('--token <token>', 'agent bootstrap token')
        .env('JOBFLEET_AGENT_BOOTSTRAP_TOKEN')
        .makeOptionMandatory(),
    )
    .option('--agents <n>', 'number of agents', '100')
    .option('--biz <id>', 'business the agents ask to be placed in', '1')
    .addOption(new Option('--executor <kind>', 'task runner').choices(['process', 'noop']).default('process'))
    .option('--state-root <dir>', 'where agents keep their state (default: a new temporary directory)')
    .option('--concurrency <n>', 'agents starting at once', '64')
    .option('--ready-timeout-ms <ms>', 'longest one agent may take to become ready', '120000')
    .option('--first-index <i>', 'index of the first host (another simulator may run the ones before)', '0')
    .option(
      '--script-dir <dir>',
      "where the agents' scripts get their directories (default: a new directory on /dev/shm, else the agent's default)",
    );
  cmd.parse(argv);
  const flags = cmd.opts<CliFlags>();
  const ownRoot = flags.stateRoot === undefined;
  const stateRoot = flags.stateRoot ?? fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-fleet-'));
  const ownScripts =
    flags.scriptDir === undefined && flags.executor === 'process' ? tmpfsScriptDir() : undefined;
  const scriptDir = flags.scriptDir ?? ownScripts;
  const fleet = new FleetSimulator({
    serverUrl: flags.server,
    bootstrapToken: flags.token,
    agents: count('agents', flags.agents),
    bizId: count('biz', flags.biz),
    executor: flags.executor,
    stateRoot,
    concurrency: count('concurrency', flags.concurrency),
    readyTimeoutMs: count('ready-timeout-ms', flags.readyTimeoutMs),
    firstIndex: Number(flags.firstIndex) || 0,
    ...(scriptDir ? { scriptDir } : {}),
  });
  const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await fleet.stop();
    if (ownRoot) fs.rmSync(stateRoot, { recursive: true, force: true });
    if (ownScripts) fs.rmSync(ownScripts, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));

  const total = fleet.agents.length || Number(flags.agents);
  let ready = 0;
  const progress = setInterval(() => emit({ event: 'progress', ready, total, states: fleet.states() }), 1000);
  const started = performance.now();
  try {
    await fleet.start((n) => (ready = n));
  } catch (err) {
    clearInterval(progress);
    emit({ event: 'failed', message: (err as Error).message, problems: fleet.problemCounts() });
    await stop(1);
    return;
  }
  clearInterval(progress);
  emit({
    event: 'ready',
    total,
    ms: Math.round(performance.now() - started),
    problems: fleet.problemCounts(),
    hostIds: fleet.hostIds(),
  });
}

const invokedPath = process.argv[1];
if (invokedPath && import.meta.url === pathToFileURL(fs.realpathSync(invokedPath)).href) {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(`fleet-simulator: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
