/**
 * A cluster for end-to-end tests: N server processes in cluster mode on one fresh PostgreSQL
 * database, listening on 127.0.1.1, 127.0.1.2, ... (port 0), with the short cluster timings,
 * and agents on 127.0.0.2, 127.0.0.3, ... connected to the servers a test chooses.
 *
 * Every script a test runs through `clusterScript` appends one line to a marker file per host
 * (outside Jobfleet), so `checkInvariants` can tell that each host task ran exactly once; it also
 * checks final statuses and byte-exact logs. Faults are injected at points observed with `dbRows`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { admin, eventually, get, post } from './api-client.js';
import { dropFreshDatabases, freshDatabase } from './databases.js';
import { BIZ, b64, hostIdsByIp, hostLog, runScript } from './fleet.js';
import type { Fleet, JobStatus } from './fleet.js';
import { startAgent, startServer, stopAll, tempDir } from './processes.js';
import type { AgentProcess, ServerProcess } from './processes.js';

/**
 * §3.10 of the cluster design, test column; dead-after and self-fence doubled, since a start on a
 * loaded two-core machine can stall a server's event loop for more than a second.
 */
export const CLUSTER_TEST_ENV = {
  JOBFLEET_CLUSTER: '1',
  JOBFLEET_CLUSTER_HEARTBEAT_MS: '200',
  JOBFLEET_CLUSTER_DEAD_AFTER_MS: '3000',
  JOBFLEET_CLUSTER_SWEEP_MS: '200',
  JOBFLEET_CLUSTER_SELF_FENCE_MS: '2000',
  JOBFLEET_CLUSTER_POLL_MS: '200',
  JOBFLEET_CLUSTER_AGENT_GRACE_MS: '5000',
  // The key that seals secrets at rest is the same on every server of a cluster.
  JOBFLEET_SERVER_KEY: '6a6f62666c6565742d636c75737465722d746573742d6b65792d303030303031',
};

export interface Cluster {
  /** The PostgreSQL database; undefined for the single server on SQLite (`store: 'sqlite'`). */
  databaseUrl: string | undefined;
  servers: ServerProcess[];
  agents: AgentProcess[];
  /** ip -> bk_host_id */
  hostIds: Map<string, number>;
  account: string;
  markers: string;
  /** Servers a test paused (SIGSTOP): their sockets accept but never answer, so nobody asks them. */
  paused: Set<ServerProcess>;
  /** A Fleet view that talks to server `i` (for the fleet helpers). */
  via(i: number): Fleet;
  /**
   * Rows of a query on the cluster's database, written for PostgreSQL. On SQLite each `$n`
   * becomes `?`, so each parameter must appear once, in order.
   */
  db<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export function serverAddress(i: number): string {
  return `127.0.1.${i + 1}`;
}

export async function startClusterServer(
  databaseUrl: string,
  i: number,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return startServer({
    databaseUrl,
    args: ['--host', serverAddress(i)],
    env: { ...CLUSTER_TEST_ENV, ...env },
    readyTimeoutMs: 60_000,
  });
}

/**
 * Starts `servers` servers; agent n (127.0.0.{n+2}) connects to server `placement(n)`. With
 * `store: 'sqlite'`, one server, not in cluster mode, on SQLite in its data dir: the same
 * helpers and checker then serve a single server on the embedded store.
 */
export async function startCluster(opts: {
  servers: number;
  store?: 'sqlite';
  agents: number;
  placement?: (agent: number) => number | number[];
  env?: Record<string, string>;
  /** A database of the test's own (default: a fresh one on JOBFLEET_TEST_PG_URL). */
  databaseUrl?: string;
  /** The URL server `i` is given for that database (a relay in front of it, say). */
  databaseUrlOf?: (server: number) => string;
  /** More environment for agent n (e.g. its own file root). */
  agentEnv?: (agent: number) => Record<string, string>;
}): Promise<Cluster> {
  const sqlite = opts.store === 'sqlite';
  if (sqlite && opts.servers !== 1) throw new Error('SQLite has one server');
  const databaseUrl = sqlite ? undefined : (opts.databaseUrl ?? (await freshDatabase('postgres')));
  if (!sqlite && !databaseUrl) throw new Error('cluster tests need JOBFLEET_TEST_PG_URL');
  // One after the other: the first migrates the database, and starts in parallel only thrash a
  // loaded machine.
  const servers: ServerProcess[] = [];
  if (databaseUrl === undefined)
    servers.push(
      await startServer({ args: ['--host', serverAddress(0)], env: opts.env ?? {}, readyTimeoutMs: 60_000 }),
    );
  for (let i = 0; databaseUrl !== undefined && i < opts.servers; i++)
    servers.push(await startClusterServer(opts.databaseUrlOf?.(i) ?? databaseUrl, i, opts.env));
  const first = servers[0] as ServerProcess;
  const created = await admin(first.url, first.adminToken, 'POST', '/biz', { id: BIZ, name: 'cluster test' });
  if (!created.result) throw new Error(created.message);
  const account = os.userInfo().username;
  await admin(first.url, first.adminToken, 'POST', '/accounts', {
    bk_biz_id: BIZ,
    alias: account,
    os_user: account,
  });
  const markers = tempDir('markers');
  const placement = opts.placement ?? ((n: number) => n % servers.length);
  const agents = await Promise.all(
    Array.from({ length: opts.agents }, (_, n) => {
      const ip = `127.0.0.${n + 2}`;
      const at = [placement(n)].flat();
      return startAgent({
        server: { url: at.map((s) => servers[s]?.url ?? '').join(','), bootstrapToken: first.bootstrapToken },
        ip,
        biz: BIZ,
        env: { TEST_AGENT_IP: ip, TEST_MARKERS: markers, ...opts.agentEnv?.(n) },
        waitReady: false,
      })
        .then(async (agent) => {
          await agent.waitReady(1, 60_000);
          return agent;
        })
        .catch((err: unknown) => {
          const logs = servers.map((s, i) => `S${i + 1}:\n${s.output().split('\n').slice(-15).join('\n')}`);
          throw new Error(`${String(err)}\n${logs.join('\n')}`);
        });
    }),
  );
  const hostIds = await hostIdsByIp(first.url, first.adminToken);
  const pool = databaseUrl === undefined ? undefined : new pg.Pool({ connectionString: databaseUrl, max: 2 });
  pool?.on('error', () => undefined);
  const sqliteFile = path.join(first.dataDir, 'jobfleet.db');
  const cluster: Cluster = {
    databaseUrl,
    servers,
    agents,
    hostIds,
    account,
    markers,
    paused: new Set(),
    via(i) {
      const server = cluster.servers[i];
      if (!server) throw new Error(`no server ${i}`);
      return {
        server,
        agents: cluster.agents,
        hostIds,
        creds: { appCode: server.appCode, appSecret: server.appSecret, username: 'tester' },
        account,
        scope: { bk_scope_type: 'biz', bk_scope_id: String(BIZ) },
        fileRoots: new Map(),
        databaseUrl,
      };
    },
    async db<T>(text: string, params: unknown[] = []) {
      if (pool) return (await pool.query(text, params)).rows as T[];
      const file = new SQLite(sqliteFile, { readonly: true });
      try {
        return file.prepare(text.replace(/\$\d+/g, '?')).all(...params) as T[];
      } finally {
        file.close();
      }
    },
    close: async () => pool?.end(),
  };
  return cluster;
}

/**
 * A cluster for the tests of one `describe`: started before them, and after them stopped with
 * every process the tests started, its database dropped. Returns the cluster once started.
 */
export function clusterPerSuite(opts: Parameters<typeof startCluster>[0]): () => Cluster {
  let c: Cluster | undefined;
  before(async () => {
    c = await startCluster(opts);
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });
  return () => {
    if (!c) throw new Error('the cluster did not start');
    return c;
  };
}

/**
 * A file root of its own for the agent of each ip (JOBFLEET_AGENT_FILE_ROOT), for file steps:
 * `agentEnv` goes to startCluster (agent n is `ips[n]`), `file` maps a host path to this machine.
 */
export function agentFileRoots(ips: string[]): {
  agentEnv: (agent: number) => Record<string, string>;
  file: (ip: string, hostPath: string) => string;
  remove: () => void;
} {
  const roots = new Map(ips.map((ip) => [ip, tempDir(`root-${ip}`)]));
  return {
    agentEnv: (n) => ({ JOBFLEET_AGENT_FILE_ROOT: roots.get(ips[n] ?? '') ?? '' }),
    file: (ip, hostPath) => path.join(roots.get(ip) ?? '', hostPath),
    remove: () => {
      for (const r of roots.values()) fs.rmSync(r, { recursive: true, force: true });
    },
  };
}

/** The session epoch and server of each host, as the database records them. */
export async function sessionsOf(
  c: Cluster,
): Promise<Map<number, { server_id: string; epoch: number; state: string }>> {
  const rows = await c.db<{ host_id: string; server_id: string; epoch: string; state: string }>(
    'select host_id, server_id, epoch, state from agent_session',
  );
  return new Map(
    rows.map((r) => [Number(r.host_id), { server_id: r.server_id, epoch: Number(r.epoch), state: r.state }]),
  );
}

/** The id each server registered under (its `server_node` row), from its log. */
export function serverIdOf(s: ServerProcess): string {
  const m = /"serverId":"([0-9a-f-]{36})"/.exec(s.output());
  if (!m?.[1]) throw new Error('server id not logged');
  return m[1];
}

// ---------------------------------------------------------------- jobs and the invariant checker

/** A job the test was told was accepted, and what it must come to. */
export interface AcknowledgedJob {
  jobId: number;
  stepId: number;
  tag: string;
  hosts: string[];
  /** Final job status expected (3 success, 4 failed, ...). */
  status: number;
  /** The exact output each host must have. */
  log: (ip: string) => string;
}

let jobSeq = 0;

/**
 * Runs a shell script on `hosts` through server `via`: it prints a start line, marks its run,
 * sleeps, prints `lines` lines (`every` seconds apart) and exits 3 on the host `failOn` (or on
 * the host `failOnce`, only the first time it runs there: a retry of the step succeeds).
 */
export async function clusterScript(
  c: Cluster,
  via: number,
  hosts: string[],
  opts: {
    sleep?: number;
    /** Hosts that sleep for a time of their own instead (by ip). */
    sleepOn?: Record<string, number>;
    failOn?: string;
    failOnce?: string;
    /** The job's callback_url. */
    callbackUrl?: string;
    lines?: number;
    every?: number;
    /**
     * Runs the hosts in batches; each host's script then also stamps when it started (in its
     * marker line) and ended (a marker of its own, see runStamps).
     */
    rolling?: { mode: number; expression: string };
  } = {},
): Promise<AcknowledgedJob> {
  const tag = `job${process.pid}-${++jobSeq}`;
  const lines = opts.lines ?? 3;
  const script = [
    `echo "start ${tag} $TEST_AGENT_IP"`,
    opts.rolling
      ? `echo "run $(date +%s%N)" >> "$TEST_MARKERS/${tag}-$TEST_AGENT_IP"`
      : `echo run >> "$TEST_MARKERS/${tag}-$TEST_AGENT_IP"`,
    `case "$TEST_AGENT_IP" in ${Object.entries(opts.sleepOn ?? {})
      .map(([ip, secs]) => `${ip}) sleep ${secs};; `)
      .join('')}*) sleep ${opts.sleep ?? 0.5};; esac`,
    `for i in $(seq 1 ${lines}); do echo "line $i ${tag} $TEST_AGENT_IP"${opts.every ? `; sleep ${opts.every}` : ''}; done`,
    ...(opts.rolling ? [`date +%s%N > "$TEST_MARKERS/${tag}-$TEST_AGENT_IP.end"`] : []),
    ...(opts.failOn ? [`[ "$TEST_AGENT_IP" = "${opts.failOn}" ] && exit 3`] : []),
    ...(opts.failOnce
      ? [
          `[ "$TEST_AGENT_IP" = "${opts.failOnce}" ] && [ "$(wc -l < "$TEST_MARKERS/${tag}-$TEST_AGENT_IP")" -eq 1 ] && exit 3`,
        ]
      : []),
    'exit 0',
  ].join('\n');
  const ids = hosts.map((ip) => c.hostIds.get(ip) ?? 0);
  const r = await runScript(c.via(via), {
    script_content: b64(script),
    target_server: { host_id_list: ids },
    ...(opts.rolling ? { rolling_config: opts.rolling } : {}),
    ...(opts.callbackUrl ? { callback_url: opts.callbackUrl } : {}),
  });
  assert.equal(r.result, true, `${r.message}\n${serverErrors(c)}`);
  const log = (ip: string) => {
    const body = Array.from({ length: lines }, (_, i) => `line ${i + 1} ${tag} ${ip}\n`).join('');
    return `start ${tag} ${ip}\n${body}`;
  };
  return {
    jobId: r.data.job_instance_id,
    stepId: r.data.step_instance_id,
    tag,
    hosts,
    status: [opts.failOn, opts.failOnce].some((ip) => ip && hosts.includes(ip)) ? 4 : 3,
    log,
  };
}

/** Error lines the servers logged (for failure messages). */
export function serverErrors(c: Cluster): string {
  return c.servers
    .map(
      (s, i) =>
        `S${i + 1}: ${s
          .output()
          .split('\n')
          .filter((l) => /"level":(50|60)/.test(l))
          .slice(-5)
          .join('\n')}`,
    )
    .join('\n');
}

/** Polls get_job_instance_status through any live server until the job is finished. */
export async function waitJobFinished(c: Cluster, jobId: number, timeoutMs = 30_000): Promise<JobStatus> {
  return eventually(
    async () => {
      for (const [i, s] of c.servers.entries()) {
        if (!isLive(c, s)) continue;
        const f = c.via(i);
        const r = await get<JobStatus>(
          s.url,
          'get_job_instance_status',
          { ...f.scope, job_instance_id: jobId, return_ip_result: true },
          f.creds,
        ).catch(() => undefined);
        if (!r) continue;
        if (!r.result) throw new Error(r.message);
        return r.data.finished ? r.data : undefined;
      }
      return undefined;
    },
    timeoutMs,
    `job ${jobId} to finish`,
  );
}

/** The job's status as server `via` answers it; undefined when it does not. */
export async function statusVia(c: Cluster, via: number, jobId: number): Promise<JobStatus | undefined> {
  const f = c.via(via);
  return get<JobStatus>(
    f.server.url,
    'get_job_instance_status',
    { ...f.scope, job_instance_id: jobId },
    f.creds,
  ).then(
    (r) => (r.result ? r.data : undefined),
    () => undefined,
  );
}

/**
 * Every 0.3–1 s until the deadline, reads the job's status through the server `pick` names (none
 * named, or no answer: the next time) and hands it to `look`, which says whether to stop.
 */
export async function everyStatus(
  c: Cluster,
  jobId: number,
  pick: () => number | undefined,
  deadline: number,
  look: (st: JobStatus, via: number) => Promise<boolean>,
): Promise<void> {
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
    const via = pick();
    if (via === undefined) continue;
    const st = await statusVia(c, via, jobId);
    if (st && (await look(st, via))) return;
  }
}

/** operate_step_instance through server `via`: whether it was accepted. */
export async function operateStepVia(
  c: Cluster,
  via: number,
  step: { jobId: number; stepId: number },
  operation: number,
): Promise<boolean> {
  const f = c.via(via);
  const r = await post(
    f.server.url,
    'operate_step_instance',
    { ...f.scope, job_instance_id: step.jobId, step_instance_id: step.stepId, operation_code: operation },
    f.creds,
  ).catch(() => undefined);
  return r?.result === true;
}

function isLive(c: Cluster, s: ServerProcess): boolean {
  return s.proc.exitCode === null && s.proc.signalCode === null && !c.paused.has(s);
}

/** Index of a server that is running (not killed, not paused). */
export function liveServer(c: Cluster): number {
  const i = c.servers.findIndex((s) => isLive(c, s));
  if (i < 0) throw new Error('no live server');
  return i;
}

/**
 * Every acknowledged job is final with its expected status, each host task ran exactly once
 * (one line in its marker file), and each host's log is byte-exact.
 */
export async function checkInvariants(
  c: Cluster,
  jobs: AcknowledgedJob[],
  timeoutMs = 30_000,
): Promise<void> {
  for (const job of jobs) {
    const st = await waitJobFinished(c, job.jobId, timeoutMs);
    assert.equal(st.job_instance.status, job.status, `job ${job.jobId} final status`);
    for (const ip of job.hosts) await checkHostRan(c, job, ip);
  }
}

/** How many times the job's script started on `ip` (the lines of its marker file). */
export function markerRuns(c: Cluster, job: AcknowledgedJob, ip: string): number {
  return markerLines(c, `${job.tag}-${ip}`);
}

/** What a marker file holds ('' when there is no file). */
function markerText(c: Cluster, name: string): string {
  const marker = path.join(c.markers, name);
  return fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '';
}

/** The runs a marker file records (one line each; none when there is no file). */
export function markerLines(c: Cluster, name: string): number {
  return markerText(c, name).split('\n').filter(Boolean).length;
}

/**
 * When a rolling job's script started and ended on `ip` (ns since the epoch), from its markers;
 * undefined where it did not get that far.
 */
export function runStamps(c: Cluster, job: AcknowledgedJob, ip: string): { start?: bigint; end?: bigint } {
  const start = /^run (\d+)$/m.exec(markerText(c, `${job.tag}-${ip}`))?.[1];
  const end = markerText(c, `${job.tag}-${ip}.end`).trim();
  return {
    ...(start ? { start: BigInt(start) } : {}),
    ...(end ? { end: BigInt(end) } : {}),
  };
}

/** A host task that was killed or lost: it ran at most once, and its log is a prefix of the whole. */
export async function checkCutShort(c: Cluster, job: AcknowledgedJob, ip: string): Promise<void> {
  const runs = markerRuns(c, job, ip);
  assert.ok(runs <= 1, `job ${job.jobId} host ${ip} (cut short) ran ${runs} times`);
  const stored = await hostLog(c.via(liveServer(c)), job.jobId, job.stepId, c.hostIds.get(ip) ?? 0);
  assert.ok(job.log(ip).startsWith(stored ?? ''), `job ${job.jobId} log of ${ip} (cut short): not a prefix`);
}

/** The job's script ran exactly once on `ip`, and the host's stored log is byte-exact. */
export async function checkHostRan(c: Cluster, job: AcknowledgedJob, ip: string): Promise<void> {
  const runs = markerRuns(c, job, ip);
  assert.equal(runs, 1, `job ${job.jobId} host ${ip} ran ${runs} times`);
  assert.equal(
    await hostLog(c.via(liveServer(c)), job.jobId, job.stepId, c.hostIds.get(ip) ?? 0),
    job.log(ip),
    `job ${job.jobId} log of ${ip}`,
  );
}
