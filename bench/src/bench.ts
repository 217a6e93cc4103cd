/**
 * `npm run bench [-- --quick] [-- --install-peers]`: measures the figures of issue 5, each
 * against a baseline measured in the same run, prints a table and writes
 * bench/results/latest.json and latest.md.
 *
 * Per store (SQLite, then PostgreSQL when reachable) one server and one simulated fleet
 * serve P1 (fan-out), P2 (accept latency) and P3 (status under load); P4 (memory) is read on
 * the SQLite server, P5 (large output) has a server of its own with a larger log cap.
 *
 * Exit status: 0 when every measurement ran, whether or not it met its target; 1 when
 * something is broken (a server that does not start, a job that fails, a wrong reply).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { defaultStarter } from '@jobfleet/agent';
import { Command } from 'commander';
import { BkApi } from './bk-api.js';
import type { FastExecuteData } from './bk-api.js';
import { bigOutput } from './big-output.js';
import { consolePaint } from './console-paint.js';
import {
  NO_MACHINE_TIME,
  addMachineTime,
  cpuSince,
  cpuSplit,
  describeCpu,
  describeMachine,
  taskResultCounts,
} from './cpu-split.js';
import { clusterFigures } from './cluster-pass.js';
import { startCluster } from './server-cluster.js';
import type { ServerCluster } from './server-cluster.js';
import { fanOut } from './fan-out.js';
import { fleetReturn } from './fleet-return.js';
import type { FleetReturn } from './fleet-return.js';
import { LAUNCH_PAUSE_MS, P7_POLL_MS, launchEcho, oneHostJob, spawnEcho } from './job-latency.js';
import { cpBaseline, transferOnce, writeSourceFile } from './file-fan-out.js';
import type { FanOutRun } from './fan-out.js';
import { runLoad } from './load-generator.js';
import type { LoadResult } from './load-generator.js';
import { createDatabase, dropDatabase, reachable } from './postgres-database.js';
import {
  REPO_ROOT,
  childFdLimit,
  newSecrets,
  rssBytes,
  startAgentProcess,
  startFleet,
  startServer,
  stopAll,
  tmpRoot,
} from './processes.js';
import type { FleetHandle, ServerHandle } from './processes.js';
import { againstBaseline, judged, machine, textTable, unmeasured, writeResults } from './results.js';
import type { Figure, Store } from './results.js';
import { ansible, dd, floor, installPeers, installed, pdsh, versionOf } from './shell-baselines.js';
import { percentile, summarize } from './stats.js';
import { startStaticServer } from './static-server.js';
import { postOnce } from './http-post.js';
import type { PostTarget } from './http-post.js';

const MiB = 2 ** 20;
/** P5.window: the window the web console reads a log in. */
const LOG_WINDOW = 512 * 1024;

/** `work`'s result, and the CPU time (ms) a one-server SQLite run's server spent meanwhile. */
async function serverCpu<T>(
  server: ServerHandle,
  work: () => Promise<T>,
): Promise<{ result: T; ms: number }> {
  const before = cpuSplit(server.pid, [], 'sqlite').server;
  const result = await work();
  return { result, ms: (cpuSplit(server.pid, [], 'sqlite').server - before) * 1000 };
}

/** P5's last job, whose log P5.read and P5.window read back: its server, host and log's size. */
interface StoredLog {
  server: ServerHandle;
  api: BkApi;
  job: FastExecuteData;
  hostId: number;
  bytes: number;
}

/** get_job_instance_ip_log of a one-host job's host (P5.read, P5.window). */
function logRequest({ api, job, hostId }: StoredLog, window: Record<string, number> = {}) {
  return api.request('get_job_instance_ip_log', {
    bk_scope_type: 'biz',
    bk_scope_id: '1',
    job_instance_id: job.job_instance_id,
    step_instance_id: job.step_instance_id,
    bk_host_id: hostId,
    ...window,
  });
}

interface Plan {
  mode: 'quick' | 'full';
  runs: number;
  fanOutHosts: number[];
  ansibleHosts: number[];
  /** The P1 size at which the floor ratio has its target (1.3). */
  p1TargetHosts: number;
  /** The P2 size at which accept latency has its target (0.5 s). */
  p2TargetHosts: number;
  loadSeconds: number;
  loadConnections: number;
  bigOutputBytes: number;
  /** P6: one file of this size to `fileTargets` hosts. */
  fileBytes: number;
  fileTargets: number;
  /** Also time the largest fan-out with the noop executor (control plane only). */
  noopFanOut: boolean;
  /** P7: one-host jobs per run. */
  latencyJobs: number;
  /** P2.scale, P4.server, P4.ready: a fleet of this many noop agents (BK-JOB's 50,000-target limit). */
  scaleHosts: number;
  /** P8: hosts of the step opened in the console. */
  consoleHosts: number;
}

/** Heartbeat window of the fan-out servers (see storePass). */
const HEARTBEAT_WINDOW_MS = 180_000;

const FULL: Plan = {
  mode: 'full',
  runs: 3,
  fanOutHosts: [100, 1000, 10_000],
  ansibleHosts: [100, 1000],
  p1TargetHosts: 1000,
  p2TargetHosts: 10_000,
  loadSeconds: 5,
  loadConnections: 8,
  bigOutputBytes: 100 * MiB,
  fileBytes: 1024 * MiB,
  fileTargets: 10,
  noopFanOut: true,
  latencyJobs: 200,
  scaleHosts: 50_000,
  consoleHosts: 10_000,
};

const QUICK: Plan = {
  mode: 'quick',
  runs: 1,
  fanOutHosts: [10, 100],
  ansibleHosts: [10],
  p1TargetHosts: 1000,
  p2TargetHosts: 10_000,
  loadSeconds: 2,
  loadConnections: 4,
  bigOutputBytes: 8 * MiB,
  fileBytes: 64 * MiB,
  fileTargets: 3,
  noopFanOut: false,
  latencyJobs: 30,
  scaleHosts: 200,
  consoleHosts: 300,
};

/** Every figure id, in the order a full run measures them; `--only` picks among them. */
export const FIGURE_IDS = [
  'P4.agent',
  'P4.ready',
  'P4.server',
  'P2.scale',
  'P4.back',
  'P1',
  'P2',
  'P1.pdsh',
  'P1.ansible',
  'P3',
  'P3.run',
  'P1.noop',
  'P7',
  'P7.launch',
  'P5',
  'P5.read',
  'P5.window',
  'P6',
  'P6.noop',
  'P8',
  'P9.fanout',
  'P9.jps',
  'P9.roll',
] as const;

/**
 * The figures a run measures: `--only P1,P3` selects P1 and P3 with everything under them
 * (P1.pdsh, P3.rps, …) except what has its own id (P3.run, P1.noop); none given selects all.
 */
export class Selection {
  private readonly ids: ReadonlySet<string> | undefined;

  constructor(only: string | undefined) {
    if (only === undefined) return;
    const asked = only
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    const unknown = asked.filter((a) => !FIGURE_IDS.some((id) => id === a || id.startsWith(`${a}.`)));
    if (unknown.length > 0 || asked.length === 0)
      throw new Error(
        `--only: unknown figure ${unknown.join(', ') || '(none)'}; known: ${FIGURE_IDS.join(', ')}`,
      );
    const ids = new Set<string>();
    for (const a of asked) {
      if (FIGURE_IDS.includes(a as (typeof FIGURE_IDS)[number])) ids.add(a);
      // A group name (P4) selects its members; P1 itself also brings its peers along.
      for (const id of FIGURE_IDS)
        if (id.startsWith(`${a}.`) && !(a === 'P1' && id === 'P1.noop')) ids.add(id);
      if (a === 'P3') ids.delete('P3.run');
    }
    this.ids = ids;
  }

  get all(): boolean {
    return this.ids === undefined;
  }

  has(...ids: string[]): boolean {
    return this.ids === undefined || ids.some((id) => this.ids?.has(id));
  }
}

/**
 * Simulator processes for a fleet with the process executor (`JOBFLEET_BENCH_SHARDS` overrides
 * it, to compare counts).
 */
const SIMULATOR_SHARDS = Number(process.env.JOBFLEET_BENCH_SHARDS) || 8;
/** Noop agents per simulator process: 10,000 sockets and their agents in one Node.js heap. */
const NOOP_AGENTS_PER_SHARD = 10_000;

class Bench {
  readonly figures: Figure[] = [];
  readonly broken: string[] = [];
  readonly account = os.userInfo().username;
  /** Jobfleet's P1 medians on SQLite, which the peers are compared with. */
  private readonly sqliteFanOut = new Map<number, number>();
  private readonly peerTimes = new Map<string, number[]>();

  constructor(
    readonly plan: Plan,
    readonly tmp: string,
    readonly peers: { pdsh: boolean; ansible: boolean },
    readonly pgUrl: string | undefined,
    readonly only: Selection,
  ) {}

  log(line: string): void {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  }

  fail(what: string, err: unknown): string {
    const cause = (err as { cause?: unknown }).cause;
    const why = `${(err as Error).message ?? String(err)}${cause instanceof Error ? ` (${cause.message})` : ''}`;
    const msg = `${what}: ${why}`.slice(0, 400);
    this.broken.push(msg);
    this.log(`BROKEN ${msg}`);
    return `error: ${msg.split('\n')[0] ?? ''}`;
  }

  async startStoreServer(
    store: Store,
    args: string[] = [],
  ): Promise<{ server: ServerHandle; api: BkApi; close(): Promise<void> }> {
    const databaseUrl = store === 'postgres' && this.pgUrl ? await createDatabase(this.pgUrl) : undefined;
    const server = await startServer({
      secrets: newSecrets(),
      tmpRoot: this.tmp,
      args,
      ...(databaseUrl ? { databaseUrl } : {}),
    });
    const api = new BkApi(server.url, server.secrets);
    await api.prepareBusiness(this.account);
    return {
      server,
      api,
      close: async () => {
        await server.stop();
        fs.rmSync(server.dataDir, { recursive: true, force: true });
        if (databaseUrl && this.pgUrl) await dropDatabase(this.pgUrl, databaseUrl);
      },
    };
  }

  async startFleet(
    server: ServerHandle | ServerHandle[],
    agents: number,
    executor: 'process' | 'noop',
    agentReadyTimeoutMs?: number,
  ): Promise<FleetHandle> {
    const servers = Array.isArray(server) ? server.length : 1;
    const shards = executor === 'noop' ? scaleShards(agents, servers) : SIMULATOR_SHARDS;
    this.log(
      `starting ${agents} simulated agents (${executor} executor, ${shards} simulator processes, ${servers} server(s))…`,
    );
    let last = 0;
    const fleet = await startFleet({
      server,
      agents,
      executor,
      // Real scripts are forks of the simulator hosting their agent; see startFleet.
      shards,
      tmpRoot: this.tmp,
      ...(agentReadyTimeoutMs ? { agentReadyTimeoutMs } : {}),
      onProgress: (ready, total) => {
        if (ready - last >= 2000) {
          last = ready;
          this.log(`  ${ready}/${total} agents ready`);
        }
      },
    });
    this.log(`  ${agents} agents ready in ${(fleet.readyMs / 1000).toFixed(1)} s`);
    return fleet;
  }

  /** Readings of a process's RSS one second apart, in MiB. */
  async rssReadings(pid: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < Math.max(3, this.plan.runs); i++) {
      await sleep(1000);
      out.push(rssBytes(pid) / MiB);
    }
    return out;
  }

  /** One store: a server, a fleet the size of the largest fan-out, then P1, P2, P3, P3.run (and P4 on SQLite). */
  async storePass(store: Store): Promise<void> {
    const only = this.only;
    const sqlite = store === 'sqlite';
    const fleetFigures = only.has('P1', 'P2', 'P1.pdsh', 'P1.ansible', 'P3', 'P3.run');
    const hosts = Math.max(...this.plan.fanOutHosts);
    if (fleetFigures || (sqlite && only.has('P4.agent'))) await this.fleetPass(store, hosts, fleetFigures);
    if (sqlite && only.has('P1.noop') && (this.plan.noopFanOut || !only.all)) await this.noopFanOut(hosts);
    if (only.has('P2.scale', 'P4.server', 'P4.ready', 'P4.back')) await this.scalePass(store);
  }

  /**
   * BK-JOB's limit: a fleet of `scaleHosts` noop agents (the control plane is what these
   * figures measure), how long it takes to be ready, the servers' memory with all of them idle,
   * and fast_execute_script's answer time on all of them. Each agent holds a descriptor of its
   * server's; where the fleet does not fit one server's open-file limit, PostgreSQL runs it on
   * a cluster of as many servers as it needs (SQLite, one server by nature, on what fits one).
   */
  async scalePass(store: Store): Promise<void> {
    const only = this.only;
    const layout = scaleLayout(store, this.plan.scaleHosts, childFdLimit());
    const { hosts, servers } = layout;
    const where =
      servers === 1
        ? `one server`
        : `${servers} servers in cluster mode on one PostgreSQL database, agents spread evenly`;
    const onMachine = `; ${servers === 1 ? 'the server' : `the ${servers} servers`}, the simulators${store === 'postgres' ? ' and PostgreSQL' : ''} share this machine's ${os.cpus().length} cores${layout.capped}`;
    this.log(`— ${store}: ${where} for ${hosts} noop agents${layout.capped}`);
    const s = await this.startScaleServers(store, servers);
    const noop = { executor: 'noop' as const };
    const params = { agents: hosts, store, servers };
    let restarted: ServerHandle | undefined;
    try {
      const pids = s.servers.map((x) => x.pid);
      const idle = only.has('P4.server') ? await Promise.all(pids.map((pid) => this.rssReadings(pid))) : [];
      let fleet: FleetHandle;
      try {
        fleet = await this.startFleet(s.servers, hosts, 'noop', SCALE_AGENT_READY_MS);
      } catch (err) {
        const why = this.fail(`${store} fleet of ${hosts} on ${servers} server(s)`, err);
        for (const id of ['P4.ready', 'P4.server', 'P2.scale', 'P4.back'])
          this.figures.push(unmeasured({ id, params, unit: '', target: null, ...noop }, why));
        return;
      }
      try {
        const shards = scaleShards(hosts, servers);
        if (only.has('P4.ready'))
          this.figures.push({
            id: 'P4.ready',
            params,
            unit: 's',
            value: fleet.readyMs / 1000,
            baseline: null,
            ratio: null,
            target: null,
            met: null,
            min: null,
            max: null,
            ...noop,
            note: `${hosts} simulated agents (each its own Agent, identity and connection) from first start to all ready on ${where}: registration and WebSocket handshake, 64 at a time per server, from ${shards} simulator processes over 127.0.0.2–${2 + Math.floor((hosts - 1) / 10_000)} (28k ephemeral ports per address pair)${onMachine}`,
          });
        if (only.has('P4.server')) await this.serverMemory(params, pids, idle, onMachine);
        if (only.has('P2.scale')) {
          const submittedTo =
            servers === 1
              ? ''
              : `; submitted to the first of the ${servers} servers, which owns the job and reaches the others' agents through the database`;
          await this.scaleAccept(store, s.api, fleet.hostIds, `${submittedTo}${onMachine}`, servers);
        }
        if (only.has('P4.back')) {
          const [one] = s.servers;
          if (one && servers === 1) restarted = await this.fleetBack(one, fleet.hostIds, params, onMachine);
          else this.log(`P4.back is measured where one server holds the fleet, not on ${servers}`);
        }
      } finally {
        await fleet.stop();
      }
    } finally {
      await restarted?.stop();
      await s.close();
    }
  }

  /**
   * P4.back (fleet-return.ts), one restart per run; returns the server last started, for the
   * pass to stop (undefined when none was started).
   */
  async fleetBack(
    server: ServerHandle,
    hostIds: number[],
    params: { agents: number; store: Store; servers: number },
    onMachine: string,
  ): Promise<ServerHandle | undefined> {
    const base = { id: 'P4.back', params, unit: 's', target: null, executor: 'noop' as const };
    let current: ServerHandle | undefined;
    try {
      const runs: FleetReturn[] = [];
      for (let r = 0; r < this.plan.runs; r++) {
        const run = await fleetReturn(current ?? server, hostIds, this.account, SCALE_AGENT_READY_MS);
        current = run.server;
        runs.push(run);
        this.log(
          `P4.back ${params.store}: ${hostIds.length} agents back ${run.backSeconds.toFixed(2)} s after the restarted server listened; the job on every host finished ${run.jobSeconds.toFixed(2)} s after it`,
        );
      }
      const back = summarize(runs.map((x) => x.backSeconds));
      const list = (f: (x: FleetReturn) => number) => runs.map((x) => f(x).toFixed(2)).join(', ');
      this.figures.push({
        ...base,
        value: back.median,
        baseline: null,
        ratio: null,
        met: null,
        min: back.min,
        max: back.max,
        note: `${hostIds.length} connected agents; the server stopped by SIGTERM (${list((x) => x.stopSeconds)} s) and started again on the same port and data the moment it exited (listening ${list((x) => x.startSeconds)} s later): from listening until every agent is connected again; a job on every host submitted at that moment finished ${list((x) => x.jobSeconds)} s after it, every host successful; ${runs.length} restart(s)${onMachine}`,
      });
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail(`P4.back ${params.store} ${hostIds.length} agents`, err)));
    }
    return current;
  }

  /** The scale pass's servers: one as any pass starts it, or a cluster on one PostgreSQL database. */
  async startScaleServers(
    store: Store,
    count: number,
  ): Promise<{ servers: ServerHandle[]; api: BkApi; close(): Promise<void> }> {
    const args = ['--heartbeat-timeout-ms', String(HEARTBEAT_WINDOW_MS)];
    if (count === 1) {
      const one = await this.startStoreServer(store, args);
      return { servers: [one.server], api: one.api, close: () => one.close() };
    }
    const pgUrl = this.pgUrl;
    if (store !== 'postgres' || !pgUrl) throw new Error('several servers need PostgreSQL');
    const databaseUrl = await createDatabase(pgUrl);
    let cluster: ServerCluster | undefined;
    try {
      cluster = await startCluster({
        count,
        secrets: newSecrets(),
        databaseUrl,
        tmpRoot: this.tmp,
        // Servers, simulators and PostgreSQL share two cores while tens of thousands of agents
        // start: a server's liveness renewal may wait seconds for its turn. These figures are
        // about capacity, not failover, so a busy server is not fenced or declared dead.
        args: [...args, '--cluster-self-fence-ms', '240000', '--cluster-dead-after-ms', '300000'],
      });
      const first = cluster.servers[0] as ServerHandle;
      const api = new BkApi(first.url, first.secrets);
      await api.prepareBusiness(this.account);
      const { servers, stop } = cluster;
      return { servers, api, close: () => stop().then(() => dropDatabase(pgUrl, databaseUrl)) };
    } catch (err) {
      await cluster?.stop();
      await dropDatabase(pgUrl, databaseUrl).catch(() => undefined);
      throw err;
    }
  }

  /** P2.scale: fast_execute_script on every host of the scale fleet; each job runs to the end before the next. */
  async scaleAccept(
    store: Store,
    api: BkApi,
    hostIds: number[],
    context: string,
    servers: number,
  ): Promise<void> {
    const base = {
      id: 'P2.scale',
      params: { hosts: hostIds.length, store, servers },
      unit: 's',
      target: 0.5,
      executor: 'noop' as const,
    };
    try {
      const accepts: number[] = [];
      for (let r = 0; r < this.plan.runs; r++) {
        const run = await fanOut(api, hostIds, this.account);
        accepts.push(run.acceptSeconds);
        this.log(
          `P2 ${store} ${hostIds.length} hosts: accepted in ${run.acceptSeconds.toFixed(3)} s (finished in ${run.totalSeconds.toFixed(1)} s)`,
        );
      }
      const sum = summarize(accepts);
      this.figures.push(
        judged(
          {
            ...base,
            value: sum.median,
            baseline: null,
            ratio: null,
            min: sum.min,
            max: sum.max,
            note: `time for fast_execute_script on ${hostIds.length} hosts to answer (noop agents; each job finished before the next); absolute target; ${accepts.length} run(s)${context}`,
          },
          'value',
          'atMost',
        ),
      );
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail(`P2 ${store} ${hostIds.length} hosts`, err)));
    }
  }

  private async fleetPass(store: Store, hosts: number, fleetFigures: boolean): Promise<void> {
    const only = this.only;
    const sqlite = store === 'sqlite';
    this.log(`— ${store}: starting a server`);
    // 10,000 simulated hosts share 2 cores: a simulator process hosting 1,250 agents blocks for
    // seconds while it forks their scripts, so its agents' heartbeats are late through no fault
    // of the server. A longer window (the default is 30 s) keeps those hosts from being failed
    // as abnormal; real hosts each run their own agent and never see this.
    const s = await this.startStoreServer(store, ['--heartbeat-timeout-ms', String(HEARTBEAT_WINDOW_MS)]);
    try {
      if (sqlite && only.has('P4.agent')) await this.agentMemory(s.server);
      if (!fleetFigures) return;
      const fleet = await this.startFleet(s.server, hosts, 'process');
      const brokenBefore = this.broken.length;
      try {
        let last: FastExecuteData | undefined;
        if (only.has('P1', 'P2', 'P1.pdsh', 'P1.ansible'))
          last = await this.fanOuts(store, s.api, fleet.hostIds, {
            server: s.server.pid,
            fleet: fleet.pids,
            url: s.server.url,
          });
        else if (only.has('P3')) last = (await fanOut(s.api, fleet.hostIds, this.account)).job;
        if (only.has('P3')) {
          if (last) await this.statusLoad(store, s.api, last, fleet.hostIds.length);
          else
            this.figures.push(
              unmeasured(p3Base('P3.rps', store, hosts, this.plan), 'no finished job to query'),
            );
        }
        if (only.has('P3.run')) await this.runningStatusLoad(store, s.api, fleet.hostIds);
      } finally {
        if (this.broken.length > brokenBefore)
          this.log(`server output (last lines):\n${s.server.output().slice(-3000)}`);
        await fleet.stop();
      }
    } finally {
      await s.close();
    }
  }

  async agentMemory(server: ServerHandle): Promise<void> {
    const base = {
      id: 'P4.agent',
      params: { store: 'sqlite' },
      unit: 'MiB',
      target: 60,
      executor: 'process' as const,
    };
    try {
      const bare = await bareNodeRss();
      const agent = await startAgentProcess({ server, ip: '10.255.255.1', tmpRoot: this.tmp });
      try {
        const readings = await this.rssReadings(agent.pid);
        const sum = summarize(readings);
        this.figures.push(
          judged(
            {
              ...base,
              value: sum.median,
              baseline: bare,
              ratio: sum.median / bare,
              min: sum.min,
              max: sum.max,
              note: 'one idle `jobfleet agent` process, VmRSS read 1 s apart; baseline: an empty node process',
            },
            'value',
            'atMost',
          ),
        );
      } finally {
        await agent.stop();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P4 agent', err)));
    }
  }

  /**
   * P4.server: each server's RSS with the fleet idle, and their sum, which is the value judged
   * (the target is per server; the sum is the stricter reading and the same where one server
   * holds the fleet).
   */
  async serverMemory(
    params: { agents: number; store: Store; servers: number },
    pids: number[],
    idle: number[][],
    context: string,
  ): Promise<void> {
    const base = { id: 'P4.server', params, unit: 'MiB', target: 1024, executor: 'noop' as const };
    try {
      await sleep(5000); // the first heartbeats after the welcome wave
      const each = await Promise.all(pids.map((pid) => this.rssReadings(pid)));
      const medians = each.map((r) => summarize(r).median);
      const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      // Readings i of every server were taken together: their sums are the cluster's readings.
      const sums = (each[0] ?? []).map((_, i) => total(each.map((r) => r[i] ?? 0)));
      const sum = summarize(sums);
      const baseline = total(idle.map((r) => summarize(r).median));
      const perServer =
        pids.length === 1
          ? ''
          : `; the sum over ${pids.length} servers (${medians.map((m) => `${m.toFixed(1)}`).join(' + ')} MiB, each holding ${Math.round(params.agents / pids.length)} agents): the target is per server, the sum is the stricter reading`;
      this.figures.push(
        judged(
          {
            ...base,
            value: sum.median,
            baseline,
            ratio: sum.median / baseline,
            min: sum.min,
            max: sum.max,
            note: `server VmRSS with ${params.agents} idle connected agents, read 1 s apart${perServer}; baseline: the same server${pids.length === 1 ? '' : 's'} before any agent connected${context}`,
          },
          'value',
          'atMost',
        ),
      );
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P4 server', err)));
    }
  }

  /**
   * P1 and P2 for every size, Jobfleet runs interleaved with their baselines. Returns the last
   * job on the most hosts (finished, successful or not: P3 only reads its status).
   */
  async fanOuts(
    store: Store,
    api: BkApi,
    hostIds: number[],
    pids: { server: number; fleet: number[]; url: string },
  ): Promise<FastExecuteData | undefined> {
    let lastLarge: FastExecuteData | undefined;
    const largest = Math.max(...this.plan.fanOutHosts);
    for (const n of this.plan.fanOutHosts) {
      const ids = hostIds.slice(0, n);
      const runs: FanOutRun[] = [];
      /** Accept latencies, kept even when the job then fails: P2 does not depend on the outcome. */
      const accepts: number[] = [];
      const floors: number[] = [];
      /** The machine's counters over the Jobfleet runs alone (not the baselines'). */
      let cores = NO_MACHINE_TIME;
      let error: string | undefined;
      // A 10,000-host fan-out with real processes takes minutes here: once keeps the run under 15.
      const reps = n >= 10_000 ? 1 : this.plan.runs;
      for (let r = 0; r < reps && !error; r++) {
        try {
          floors.push((await floor(n)).ms / 1000);
          const cpuBefore = cpuSplit(pids.server, pids.fleet, store);
          const run = await fanOut(api, ids, this.account, (job, seconds) => {
            accepts.push(seconds);
            if (n === largest) lastLarge = job;
          });
          runs.push(run);
          this.log(
            `P1 ${store} ${n} hosts: ${run.totalSeconds.toFixed(3)} s (accepted in ${run.acceptSeconds.toFixed(3)} s; floor ${floors.at(-1)?.toFixed(3)} s)`,
          );
          const cpu = cpuSince(cpuBefore, cpuSplit(pids.server, pids.fleet, store));
          this.log(`  ${describeCpu(cpu, n, store)}`);
          cores = addMachineTime(cores, cpu.machine);
          this.log(`  ${await taskResultCounts(pids.url)}`);
          if (store === 'sqlite') await this.peerRuns(n, r);
        } catch (err) {
          error = this.fail(`P1 ${store} ${n} hosts`, err);
        }
      }
      const p1Base = {
        id: 'P1',
        params: { hosts: n, store },
        unit: 's',
        target: n === this.plan.p1TargetHosts ? 1.3 : null,
        executor: 'process' as const,
      };
      const p2Base = {
        id: 'P2',
        params: { hosts: n, store },
        unit: 's',
        target: n === this.plan.p2TargetHosts ? 0.5 : null,
        executor: 'process' as const,
      };
      if (accepts.length > 0) {
        const accept = summarize(accepts);
        this.figures.push(
          judged(
            {
              ...p2Base,
              value: accept.median,
              baseline: null,
              ratio: null,
              min: accept.min,
              max: accept.max,
              note: `time for fast_execute_script to answer (same calls as P1); absolute target; ${accepts.length} run(s)`,
            },
            'value',
            'atMost',
          ),
        );
      } else this.figures.push(unmeasured(p2Base, error ?? 'no run'));
      if (error || runs.length === 0) {
        this.figures.push(unmeasured(p1Base, error ?? 'no run'));
        continue;
      }
      const total = summarize(runs.map((r) => r.totalSeconds));
      const fl = summarize(floors);
      this.figures.push(
        judged(
          {
            ...p1Base,
            value: total.median,
            baseline: fl.median,
            ratio: total.median / fl.median,
            min: total.min,
            max: total.max,
            note: `fast_execute_script → status finished, all hosts successful; baseline: ${n} \`sh -c echo\` via xargs -P; target on ratio; ${runs.length} run(s); ${describeMachine(cores)} while Jobfleet ran`,
          },
          'ratio',
          'atMost',
        ),
      );
      if (store === 'sqlite') {
        this.sqliteFanOut.set(n, total.median);
        this.peerFigures(n, total.median);
      }
    }
    return lastLarge;
  }

  /** pdsh every repetition; ansible, which needs minutes for 1000 hosts, only once from 1000 up. */
  async peerRuns(n: number, rep: number): Promise<void> {
    const record = (peer: string, ms: number) => {
      const key = `${peer}:${n}`;
      this.peerTimes.set(key, [...(this.peerTimes.get(key) ?? []), ms / 1000]);
    };
    if (this.peers.pdsh && this.only.has('P1.pdsh')) {
      try {
        record('pdsh', (await pdsh(n)).ms);
      } catch (err) {
        this.fail(`pdsh ${n}`, err);
      }
    }
    if (
      this.peers.ansible &&
      this.only.has('P1.ansible') &&
      this.plan.ansibleHosts.includes(n) &&
      (rep === 0 || n < 1000)
    ) {
      try {
        record('ansible', (await ansible(n, this.tmp)).ms);
      } catch (err) {
        this.fail(`ansible ${n}`, err);
      }
    }
  }

  peerFigures(n: number, jobfleet: number): void {
    const peers: {
      name: string;
      installed: boolean;
      target: number | null;
      applies: boolean;
      how: string;
    }[] = [
      {
        name: 'pdsh',
        installed: this.peers.pdsh,
        target: 3,
        applies: true,
        how: 'pdsh -R exec -f <cores*2>',
      },
      {
        name: 'ansible',
        installed: this.peers.ansible,
        target: null,
        applies: this.plan.ansibleHosts.includes(n),
        how: 'ansible ad-hoc -c local -m raw -f <cores*2>',
      },
    ];
    for (const p of peers) {
      if (!p.applies) continue;
      const base = {
        id: `P1.${p.name}`,
        params: { hosts: n },
        unit: 's',
        target: p.target,
        executor: 'n/a' as const,
      };
      const times = this.peerTimes.get(`${p.name}:${n}`) ?? [];
      if (!p.installed) {
        this.figures.push(unmeasured(base, 'not installed (run with --install-peers)'));
        continue;
      }
      if (times.length === 0) {
        this.figures.push(unmeasured(base, 'no successful run'));
        continue;
      }
      const sum = summarize(times);
      this.figures.push(
        judged(
          {
            ...base,
            value: sum.median,
            baseline: jobfleet,
            ratio: sum.median / jobfleet,
            min: sum.min,
            max: sum.max,
            note: `${p.how}; baseline: Jobfleet P1 on sqlite; ratio = peer / Jobfleet; ${times.length} run(s)`,
          },
          'ratio',
          'atLeast',
        ),
      );
    }
  }

  /** P3: the status of a finished large job with per-host results, against a static server answering its bytes. */
  async statusLoad(store: Store, api: BkApi, job: FastExecuteData, hosts: number): Promise<void> {
    try {
      const status = await api.jobStatus(job.job_instance_id, false);
      if (!status.finished) throw new Error(`job ${job.job_instance_id} is not finished`);
      await this.loadAgainstStatic('P3', { hosts, store }, api, job.job_instance_id, 0.5);
    } catch (err) {
      this.figures.push(unmeasured(p3Base('P3.rps', store, hosts, this.plan), this.fail(`P3 ${store}`, err)));
    }
  }

  /**
   * P3.run: the same status call on a job that is still running with about half of its hosts
   * done (each host's script exits at once or sleeps, by a random byte), so every reply
   * reflects live state. The job is terminated afterwards.
   */
  async runningStatusLoad(store: Store, api: BkApi, hostIds: number[]): Promise<void> {
    const hosts = hostIds.length;
    let jobId: number | undefined;
    try {
      const job = await api.fastExecuteScript(hostIds, HALF_DONE_SCRIPT, this.account);
      jobId = job.job_instance_id;
      const done = await waitForHalfDone(api, jobId, hosts);
      this.log(`P3.run ${store}: ${done} of ${hosts} hosts done, the rest running`);
      await this.loadAgainstStatic('P3.run', { hosts, store, done }, api, jobId, 0.3);
    } catch (err) {
      this.figures.push(
        unmeasured(p3Base('P3.run.rps', store, hosts, this.plan), this.fail(`P3.run ${store}`, err)),
      );
    } finally {
      if (jobId !== undefined) {
        try {
          await api.terminateJob(jobId);
          await waitForFinished(api, jobId, 120_000);
        } catch (err) {
          this.fail(`P3.run ${store}: terminating job ${jobId}`, err);
        }
      }
    }
  }

  /** `<id>.rps`, `.p50`, `.p99` of get_job_instance_status with per-host results, against a static server. */
  private async loadAgainstStatic(
    id: string,
    figureParams: Record<string, string | number>,
    api: BkApi,
    jobInstanceId: number,
    target: number,
  ): Promise<void> {
    const params: Record<string, string | number> = {
      ...figureParams,
      connections: this.plan.loadConnections,
    };
    const req = api.request('get_job_instance_status', api.statusBody(jobInstanceId, true));
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body });
    const bytes = Buffer.from(await res.arrayBuffer());
    const statics = await startStaticServer(bytes, res.headers.get('content-type') ?? 'application/json');
    const staticTarget = { ...req, url: `${statics.url}/api/v3/get_job_instance_status` };
    const opts = {
      connections: this.plan.loadConnections,
      durationMs: this.plan.loadSeconds * 1000,
      maxRequests: 1_000_000,
    };
    const ours: LoadResult[] = [];
    const theirs: LoadResult[] = [];
    try {
      await runLoad(req, { ...opts, durationMs: 1000 }); // warm both up
      await runLoad(staticTarget, { ...opts, durationMs: 1000 });
      for (let r = 0; r < this.plan.runs; r++) {
        ours.push(await runLoad(req, opts));
        theirs.push(await runLoad(staticTarget, opts));
      }
    } finally {
      await statics.close();
    }
    const errors = ours.reduce((a, r) => a + r.errors, 0);
    if (errors > 0) throw new Error(`${errors} failed status requests under load`);
    const note = `${(bytes.length / 1024).toFixed(0)} KiB reply; baseline: the same bytes from a static node:http server on a worker thread of the bench process`;
    const pick = (xs: LoadResult[], f: (r: LoadResult) => number) => summarize(xs.map(f));
    const rps = pick(ours, (r) => r.requestsPerSecond);
    const rpsBase = pick(theirs, (r) => r.requestsPerSecond).median;
    this.figures.push(
      judged(
        {
          id: `${id}.rps`,
          params,
          unit: 'req/s',
          value: rps.median,
          baseline: rpsBase,
          ratio: rps.median / rpsBase,
          target,
          min: rps.min,
          max: rps.max,
          executor: 'process',
          note: `${note}; target on ratio`,
        },
        'ratio',
        'atLeast',
      ),
    );
    for (const [suffix, f] of [
      ['p50', (r: LoadResult) => r.p50Ms],
      ['p99', (r: LoadResult) => r.p99Ms],
    ] as const) {
      const v = pick(ours, f);
      const b = pick(theirs, f).median;
      this.figures.push({
        id: `${id}.${suffix}`,
        params,
        unit: 'ms',
        value: v.median,
        baseline: b,
        ratio: v.median / b,
        target: null,
        met: null,
        min: v.min,
        max: v.max,
        executor: 'process',
        note: `latency under the same load as ${id}.rps`,
      });
    }
    this.log(
      `${id} ${String(params.store)}: ${rps.median.toFixed(1)} req/s vs static ${rpsBase.toFixed(1)} req/s`,
    );
  }

  /**
   * P7: one real `jobfleet agent`, one-host `echo` jobs one after another; each from the
   * fast_execute_script call until a status poll (every P7_POLL_MS) saw it finished.
   */
  async latencyPass(store: Store): Promise<void> {
    const base = {
      id: 'P7',
      params: { hosts: 1, store, jobs: this.plan.latencyJobs },
      unit: 'ms',
      target: 15,
      executor: 'process' as const,
    };
    try {
      const s = await this.startStoreServer(store);
      try {
        const agent = await startAgentProcess({ server: s.server, ip: '10.255.255.3', tmpRoot: this.tmp });
        try {
          for (let i = 0; i < 5; i++) await oneHostJob(s.api, agent.hostId, this.account); // warm-up
          const p50s: number[] = [];
          const p99s: number[] = [];
          const floors: number[] = [];
          for (let r = 0; r < this.plan.runs; r++) {
            const ms: number[] = [];
            const fl: number[] = [];
            for (let i = 0; i < this.plan.latencyJobs; i++) {
              ms.push(await oneHostJob(s.api, agent.hostId, this.account));
              fl.push(await spawnEcho());
            }
            ms.sort((a, b) => a - b);
            fl.sort((a, b) => a - b);
            p50s.push(percentile(ms, 50));
            p99s.push(percentile(ms, 99));
            floors.push(percentile(fl, 50));
            this.log(
              `P7 ${store}: p50 ${p50s.at(-1)?.toFixed(1)} ms, p99 ${p99s.at(-1)?.toFixed(1)} ms (sh -c echo ${floors.at(-1)?.toFixed(1)} ms)`,
            );
          }
          const floor = summarize(floors).median;
          for (const [id, xs, target] of [
            ['P7.p50', p50s, 15],
            ['P7.p99', p99s, 50],
          ] as const) {
            const sum = summarize(xs);
            this.figures.push(
              judged(
                {
                  ...base,
                  id,
                  target,
                  value: sum.median,
                  baseline: floor,
                  ratio: sum.median / floor,
                  min: sum.min,
                  max: sum.max,
                  note: `${this.plan.latencyJobs} one-host \`echo\` jobs in a row on one real agent process; fast_execute_script → a status poll (every ${P7_POLL_MS} ms) sees finished; baseline: p50 of \`sh -c echo\` spawned by the bench; target on value`,
                },
                'value',
                'atMost',
              ),
            );
          }
        } finally {
          await agent.stop();
        }
      } finally {
        await s.close();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail(`P7 ${store}`, err)));
    }
  }

  /**
   * P7.launch: the agent's own part of a one-host job, measured where a real agent pays it: its
   * task starter (the launcher) starting `sh -c 'echo hello'` on a host that waits
   * LAUNCH_PAUSE_MS between tasks, with nothing else of Jobfleet running.
   */
  async launchPass(): Promise<void> {
    const base = {
      id: 'P7.launch',
      params: { tasks: this.plan.latencyJobs },
      unit: 'ms',
      target: null,
      executor: 'process' as const,
    };
    const starter = defaultStarter();
    const pause = () => new Promise((r) => setTimeout(r, LAUNCH_PAUSE_MS));
    try {
      for (let i = 0; i < 5; i++) await launchEcho(starter, i); // starts the launcher
      const p50s: number[] = [];
      const floors: number[] = [];
      for (let r = 0; r < this.plan.runs; r++) {
        const ms: number[] = [];
        const fl: number[] = [];
        for (let i = 0; i < this.plan.latencyJobs; i++) {
          await pause();
          ms.push(await launchEcho(starter, i));
          await pause();
          fl.push(await spawnEcho());
        }
        ms.sort((a, b) => a - b);
        fl.sort((a, b) => a - b);
        p50s.push(percentile(ms, 50));
        floors.push(percentile(fl, 50));
        this.log(`P7.launch: p50 ${p50s.at(-1)?.toFixed(2)} ms (sh -c echo ${floors.at(-1)?.toFixed(2)} ms)`);
      }
      const sum = summarize(p50s);
      const floor = summarize(floors).median;
      this.figures.push({
        ...base,
        value: sum.median,
        baseline: floor,
        ratio: sum.median / floor,
        min: sum.min,
        max: sum.max,
        met: null,
        note: `p50 of ${this.plan.latencyJobs} \`sh -c 'echo hello'\` started one at a time through the agent's task launcher (as a real \`jobfleet agent\` starts a task), from the request until its exit and end of output were reported, ${LAUNCH_PAUSE_MS} ms apart; no server; baseline: p50 of the same command spawned by the bench, interleaved`,
      });
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P7.launch', err)));
    } finally {
      starter.close();
    }
  }

  /** The largest fan-out again with agents that run nothing: what the control plane alone costs. */
  async noopFanOut(hosts: number): Promise<void> {
    const base = {
      id: 'P1.noop',
      params: { hosts, store: 'sqlite' },
      unit: 's',
      target: null,
      executor: 'noop' as const,
    };
    const s = await this.startStoreServer('sqlite');
    try {
      const fleet = await this.startFleet(s.server, hosts, 'noop');
      try {
        const runs: number[] = [];
        for (let r = 0; r < this.plan.runs; r++) {
          const run = await fanOut(s.api, fleet.hostIds, this.account);
          this.log(`P1 noop ${hosts} hosts: ${run.totalSeconds.toFixed(3)} s`);
          runs.push(run.totalSeconds);
        }
        const sum = summarize(runs);
        const withProcesses = this.sqliteFanOut.get(hosts) ?? null;
        this.figures.push({
          ...base,
          value: sum.median,
          baseline: withProcesses,
          ratio: withProcesses === null ? null : sum.median / withProcesses,
          met: null,
          min: sum.min,
          max: sum.max,
          note: 'agents report success without starting a process; baseline: P1 sqlite with the process executor',
        });
      } finally {
        await fleet.stop();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P1 noop', err)));
    } finally {
      await s.close();
    }
  }

  /**
   * P6.noop: a file step to the largest fan-out of noop hosts (each reports its file as an agent
   * does, without moving a byte) against a script step to the same hosts: what the file step's
   * control plane (offers, dispatch, file logs) adds to a step's.
   */
  async fileNoopPass(): Promise<void> {
    const hosts = Math.max(...this.plan.fanOutHosts);
    const base = {
      id: 'P6.noop',
      params: { hosts, store: 'sqlite' },
      unit: 's',
      target: null,
      executor: 'noop' as const,
    };
    const s = await this.startStoreServer('sqlite');
    try {
      const fleet = await this.startFleet(s.server, hosts + 1, 'noop');
      try {
        const [source, ...targets] = fleet.hostIds;
        if (source === undefined) throw new Error('no source host');
        const files: number[] = [];
        const scripts: number[] = [];
        for (let r = 0; r < this.plan.runs; r++) {
          scripts.push((await fanOut(s.api, targets, this.account)).totalSeconds);
          files.push(await transferOnce(s.api, source, targets, this.account));
          this.log(
            `P6 noop ${hosts} hosts: file step ${files.at(-1)?.toFixed(3)} s, script step ${scripts.at(-1)?.toFixed(3)} s`,
          );
        }
        this.figures.push({
          ...base,
          ...againstBaseline(files, scripts),
          met: null,
          note: 'submit -> every target succeeded, one file from one noop host; baseline: a script step to the same noop hosts in the same run',
        });
      } finally {
        await fleet.stop();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P6 noop', err)));
    } finally {
      await s.close();
    }
  }

  /** P8: first paint and group switch of the console's step result on a big step (noop hosts). */
  async consolePass(): Promise<void> {
    const hosts = this.plan.consoleHosts;
    const params = { hosts, store: 'sqlite' };
    try {
      const s = await this.startStoreServer('sqlite', [
        '--heartbeat-timeout-ms',
        String(HEARTBEAT_WINDOW_MS),
      ]);
      try {
        const fleet = await this.startFleet(s.server, hosts, 'noop');
        try {
          const t = await consolePaint({
            server: s.server,
            api: s.api,
            hostIds: fleet.hostIds,
            account: this.account,
            runs: this.plan.runs,
          });
          const measured: [string, number[], string][] = [
            [
              'P8.paint',
              t.firstPaintMs,
              'navigation start until the groups and the first host rows are on screen',
            ],
            [
              'P8.switch',
              t.groupSwitchMs,
              'a click on another status group until its host list is on screen',
            ],
          ];
          for (const [id, values, what] of measured) {
            const sum = summarize(values);
            this.log(`${id} ${hosts} hosts: ${sum.median.toFixed(0)} ms`);
            this.figures.push({
              id,
              params,
              value: sum.median,
              unit: 'ms',
              baseline: null,
              ratio: null,
              target: null,
              met: null,
              min: sum.min,
              max: sum.max,
              executor: 'noop',
              note: `console step result, ${hosts} hosts in 3 output groups, Chromium at 1280x800: ${what}`,
            });
          }
        } finally {
          await fleet.stop();
        }
      } finally {
        await s.close();
      }
    } catch (err) {
      this.figures.push(
        unmeasured(
          { id: 'P8.paint', params, unit: 'ms', target: null, executor: 'noop' },
          this.fail('P8 console', err),
        ),
      );
    }
  }

  /** P5: one real agent prints the output; its server keeps the whole of it. */
  async bigOutputPass(): Promise<void> {
    const bytes = this.plan.bigOutputBytes;
    const base = {
      id: 'P5',
      params: { mib: bytes / MiB, store: 'sqlite' },
      unit: 'MiB/s',
      target: 0.5,
      executor: 'process' as const,
    };
    try {
      const cap = bytes + 16 * MiB;
      const s = await this.startStoreServer('sqlite', ['--log-cap-bytes', String(cap)]);
      try {
        const agent = await startAgentProcess({ server: s.server, ip: '10.255.255.2', tmpRoot: this.tmp });
        try {
          // The first job on a fresh server and agent also starts what later jobs find running
          // (the agent's launcher, the fingerprint thread) and runs their code cold, as P7's
          // first jobs do: it is measured apart and shown in the note, not counted.
          const { secs: cold, job: coldJob } = await bigOutput(s.api, agent.hostId, bytes, this.account);
          this.log(`P5 ${bytes / MiB} MiB, first job (not counted): ${cold.toFixed(2)} s`);
          const ours: number[] = [];
          const theirs: number[] = [];
          let job = coldJob;
          for (let r = 0; r < this.plan.runs; r++) {
            theirs.push(bytes / MiB / ((await dd(bytes, this.tmp)).ms / 1000));
            const run = await bigOutput(s.api, agent.hostId, bytes, this.account);
            const secs = run.secs;
            job = run.job;
            ours.push(bytes / MiB / secs);
            this.log(
              `P5 ${bytes / MiB} MiB: ${secs.toFixed(2)} s (${ours.at(-1)?.toFixed(1)} MiB/s; dd ${theirs.at(-1)?.toFixed(1)} MiB/s)`,
            );
          }
          this.figures.push(
            judged(
              {
                ...base,
                ...againstBaseline(ours, theirs),
                note: `one host prints ${bytes / MiB} MiB; until get_job_instance_ip_log holds all of it (server --log-cap-bytes ${cap}); ${this.plan.runs} job(s) after a first one on the fresh server and agent, which took ${cold.toFixed(2)} s (${(bytes / MiB / cold).toFixed(1)} MiB/s) and is not counted; baseline: dd of the same bytes to the same disk with fdatasync, before each counted job; target on ratio`,
              },
              'ratio',
              'atLeast',
            ),
          );
          const log = { server: s.server, api: s.api, job, hostId: agent.hostId, bytes };
          await this.logReadFigure(log);
          await this.logWindowFigure(log);
        } finally {
          await agent.stop();
        }
      } finally {
        await s.close();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P5', err)));
    }
  }

  /**
   * A figure of P5's log read back (`id`): `measure` reads it through the server and the same way
   * from a static node:http server of `staticBody` (on a worker thread of the bench process), over
   * one keep-alive agent, alternating; it returns both series and the note.
   */
  private async readFigure(
    id: string,
    params: Record<string, string | number>,
    staticBody: (kept: http.Agent) => Promise<Buffer>,
    measure: (
      kept: http.Agent,
      staticUrl: string,
    ) => Promise<{ ours: number[]; theirs: number[]; note: string }>,
  ): Promise<void> {
    const base = { id, params, unit: 'MiB/s', target: null, executor: 'process' as const };
    const kept = new http.Agent({ keepAlive: true });
    try {
      const statics = await startStaticServer(await staticBody(kept), 'application/json; charset=utf-8');
      try {
        const { ours, theirs, note } = await measure(kept, `${statics.url}/`);
        this.figures.push({ ...base, ...againstBaseline(ours, theirs), met: null, note });
      } finally {
        await statics.close();
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail(id, err)));
    } finally {
      kept.destroy();
    }
  }

  /**
   * P5.read: the last P5 job's log read back whole by get_job_instance_ip_log, from the request
   * until the reply's last byte is in (the bench only counts the bytes), against the same reply
   * from a static server; reads alternate with the baseline's.
   */
  private logReadFigure(log: StoredLog): Promise<void> {
    const { server, bytes } = log;
    const req = logRequest(log);
    let reply = Buffer.alloc(0);
    const whole = async (kept: http.Agent) => {
      const r = await postOnce(kept, req, { timeoutMs: 120_000, keepBody: true });
      reply = Buffer.from(r.text ?? '');
      const log = (JSON.parse(reply.toString()) as { data?: { log_content?: string } }).data?.log_content;
      if (log?.length !== bytes)
        throw new Error(`the log read back holds ${log?.length ?? 0} bytes, not ${bytes}`);
      return reply;
    };
    return this.readFigure(
      'P5.read',
      { mib: bytes / MiB, store: 'sqlite' },
      whole,
      async (kept, staticUrl) => {
        const read = async (target: PostTarget) => {
          const t0 = performance.now();
          const r = await postOnce(kept, target, { timeoutMs: 120_000, keepBody: false });
          if (r.status !== 200) throw new Error(`get_job_instance_ip_log: HTTP ${r.status}`);
          return { secs: (performance.now() - t0) / 1000, bytes: r.bytes };
        };
        const staticTarget = { ...req, url: staticUrl };
        const ours: number[] = [];
        const theirs: number[] = [];
        const cpu: number[] = [];
        await read(staticTarget); // its first reply is its slowest: warm it as ours was
        for (let r = 0; r < this.plan.runs; r++) {
          const { result: one, ms } = await serverCpu(server, () => read(req));
          cpu.push(ms);
          if (one.bytes !== reply.length)
            throw new Error(`a reply of ${one.bytes} bytes, not ${reply.length}`);
          ours.push(reply.length / MiB / one.secs);
          theirs.push(reply.length / MiB / (await read(staticTarget)).secs);
          this.log(
            `P5.read: ${ours.at(-1)?.toFixed(1)} MiB/s (static ${theirs.at(-1)?.toFixed(1)}), server CPU ${cpu.at(-1)?.toFixed(0)} ms`,
          );
        }
        return {
          ours,
          theirs,
          note: `P5's last log (${bytes / MiB} MiB) read back whole by get_job_instance_ip_log, its reply ${(reply.length / MiB).toFixed(1)} MiB of JSON, over loopback to the bench, which only counts the bytes; ${this.plan.runs} read(s), server CPU a read ${summarize(cpu).median.toFixed(0)} ms (median); baseline: the same reply from a static node:http server on a worker thread of the bench process, read after each`,
        };
      },
    );
  }

  /**
   * P5.window: the same log read in windows of LOG_WINDOW bytes, as the console pages through
   * it, each from where the last one ended, until a reply says the log is complete; against as
   * many replies of the first window from a static server. Passes alternate with the baseline's.
   */
  private logWindowFigure(log: StoredLog): Promise<void> {
    const { server, bytes } = log;
    const at = (offset: number) => logRequest(log, { log_offset: offset, log_length: LOG_WINDOW });
    const firstWindow = async (kept: http.Agent) =>
      Buffer.from((await postOnce(kept, at(0), { timeoutMs: 60_000, keepBody: true })).text ?? '');
    const params = { mib: bytes / MiB, store: 'sqlite', window_kib: LOG_WINDOW / 1024 };
    return this.readFigure('P5.window', params, firstWindow, async (kept, staticUrl) => {
      /** One pass: `count` replies, or (without it) windows until the log is complete. */
      const pass = async (target: (offset: number) => PostTarget, count?: number) => {
        const t0 = performance.now();
        let offset = 0;
        let replies = 0;
        let replyBytes = 0;
        for (;;) {
          const r = await postOnce(kept, target(offset), { timeoutMs: 60_000, keepBody: true });
          if (r.status !== 200) throw new Error(`get_job_instance_ip_log: HTTP ${r.status}`);
          replies++;
          replyBytes += r.bytes;
          // The window's fields follow its text: read from the reply's end, as cheap for both sides.
          const end = (r.text ?? '').slice(-400);
          const next = Number(/"log_next_offset":(\d+)/.exec(end)?.[1]);
          if (count !== undefined) {
            if (replies >= count) break;
            continue;
          }
          if (/"log_complete":true/.test(end)) break;
          if (!(next > offset)) throw new Error(`a window at ${offset} leads nowhere: ${end}`);
          offset = next;
        }
        return { secs: (performance.now() - t0) / 1000, replies, replyBytes, offset };
      };
      const staticAt = () => ({ ...at(0), url: staticUrl });
      const ours: number[] = [];
      const theirs: number[] = [];
      const cpu: number[] = [];
      await pass(staticAt, 4); // warmed, as ours was by P5.read
      for (let r = 0; r < this.plan.runs; r++) {
        const { result: one, ms } = await serverCpu(server, () => pass(at));
        cpu.push(ms / one.replies);
        if (one.offset + LOG_WINDOW < bytes)
          throw new Error(`the windows ended at ${one.offset} of ${bytes}`);
        ours.push(one.replyBytes / MiB / one.secs);
        const other = await pass(staticAt, one.replies);
        theirs.push(other.replyBytes / MiB / other.secs);
        this.log(
          `P5.window: ${one.replies} windows, ${ours.at(-1)?.toFixed(1)} MiB/s (static ${theirs.at(-1)?.toFixed(1)}), server CPU ${cpu.at(-1)?.toFixed(1)} ms a window`,
        );
      }
      return {
        ours,
        theirs,
        note: `P5's last log (${bytes / MiB} MiB) read in windows of ${LOG_WINDOW / 1024} KiB (log_offset, log_length), each from the last one's log_next_offset until log_complete, over loopback; MiB/s of replies; ${this.plan.runs} pass(es), server CPU a window ${summarize(cpu).median.toFixed(1)} ms (median); baseline: as many replies of the first window from a static node:http server on a worker thread of the bench process, after each pass`,
      };
    });
  }

  /** P6: real agents on 127.0.0.x, each with its own file root, one source and N targets. */
  async fileFanOutPass(): Promise<void> {
    const { fileBytes: bytes, fileTargets: n } = this.plan;
    const base = {
      id: 'P6',
      params: { mib: bytes / MiB, targets: n, store: 'sqlite' },
      unit: 'MiB/s',
      target: null,
      executor: 'process' as const,
    };
    try {
      const s = await this.startStoreServer('sqlite');
      const roots = Array.from({ length: n + 1 }, (_, i) =>
        fs.mkdtempSync(path.join(this.tmp, `root-${i}-`)),
      );
      try {
        const agents = await Promise.all(
          roots.map((fileRoot, i) =>
            startAgentProcess({ server: s.server, ip: `127.0.1.${i + 2}`, tmpRoot: this.tmp, fileRoot }),
          ),
        );
        const [source, ...targets] = agents;
        if (!source) throw new Error('no source agent');
        writeSourceFile(path.join(roots[0] as string, 'data', 'p6.bin'), bytes);
        const ours: number[] = [];
        const theirs: number[] = [];
        for (let r = 0; r < this.plan.runs; r++) {
          theirs.push(
            (n * bytes) / MiB / cpBaseline(path.join(roots[0] as string, 'data', 'p6.bin'), n, this.tmp),
          );
          const secs = await transferOnce(
            s.api,
            source.hostId,
            targets.map((t) => t.hostId),
            this.account,
          );
          ours.push((n * bytes) / MiB / secs);
          for (const root of roots.slice(1))
            fs.rmSync(path.join(root, 'p6'), { recursive: true, force: true });
          this.log(
            `P6 ${bytes / MiB} MiB to ${n}: ${secs.toFixed(2)} s (${ours.at(-1)?.toFixed(0)} MiB/s; cp ${theirs.at(-1)?.toFixed(0)} MiB/s)`,
          );
        }
        await Promise.all(agents.map((a) => a.stop()));
        this.figures.push({
          ...base,
          ...againstBaseline(ours, theirs),
          met: null,
          note: `aggregate MiB/s delivered (size x targets / time until every target verified its copy); bytes went agent to agent (source and finished targets serve them), not through the server; baseline: ${n} sequential cp of the same file on the same disk, synced`,
        });
      } finally {
        await s.close();
        for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
      }
    } catch (err) {
      this.figures.push(unmeasured(base, this.fail('P6', err)));
    }
  }
}

function p3Base(id: string, store: Store, hosts: number, plan: Plan) {
  return {
    id,
    params: { hosts, store, connections: plan.loadConnections },
    unit: 'req/s',
    target: 0.5,
    executor: 'process' as const,
  };
}

/** Exits at once on about half of the hosts (a random byte below 128); sleeps on the rest. */
const HALF_DONE_SCRIPT = '[ $(od -An -N1 -tu1 /dev/urandom) -lt 128 ] || exec sleep 3600';

/** Host task statuses that mean a host has not started yet (waiting) or is running. */
const HOST_WAITING = 5;
const HOST_RUNNING = 7;

/** Waits until no host is waiting and the number done (above 0) held for 3 polls a second apart. */
async function waitForHalfDone(api: BkApi, jobInstanceId: number, hosts: number): Promise<number> {
  const deadline = performance.now() + 120_000 + hosts * 30;
  let last = -1;
  let same = 0;
  for (;;) {
    const s = await api.jobStatus(jobInstanceId, true);
    const results = s.step_instance_list?.flatMap((st) => st.step_ip_result_list ?? []) ?? [];
    const waiting = results.filter((h) => h.status === HOST_WAITING).length;
    const done = results.filter((h) => h.status !== HOST_RUNNING && h.status !== HOST_WAITING).length;
    if (s.finished) throw new Error(`job ${jobInstanceId} finished before its sleeping hosts were stopped`);
    same = done === last ? same + 1 : 0;
    if (waiting === 0 && results.length === hosts && done > 0 && same >= 2) return done;
    last = done;
    if (performance.now() > deadline) throw new Error(`job ${jobInstanceId}: ${waiting} hosts still waiting`);
    await sleep(1000);
  }
}

async function waitForFinished(api: BkApi, jobInstanceId: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await api.jobStatus(jobInstanceId, false)).finished) {
    if (performance.now() > deadline) throw new Error(`job ${jobInstanceId} did not finish`);
    await sleep(200);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** RSS of a node process that does nothing, in MiB: the floor under any Node.js agent. */
async function bareNodeRss(): Promise<number> {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(1000);
    return rssBytes(proc.pid ?? -1) / MiB;
  } finally {
    proc.kill();
  }
}

async function main(): Promise<void> {
  const cmd = new Command('bench')
    .description('measure Jobfleet against baselines measured in the same run')
    .option('--quick', 'a smoke run of about two minutes: small fleets, one repetition')
    .option('--install-peers', 'apt-get install pdsh and ansible-core when missing')
    .option(
      '--pg-url <url>',
      'PostgreSQL server for the PostgreSQL figures (a database is created and dropped per server) [env JOBFLEET_BENCH_PG_URL]',
    )
    .option(
      '--only <figures>',
      `comma-separated figures to measure (${FIGURE_IDS.join(', ')}); results go to partial.json/.md`,
    )
    .option(
      '--hosts <sizes>',
      'comma-separated fan-out sizes for P1/P2 (the largest also for P3, P3.run, P6.noop)',
    )
    .option(
      '--scale-hosts <n>',
      'noop agents for P2.scale, P4.server and P4.ready (default 50000, 200 with --quick)',
    )
    .option('--runs <n>', 'repetitions of each figure (default 3, 1 with --quick)')
    .option(
      '--console-hosts <n>',
      'hosts of the step P8 opens in the console (default 10000, 300 with --quick)',
    )
    .option(
      '--results-dir <dir>',
      'where latest.json and latest.md go',
      path.join(REPO_ROOT, 'bench', 'results'),
    );
  cmd.parse(process.argv);
  const flags = cmd.opts<{
    quick?: boolean;
    installPeers?: boolean;
    pgUrl?: string;
    resultsDir: string;
    only?: string;
    hosts?: string;
    runs?: string;
    scaleHosts?: string;
    consoleHosts?: string;
  }>();
  const only = new Selection(flags.only);
  const plan = adjustedPlan(flags.quick ? QUICK : FULL, flags);
  const partial =
    !only.all ||
    flags.hosts !== undefined ||
    flags.runs !== undefined ||
    flags.scaleHosts !== undefined ||
    flags.consoleHosts !== undefined;
  const pgUrl = flags.pgUrl ?? process.env.JOBFLEET_BENCH_PG_URL;
  const tmp = tmpRoot();
  const started = performance.now();
  const say = (l: string) => process.stderr.write(`[bench] ${l}\n`);
  if (flags.installPeers) installPeers(say);
  const peers = {
    pdsh: installed('pdsh'),
    ansible: installed('ansible') && !process.env.JOBFLEET_BENCH_NO_ANSIBLE,
  };
  const bench = new Bench(plan, tmp, peers, pgUrl, only);
  const stores: Store[] = ['sqlite'];
  if (pgUrl && (await reachable(pgUrl))) stores.push('postgres');
  else
    bench.log(
      pgUrl
        ? `PostgreSQL at ${new URL(pgUrl).host} is not reachable: SQLite only`
        : 'no --pg-url: SQLite only',
    );
  try {
    for (const store of stores) {
      try {
        await bench.storePass(store);
      } catch (err) {
        bench.figures.push(unmeasured(p3Base('P1', store, 0, plan), bench.fail(`${store} pass`, err)));
      }
      if (only.has('P7')) await bench.latencyPass(store);
    }
    if (only.has('P7.launch')) await bench.launchPass();
    if (only.has('P5', 'P5.read', 'P5.window')) await bench.bigOutputPass();
    if (only.has('P6')) await bench.fileFanOutPass();
    if (only.has('P6.noop')) await bench.fileNoopPass();
    if (only.has('P8')) await bench.consolePass();
    if (only.has('P9.fanout', 'P9.jps', 'P9.roll'))
      bench.figures.push(
        ...(await clusterFigures({
          pgUrl: stores.includes('postgres') ? pgUrl : undefined,
          tmp,
          account: bench.account,
          hosts: Math.min(1000, Math.max(...plan.fanOutHosts)),
          runs: plan.runs,
          log: (l) => bench.log(l),
          fail: (what, err) => bench.fail(what, err),
        })),
      );
  } finally {
    await stopAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const results = {
    figures: bench.figures.filter((f) => only.has(f.id, f.id.split('.')[0] ?? f.id)).map(rounded),
    machine: machine({
      pdsh: peers.pdsh ? versionOf('pdsh -V') : 'not installed',
      ansible: peers.ansible ? versionOf('ansible --version') : 'not installed',
    }),
    date: new Date().toISOString(),
  };
  writeResults(
    flags.resultsDir,
    results,
    partial ? `${plan.mode}, partial` : plan.mode,
    partial ? 'partial' : 'latest',
  );
  process.stdout.write(`\n${textTable(results.figures)}\n\n`);
  say(
    `${plan.mode} run took ${((performance.now() - started) / 1000).toFixed(0)} s; results in ${flags.resultsDir}`,
  );
  if (bench.broken.length > 0) {
    say(`BROKEN (${bench.broken.length}):\n  ${bench.broken.join('\n  ')}`);
    process.exitCode = 1;
  }
}

/**
 * Simulator processes of a noop fleet: one per 10,000 agents, rounded up to a multiple of the
 * servers (shard k connects to server k mod n, so each server gets the same number of agents).
 */
function scaleShards(agents: number, servers: number): number {
  return servers * Math.ceil(Math.ceil(agents / NOOP_AGENTS_PER_SHARD) / servers);
}

/**
 * The longest one agent of the scale fleet may take to become ready. On a machine whose cores
 * other work also wants, a registration may go unanswered for its 10 s and the agent backs off
 * and tries again (as a real agent does); from about 18,000 agents on such a machine some
 * needed more than the simulator's default 120 s, and the whole pass was lost. P4.ready counts
 * that time; this bound only tells a slow start from a stuck one.
 */
const SCALE_AGENT_READY_MS = 900_000;

/**
 * Part of a process's open-file limit that agents' connections may take on one server; the
 * rest is for its files and database connections, agents between connect and ready, and
 * sockets still closing.
 */
const AGENT_FD_SHARE = 0.85;

/**
 * `JOBFLEET_BENCH_SCALE_SERVERS=n`: the PostgreSQL scale pass runs on n servers in cluster mode
 * whatever its size (cluster mode with a small fleet, to develop and check it).
 */
const FORCED_SCALE_SERVERS = Number(process.env.JOBFLEET_BENCH_SCALE_SERVERS) || undefined;

/**
 * How many agents the scale pass runs on how many servers: every agent asked for, on as many
 * servers as their connections need (PostgreSQL, cluster mode), or on SQLite's one server as
 * many as fit it, with a note saying so.
 */
function scaleLayout(
  store: Store,
  asked: number,
  fdLimit: number,
  forcedServers = FORCED_SCALE_SERVERS,
): { hosts: number; servers: number; capped: string } {
  const perServer = Math.floor(fdLimit * AGENT_FD_SHARE);
  const servers = store === 'sqlite' ? 1 : (forcedServers ?? Math.ceil(asked / perServer));
  const hosts = Math.min(asked, servers * perServer);
  const capped =
    hosts < asked
      ? `; ${asked} asked, ${hosts} fit under the open-file limit of ${fdLimit} a process gets on this machine (${store === 'sqlite' ? 'SQLite runs one server' : `${servers} server(s)`}; one descriptor per agent connection)`
      : '';
  return { hosts, servers, capped };
}

/** The plan with `--hosts`, `--runs`, `--scale-hosts` and `--console-hosts` applied. */
function adjustedPlan(
  plan: Plan,
  flags: { hosts?: string; runs?: string; scaleHosts?: string; consoleHosts?: string },
): Plan {
  const positive = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name}: "${v}" is not a positive integer`);
    return n;
  };
  const out = { ...plan };
  if (flags.hosts !== undefined) {
    out.fanOutHosts = flags.hosts.split(',').map((h) => positive('hosts', h.trim()));
    out.ansibleHosts = out.fanOutHosts.filter((h) => h <= 1000);
  }
  if (flags.runs !== undefined) out.runs = positive('runs', flags.runs);
  if (flags.scaleHosts !== undefined) out.scaleHosts = positive('scale-hosts', flags.scaleHosts);
  if (flags.consoleHosts !== undefined) out.consoleHosts = positive('console-hosts', flags.consoleHosts);
  return out;
}

/** Four significant digits, keys in the documented order. */
function rounded(f: Figure): Figure {
  const r = (n: number | null) => (n === null ? null : Number(n.toPrecision(4)));
  return {
    id: f.id,
    params: f.params,
    value: r(f.value),
    unit: f.unit,
    baseline: r(f.baseline),
    ratio: r(f.ratio),
    target: f.target,
    met: f.met,
    min: r(f.min),
    max: r(f.max),
    executor: f.executor,
    note: f.note,
  };
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  await stopAll();
  process.exit(1);
});
