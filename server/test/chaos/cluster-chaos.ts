/**
 * `npm run chaos -- --minutes 10 --seed 42`: the long, randomized cluster run (outside
 * `npm test`). Three cluster servers and six agents (each given the list of all servers) on a
 * PostgreSQL of its own, a steady stream of script, file, plan, rolling and retried jobs submitted
 * to random servers (some script jobs terminated a moment later, through any server; some plan
 * jobs wait for a confirmation, and some rolling jobs between batches, continued through any
 * server; retried jobs fail once on one host and their step is retried through any server; half
 * the script and retried jobs carry a callback_url to a receiver that sometimes fails or holds a
 * POST), a cron due every few seconds, and every few seconds a fault
 * drawn from the seed: SIGKILL of a server, SIGSTOP of one (SIGCONT later), a restart of
 * PostgreSQL (immediate or fast), one server cut off from PostgreSQL or its database links
 * stalled (each server reaches the database through a relay), a network fault between agents and
 * servers (agents reach each server through a relay): one host's links reset, and its new ones
 * refused for up to 5 s; or every link of one server stalled for up to 8 s, nothing closed; or
 * SIGKILL of an agent, started again after a moment. A server that exits (killed, or declared
 * dead while paused) is started again after a moment, as a supervisor would. At the end every
 * fault is healed and the checker verifies every acknowledged job: its true final status, each
 * host task run exactly once, logs byte-exact, files delivered byte-exact, each due time of the
 * cron recorded once, each callback's final status received. A job one of whose agents was
 * killed while it ran may fail instead (see checkJob, checkFileJob, checkPlanJob,
 * checkRetryJob). The seed is printed; the same seed replays the same draws of faults and of
 * jobs (which server a fault hits is drawn among the servers up at that moment, and the timing
 * relative to the servers' work always differs). `--store sqlite` runs the same on one server on
 * SQLite (no PostgreSQL restarts; its only server is killed and paused too).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  agentFileRoots,
  checkCutShort,
  checkHostRan,
  checkInvariants,
  clusterScript,
  liveServer,
  serverErrors,
  startCluster,
  waitJobFinished,
} from '../helpers/cluster.js';
import type { AcknowledgedJob, Cluster } from '../helpers/cluster.js';
import { BIZ, hostIdsByIp, hostLog, hostStatuses, operateJob } from '../helpers/fleet.js';
import type { JobStatus } from '../helpers/fleet.js';
import { startAgent, stopAll } from '../helpers/processes.js';
import type { AgentProcess, ServerProcess } from '../helpers/processes.js';
import { startPrivatePostgres } from '../helpers/private-postgres.js';
import { freshDatabase } from '../helpers/databases.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { checkFileJob, submitFileJob } from './chaos-file-jobs.js';
import type { FileJob, KilledWhile } from './chaos-file-jobs.js';
import {
  checkCron,
  checkPlanJob,
  confirmWhenWaiting,
  preparePlans,
  startCron,
  stopCron,
  submitPlanJob,
} from './chaos-plan-jobs.js';
import type { PlanJob } from './chaos-plan-jobs.js';
import {
  ROLLING_EXPRESSIONS,
  checkRollingJob,
  continueBatches,
  submitRollingJob,
} from './chaos-rolling-jobs.js';
import type { RollingJob } from './chaos-rolling-jobs.js';
import { checkRetryJob, retryWhenFailed, submitRetryJob } from './chaos-retry-jobs.js';
import type { RetryJob } from './chaos-retry-jobs.js';
import { CALLBACK_ENV, checkCallbacks, startCallbackReceiver } from './chaos-callbacks.js';

/** mulberry32: a small seeded generator, enough to replay a schedule. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const FAULTS = ['kill', 'pause', 'pg', 'db', 'cut', 'stall', 'agent'] as const;
/** Faults that need PostgreSQL. */
const PG_FAULTS: readonly string[] = ['pg', 'db'];

/** Cluster timings of the run: short enough for many takeovers, wide enough for a loaded machine. */
const DEAD_AFTER_MS = 4000;
const ENV = {
  JOBFLEET_CLUSTER_HEARTBEAT_MS: '300',
  JOBFLEET_CLUSTER_DEAD_AFTER_MS: String(DEAD_AFTER_MS),
  JOBFLEET_CLUSTER_SELF_FENCE_MS: '2500',
  JOBFLEET_CLUSTER_AGENT_GRACE_MS: '60000',
  JOBFLEET_HEARTBEAT_INTERVAL_MS: '500',
  JOBFLEET_HEARTBEAT_TIMEOUT_MS: '30000',
  JOBFLEET_CRON_SECONDS_FIELD: 'true',
  JOBFLEET_CRON_TICK_MS: '200',
  ...CALLBACK_ENV,
};
/** How often the run's cron is due. */
const CRON_EVERY_S = 4;

/**
 * --minutes (faults are injected this long), --seed (random when omitted), --servers, --agents,
 * --store (postgres, or sqlite: one server on the embedded store, never a cluster).
 */
interface Options {
  minutes: string;
  seed?: string | undefined;
  servers: string;
  agents: string;
  store: string;
}

/** HH:MM:SS.mmm (UTC), as fault lines, job events and server log lines are shown. */
function timeOfDay(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** A fault's line, with the time of day: server logs and job events carry times too. */
function say(line: string): void {
  console.log(`chaos ${timeOfDay(Date.now())}: ${line}`);
}

/** A server's output, each line led by the server's name (S1, S2, ...). */
function labelledOutput(s: ServerProcess, i: number): string {
  return s.output().replace(/^/gm, `S${i + 1} `);
}

async function main(opts: Options): Promise<boolean> {
  const minutes = Number(opts.minutes);
  const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31);
  const sqlite = opts.store === 'sqlite';
  if (!sqlite && opts.store !== 'postgres') throw new Error(`--store: postgres or sqlite, not ${opts.store}`);
  const servers = sqlite ? 1 : Number(opts.servers);
  const agents = Number(opts.agents);
  // Faults and jobs draw from streams of their own, so that one does not shift the other.
  const faultDraw = seeded(seed);
  const jobDraw = seeded(seed ^ 0x5bd1e995);
  const pickWith = <T>(draw: () => number, xs: readonly T[]): T => xs[Math.floor(draw() * xs.length)] as T;
  const betweenWith = (draw: () => number, lo: number, hi: number) => lo + draw() * (hi - lo);
  console.log(`chaos: seed ${seed}, ${minutes} min, ${servers} server(s) on ${opts.store}, ${agents} agents`);

  const pg = sqlite ? undefined : await startPrivatePostgres();
  if (pg) process.env.JOBFLEET_TEST_PG_URL = pg.url;
  let c: Cluster | undefined;
  /** Set once faults are over: exits from then on are the run's own stops. */
  let ending = false;
  const counts = {
    acknowledged: 0,
    refused: 0,
    kill: 0,
    pause: 0,
    pgRestart: 0,
    dbCut: 0,
    dbStall: 0,
    cut: 0,
    stall: 0,
    agentKill: 0,
    restarts: 0,
    fileJobs: 0,
    planJobs: 0,
    /** Confirmations continued through a server (plan jobs with the confirmation step). */
    confirmed: 0,
    rollingJobs: 0,
    /** Batches of mode-3 rolling jobs continued through a server. */
    batchesContinued: 0,
    retryJobs: 0,
    /** Retries of failed steps the cluster accepted. */
    retried: 0,
    cronFired: 0,
    cronSkipped: 0,
    /** Terminate requests the cluster accepted. */
    terminated: 0,
    /** Host tasks that ended lost, their agent killed while they ran. */
    lostTasks: 0,
    /** Jobs with a callback_url, and the POSTs their callbacks made. */
    callbackJobs: 0,
    callbackPosts: 0,
    /** /metrics replies that came back whole during the faults. */
    scrapes: 0,
  };
  /** relays[n][k]: agent n's way to server k. */
  let relays: FaultProxy[][] = [];
  /** dbRelays[k]: server k's way to PostgreSQL. */
  let dbRelays: FaultProxy[] = [];
  const fleetIps = Array.from({ length: agents }, (_, n) => `127.0.0.${n + 2}`);
  const roots = agentFileRoots(fleetIps);
  const receiver = await startCallbackReceiver();
  try {
    // Agents are started here rather than by startCluster, with a start-up wait that suits a
    // loaded machine; each gets the list of every server, starting at a different one.
    const databaseUrl = pg ? await freshDatabase('postgres') : undefined;
    if (databaseUrl)
      dbRelays = await Promise.all(Array.from({ length: servers }, () => startFaultProxy(databaseUrl)));
    const relayed = (k: number) => {
      const u = new URL(databaseUrl ?? '');
      u.port = String(dbRelays[k]?.port);
      return u.toString();
    };
    c = await startCluster({
      servers,
      agents: 0,
      env: ENV,
      ...(databaseUrl ? { databaseUrl, databaseUrlOf: relayed } : { store: 'sqlite' as const }),
    });
    const first = c.servers[0] as ServerProcess;
    // A restarted server keeps its port, so each relay stays in front of the same server.
    const urls = c.servers.map((s) => s.url);
    relays = await Promise.all(
      Array.from({ length: agents }, () => Promise.all(urls.map((url) => startFaultProxy(url)))),
    );
    const fleet = await Promise.all(
      Array.from({ length: agents }, (_, n) => {
        const ip = fleetIps[n] ?? '';
        const urls = Array.from({ length: servers }, (_, k) => relays[n]?.[(n + k) % servers]?.url ?? '');
        return startAgent({
          server: { url: urls.join(','), bootstrapToken: first.bootstrapToken },
          ip,
          biz: BIZ,
          env: { TEST_AGENT_IP: ip, TEST_MARKERS: c?.markers ?? '', ...roots.agentEnv(n) },
          waitReady: false,
        });
      }),
    );
    for (const a of fleet) await a.waitReady(1, 120_000);
    for (const [ip, id] of await hostIdsByIp(first.url, first.adminToken)) c.hostIds.set(ip, id);
    const cluster = c;
    const ips = [...cluster.hostIds.keys()];
    const paused = new Set<ServerProcess>();
    const running = (s: ServerProcess) => s.proc.exitCode === null && s.proc.signalCode === null;
    const usable = () =>
      cluster.servers.map((s, i) => [s, i] as const).filter(([s]) => running(s) && !paused.has(s));
    const anyUsable = () => {
      const live = usable();
      return live.length > 0 ? pickWith(Math.random, live)[1] : undefined;
    };
    const plans = await preparePlans(cluster, 0, roots.file, ips);
    const cron = await startCron(cluster, 0, ips.slice(1, 3), CRON_EVERY_S);

    // The supervisor: a server that exits is started again (same port, data and database).
    // What the servers that exited logged is kept for the diagnosis of a broken job.
    const exited: string[] = [];
    const restarts: Promise<void>[] = [];
    const supervise = (i: number) => {
      const s = cluster.servers[i] as ServerProcess;
      s.proc.once('exit', (code, signal) => {
        exited.push(labelledOutput(s, i));
        if (ending) return;
        say(`S${i + 1} exited (${signal ?? `code ${code}`}); starting it again`);
        // Why it exited, when it says so (an error line or a crash trace).
        if (code !== 0 && code !== 3 && signal === null)
          for (const line of s.output().trim().split('\n').slice(-6))
            console.log(`  S${i + 1}: ${line.slice(0, 400)}`);
        restarts.push(
          (async () => {
            await sleep(500 + Math.random() * 2500);
            for (;;) {
              try {
                cluster.servers[i] = await s.restart();
                counts.restarts++;
                supervise(i);
                return;
              } catch (err) {
                console.log(
                  `chaos: restart of S${i + 1} failed, trying again: ${(err as Error).message.split('\n')[0]}`,
                );
                await sleep(2000);
              }
            }
          })(),
        );
      });
    };
    cluster.servers.forEach((_, i) => supervise(i));

    const jobs: SubmittedJob[] = [];
    /** When each host's agent was SIGKILLed: its tasks running then may end lost. */
    const agentKills = new Map<string, number[]>();
    // Less the time an agent takes to come back and report: a task sent just before the kill.
    const killedWhile: KilledWhile = (ip, from, to) =>
      (agentKills.get(ip) ?? []).some((k) => k >= from - 10_000 && k <= to);
    const fileJobs: FileJob[] = [];
    const planJobs: PlanJob[] = [];
    const rollingJobs: RollingJob[] = [];
    const retryJobs: RetryJob[] = [];
    /** Jobs given a callback_url (script and retried jobs, half of them). */
    const withCallback: number[] = [];
    const submissions: Promise<void>[] = [];
    const until = Date.now() + minutes * 60_000;
    const stream = (async () => {
      while (Date.now() < until) {
        const targets = ips.filter(() => jobDraw() < 0.6);
        if (targets.length === 0) targets.push(pickWith(jobDraw, ips));
        const failOn = jobDraw() < 0.1 ? pickWith(jobDraw, targets) : undefined;
        const live = usable();
        const kind = jobDraw();
        if (live.length > 0 && kind < 0.2) {
          // A file job: one agent's file, sometimes with an upload, to the other hosts drawn.
          const [, via] = pickWith(jobDraw, live);
          const source = pickWith(jobDraw, ips);
          const others = ips.filter((ip) => ip !== source);
          const to = targets.filter((ip) => ip !== source);
          if (to.length === 0) to.push(pickWith(jobDraw, others));
          const bytes = Math.round(betweenWith(jobDraw, 64 * 1024, 2 * 1024 * 1024));
          const upload = jobDraw() < 0.3;
          submissions.push(
            submitFileJob(cluster, via, roots.file, { source, targets: to, bytes, upload })
              .then((job) => {
                fileJobs.push(job);
                counts.fileJobs++;
              })
              .catch(() => void counts.refused++),
          );
        } else if (live.length > 0 && kind < 0.4) {
          // A plan job; some wait for a confirmation, which the run then gives through any server.
          const [, via] = pickWith(jobDraw, live);
          const confirm = jobDraw() < 0.5;
          const nap = betweenWith(jobDraw, 0.2, 1.5);
          submissions.push(
            submitPlanJob(cluster, via, plans, { hosts: targets, confirm, nap })
              .then(async (job) => {
                planJobs.push(job);
                counts.planJobs++;
                if (confirm && (await confirmWhenWaiting(cluster, job, anyUsable, until + 120_000)))
                  counts.confirmed++;
              })
              .catch(() => void counts.refused++),
          );
        } else if (live.length > 0 && kind < 0.5) {
          // A rolling job; in mode 3 the run continues each batch through any server.
          const [, via] = pickWith(jobDraw, live);
          const mode = pickWith(jobDraw, [1, 2, 3] as const);
          const expression = pickWith(jobDraw, ROLLING_EXPRESSIONS);
          const sleep = Number(betweenWith(jobDraw, 0.1, 1).toFixed(1));
          submissions.push(
            submitRollingJob(cluster, via, targets, {
              mode,
              expression,
              sleep,
              ...(failOn && mode !== 3 ? { failOn } : {}),
            })
              .then(async (job) => {
                rollingJobs.push(job);
                counts.rollingJobs++;
                if (mode === 3)
                  counts.batchesContinued += await continueBatches(cluster, job, anyUsable, until + 120_000);
              })
              .catch(() => void counts.refused++),
          );
        } else if (live.length > 0 && kind < 0.58) {
          // A job that fails once on one host; the run retries its step through any server.
          const [, via] = pickWith(jobDraw, live);
          const failOnce = pickWith(jobDraw, targets);
          const operation = jobDraw() < 0.5 ? 2 : 8;
          const sleep = Number(betweenWith(jobDraw, 0.2, 1.5).toFixed(1));
          const callback = jobDraw() < 0.5 ? { callbackUrl: receiver.url } : {};
          submissions.push(
            submitRetryJob(cluster, via, targets, { failOnce, operation, sleep, ...callback })
              .then(async (job) => {
                if (callback.callbackUrl) withCallback.push(job.jobId);
                retryJobs.push(job);
                counts.retryJobs++;
                await retryWhenFailed(cluster, job, anyUsable, until + 120_000);
                counts.retried += job.accepted;
              })
              .catch(() => void counts.refused++),
          );
        } else if (live.length > 0) {
          const [, via] = pickWith(jobDraw, live);
          const submittedAt = Date.now();
          // Some jobs are terminated a moment after they are accepted, through any server.
          const stopAfter = jobDraw() < 0.15 ? betweenWith(jobDraw, 100, 2500) : undefined;
          const callback = jobDraw() < 0.5 ? { callbackUrl: receiver.url } : {};
          submissions.push(
            clusterScript(cluster, via, targets, {
              sleep: Number(betweenWith(jobDraw, 0.2, 2).toFixed(1)),
              ...(failOn ? { failOn } : {}),
              ...callback,
            })
              .then(async (acknowledged) => {
                if (callback.callbackUrl) withCallback.push(acknowledged.jobId);
                const job: SubmittedJob = { ...acknowledged, submittedAt };
                jobs.push(job);
                counts.acknowledged++;
                if (stopAfter === undefined) return;
                await sleep(stopAfter);
                job.terminate = await terminate(cluster, usable(), job.jobId);
                counts.terminated += job.terminate === 'accepted' ? 1 : 0;
              })
              .catch(() => void counts.refused++),
          );
        }
        await sleep(betweenWith(jobDraw, 500, 1500));
      }
    })();

    const nemesis = (async () => {
      while (Date.now() < until) {
        await sleep(betweenWith(faultDraw, 5000, 15_000));
        if (Date.now() >= until) break;
        const live = usable();
        const fault = pickWith(
          faultDraw,
          FAULTS.filter((f) => pg || !PG_FAULTS.includes(f)),
        );
        if (fault === 'agent') {
          const n = Math.floor(faultDraw() * fleet.length);
          const agent = fleet[n] as AgentProcess;
          const downMs = betweenWith(faultDraw, 200, 3000);
          say(`SIGKILL agent ${agent.ip}, started again after ${(downMs / 1000).toFixed(1)} s`);
          counts.agentKill++;
          agentKills.set(agent.ip, [...(agentKills.get(agent.ip) ?? []), Date.now()]);
          await agent.kill('SIGKILL');
          await sleep(downMs);
          fleet[n] = await agent.restart();
          continue;
        }
        if (fault === 'cut') {
          const n = Math.floor(faultDraw() * agents);
          const refuseMs = Math.round(betweenWith(faultDraw, 0, 5000));
          const reset = (relays[n] ?? []).reduce((sum, r) => sum + r.cut(refuseMs), 0);
          say(
            `cut ${fleet[n]?.ip}: ${reset} link(s) reset, new ones refused for ${(refuseMs / 1000).toFixed(1)} s`,
          );
          counts.cut++;
          continue;
        }
        if (fault === 'stall') {
          const k = Math.floor(faultDraw() * servers);
          const ms = betweenWith(faultDraw, 500, 8000);
          say(`stall S${k + 1}'s agent links for ${(ms / 1000).toFixed(1)} s`);
          counts.stall++;
          await Promise.all(relays.map((r) => r[k]?.stall(ms)));
          continue;
        }
        if (fault === 'pg') {
          const mode = pickWith(faultDraw, ['immediate', 'fast'] as const);
          say(`restarting PostgreSQL (${mode})`);
          counts.pgRestart++;
          pg?.restart(mode);
          continue;
        }
        // Never take a cluster's last usable server: jobs must still be accepted somewhere. The
        // single server on SQLite is taken: submissions are refused until it is back.
        if (live.length < (sqlite ? 1 : 2)) continue;
        const [victim, i] = pickWith(faultDraw, live);
        if (fault === 'db') {
          // One server cut off from the database, or its queries stalled, while its agents stay.
          const relay = dbRelays[i];
          const ms = betweenWith(faultDraw, 1000, 2.5 * DEAD_AFTER_MS);
          if (faultDraw() < 0.5) {
            const reset = relay?.cut(ms) ?? 0;
            say(`S${i + 1} cut off from PostgreSQL for ${(ms / 1000).toFixed(1)} s (${reset} link(s) reset)`);
            counts.dbCut++;
          } else {
            say(`S${i + 1}'s PostgreSQL links stalled for ${(ms / 1000).toFixed(1)} s`);
            counts.dbStall++;
            await relay?.stall(ms);
          }
        } else if (fault === 'kill') {
          say(`SIGKILL S${i + 1}`);
          counts.kill++;
          victim.proc.kill('SIGKILL');
        } else {
          const ms = betweenWith(faultDraw, 1000, 2.5 * DEAD_AFTER_MS);
          say(`SIGSTOP S${i + 1} for ${(ms / 1000).toFixed(1)} s`);
          counts.pause++;
          paused.add(victim);
          victim.proc.kill('SIGSTOP');
          await sleep(ms);
          victim.proc.kill('SIGCONT');
          paused.delete(victim);
        }
      }
    })();

    // /metrics is scraped throughout, as Prometheus would (a reader of the whole store, on a
    // thread of its own on SQLite): at the end every server's counts must be up and true.
    const scraper = (async () => {
      while (Date.now() < until) {
        await sleep(2000);
        const live = usable();
        if (live.length === 0) continue;
        const [s] = pickWith(Math.random, live);
        const text = await fetch(`${s.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
          .then((r) => (r.ok ? r.text() : ''))
          .catch(() => '');
        if (text.includes('jobfleet_store_up')) counts.scrapes++;
      }
    })();

    await Promise.all([stream, nemesis, scraper]);
    console.log('chaos: faults over; waiting for submissions, restarts and every job');
    await Promise.all(submissions);
    await sleep(2 * DEAD_AFTER_MS);
    await Promise.all(restarts);
    await stopCron(cluster, cron, anyUsable);
    ending = true;
    const started = Date.now();
    // A job that did not end as it should gets its events and what servers logged of its steps.
    const whatHappened = async (jobId: number) => {
      const steps = await cluster
        .db<{ id: string }>('select id from step_instance where job_instance_id = $1', [jobId])
        .catch(() => []);
      return (
        (await eventTrail(cluster, jobId)) +
        (await coordination(cluster, jobId)) +
        serverLinesAbout([...exited, ...cluster.servers.map(labelledOutput)], {
          jobId,
          stepIds: steps.map((x) => Number(x.id)),
        })
      );
    };
    // Every job is checked, so that one failure does not hide others; the first few are shown.
    const failures: string[] = [];
    /** A job that broke an invariant: `what` names it; `expected` is the final status it should have. */
    const broke = async (what: string, jobId: number, expected: number, err: unknown, detail = '') => {
      const { st, line } = await finalState(cluster, jobId);
      const why = st?.job_instance.status === expected ? '' : await whatHappened(jobId);
      failures.push(`${what}: ${(err as Error).message.split('\n')[0]}; ${line}${detail}${why}`);
    };
    for (const job of jobs) {
      try {
        counts.lostTasks += await checkJob(cluster, job, killedWhile);
      } catch (err) {
        const failing = job.status === 4 ? ', one host fails on purpose' : '';
        const what = `job ${job.jobId} (${job.hosts.join(' ')}${failing})`;
        await broke(what, job.jobId, job.status, err, await logDiagnosis(cluster, job));
      }
    }
    for (const job of fileJobs) {
      try {
        await checkFileJob(cluster, job, roots.file, killedWhile);
      } catch (err) {
        const what = `file job ${job.jobId} (${job.source} -> ${job.targets.join(' ')}, ${job.files.length} file(s))`;
        await broke(what, job.jobId, 3, err);
      }
    }
    for (const job of planJobs) {
      try {
        await checkPlanJob(cluster, job, plans, roots.file, killedWhile);
      } catch (err) {
        await broke(
          `plan job ${job.jobId} (${job.hosts.join(' ')}${job.confirm ? ', confirmed' : ''})`,
          job.jobId,
          3,
          err,
        );
      }
    }
    for (const job of rollingJobs) {
      try {
        counts.lostTasks += await checkRollingJob(cluster, job, killedWhile);
      } catch (err) {
        const failing = job.failOn ? `, ${job.failOn} fails` : '';
        const what = `rolling job ${job.jobId} (mode ${job.mode}, ${job.hosts.join(' ')}${failing})`;
        await broke(what, job.jobId, job.status, err, await logDiagnosis(cluster, job));
      }
    }
    for (const job of retryJobs) {
      try {
        counts.lostTasks += await checkRetryJob(cluster, job, killedWhile);
      } catch (err) {
        const what = `retried job ${job.jobId} (${job.hosts.join(' ')}, ${job.failOnce} fails once, retry ${job.operation}, ${job.accepted}/${job.sent} retries accepted)`;
        await broke(what, job.jobId, 3, err, await logDiagnosis(cluster, job));
      }
    }
    for (const line of await checkCallbacks(cluster, withCallback, receiver)) {
      const jobId = Number(/^job (\d+)/.exec(line)?.[1]);
      failures.push(`callback of ${line}${await whatHappened(jobId)}`);
    }
    counts.callbackJobs = withCallback.length;
    counts.callbackPosts = receiver.posts;
    try {
      const { fired, skipped } = await checkCron(cluster, cron, killedWhile);
      counts.cronFired = fired;
      counts.cronSkipped = skipped;
    } catch (err) {
      failures.push(`cron ${cron.id}: ${(err as Error).message.split('\n')[0]}`);
    }
    const [stored] = await cluster.db<{ n: number | string }>('select count(*) as n from job_instance');
    for (const [i, s] of cluster.servers.entries()) {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      const up = /^jobfleet_store_up (\d+)$/m.exec(text)?.[1];
      const counted = [...text.matchAll(/^jobfleet_jobs\{status="\d+"\} (\d+)$/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
      if (up !== '1' || counted !== Number(stored?.n))
        failures.push(
          `/metrics of S${i + 1}: store up ${up}, ${counted} jobs counted of ${stored?.n} stored`,
        );
    }
    if (failures.length > 0)
      throw new Error(
        `${failures.length} of ${jobs.length + fileJobs.length + planJobs.length + rollingJobs.length + retryJobs.length} jobs and the cron broke an invariant:\n  ${failures.slice(0, 10).join('\n  ')}\n${serverErrors(cluster)}`,
      );
    console.log(
      `chaos: checker OK: seed ${seed}, ${minutes} min, ${JSON.stringify(counts)}, final checks took ${Math.round(
        (Date.now() - started) / 1000,
      )} s`,
    );
    return true;
  } catch (err) {
    console.log(`chaos: checker FAILED (seed ${seed}): ${(err as Error).stack ?? String(err)}`);
    console.log(`chaos: ${JSON.stringify(counts)}`);
    return false;
  } finally {
    ending = true;
    await stopAll();
    await Promise.all([...relays.flat(), ...dbRelays].map((r) => r.close()));
    roots.remove();
    await receiver.close();
    await c?.close().catch(() => undefined);
    pg?.stop();
  }
}

/** An acknowledged job, with when it was submitted (to tell which agent kills could touch it). */
interface SubmittedJob extends AcknowledgedJob {
  submittedAt: number;
  /** What became of a terminate sent for it: unknown when no answer came. */
  terminate?: 'accepted' | 'refused' | 'unknown';
}

/** operate_job_instance 1 through one of the usable servers. */
async function terminate(
  c: Cluster,
  usable: readonly (readonly [ServerProcess, number])[],
  jobId: number,
): Promise<SubmittedJob['terminate']> {
  const [, i] = usable[Math.floor(Math.random() * usable.length)] ?? [undefined, -1];
  if (i < 0) return 'unknown';
  const r = await operateJob(c.via(i), jobId, 1).catch(() => undefined);
  if (r?.result) return 'accepted';
  // 1241003: the job had already finished; any other refusal (a fenced server, say) decided nothing.
  return r?.code === 1241003 ? 'refused' : 'unknown';
}

/**
 * The checker's invariants for one job, where a host whose agent was killed between the job's
 * submission (less the time an agent takes to come back and report) and its end may have lost
 * its task: such a host ends agent abnormal (310) having run at most once, with a prefix of its
 * log, and fails the job; or it ran to its end as any other host. No other host may end 310.
 * Returns the job's lost host tasks.
 */
async function checkJob(c: Cluster, job: SubmittedJob, killedWhile: KilledWhile): Promise<number> {
  const st = await waitJobFinished(c, job.jobId, 120_000);
  const end = Number(st.job_instance.end_time ?? Date.now());
  const exposed = job.hosts.filter((ip) => killedWhile(ip, job.submittedAt, end));
  const statusOf = hostStatuses(st);
  const lost = job.hosts.filter((ip) => statusOf.get(c.hostIds.get(ip) ?? 0) === 310);
  if (job.terminate === 'accepted' || (job.terminate === 'unknown' && st.job_instance.status === 11)) {
    // Terminated: the job ends 11 whatever its hosts did. A host finished before the kill came
    // has its whole log; a killed one (403) ran at most once and has a prefix of it.
    assert.equal(st.job_instance.status, 11, `job ${job.jobId} final status after its terminate`);
    for (const ip of job.hosts) {
      const status = statusOf.get(c.hostIds.get(ip) ?? 0);
      if (status === 9 || status === 104) await checkHostRan(c, job, ip);
      else if (status === 403 || (status === 310 && exposed.includes(ip))) await checkCutShort(c, job, ip);
      else assert.fail(`job ${job.jobId} host ${ip} ended ${status} after a terminate`);
    }
    return lost.length;
  }
  if (lost.length === 0) {
    await checkInvariants(c, [job], 120_000);
    return 0;
  }
  assert.equal(st.job_instance.status, 4, `job ${job.jobId} final status with a lost host`);
  for (const ip of job.hosts) {
    if (!lost.includes(ip)) {
      await checkHostRan(c, job, ip);
      continue;
    }
    assert.ok(exposed.includes(ip), `job ${job.jobId} host ${ip} ended lost; its agent was not killed then`);
    await checkCutShort(c, job, ip);
  }
  return lost.length;
}

/** A job's final status as a poll sees it, and a line of it and its hosts' for a report. */
async function finalState(c: Cluster, jobId: number): Promise<{ st: JobStatus | undefined; line: string }> {
  const st = await waitJobFinished(c, jobId, 5000).catch(() => undefined);
  const hosts = st?.step_instance_list.flatMap((x) => x.step_ip_result_list ?? []) ?? [];
  const each = hosts.map((h) => ({ host: h.bk_host_id, status: h.status, exit: h.exit_code }));
  return { st, line: `job status ${st?.job_instance.status ?? 'unfinished'}; hosts ${JSON.stringify(each)}` };
}

/**
 * The job's stored events, in order, when its final status is wrong: which host moves and step
 * or job ends were recorded, and when, is what tells a lost race from a wrong decision.
 */
async function eventTrail(c: Cluster, jobId: number): Promise<string> {
  const rows = await c
    .db<{ at: string; kind: string; data: string }>(
      "select at, kind, data from job_event where job_instance_id = $1 and kind <> 'log' order by id",
      [jobId],
    )
    .catch(() => []);
  return rows.map((r) => `\n    ${timeOfDay(Number(r.at))} ${r.kind} ${r.data}`).join('');
}

/**
 * Cluster mode: the rows servers coordinate a job through, for a job that did not end as it
 * should: its owner, the messages for its hosts still in the outbox, and its hosts' sessions.
 */
async function coordination(c: Cluster, jobId: number): Promise<string> {
  if (!c.databaseUrl) return '';
  const rows = async (what: string, text: string) =>
    `\n    ${what}: ${JSON.stringify(await c.db(text, [jobId]).catch((err: unknown) => String(err)))}`;
  return (
    (await rows(
      'owner',
      'select j.owner_id, n.state, j.status from job_instance j left join server_node n on n.id = j.owner_id where j.id = $1',
    )) +
    (await rows(
      'outbox',
      'select c.host_id, c.type, c.sent_epoch from agent_command c join step_instance s on s.id = c.step_instance_id where s.job_instance_id = $1',
    )) +
    (await rows(
      'sessions',
      'select distinct a.host_id, a.server_id, a.epoch, a.state from agent_session a join host_task t on t.host_id = a.host_id join step_instance s on s.id = t.step_instance_id where s.job_instance_id = $1',
    ))
  );
}

/** What any server (those that exited included) logged about the job or its steps, in time order. */
function serverLinesAbout(outputs: readonly string[], job: { jobId: number; stepIds: number[] }): string {
  const mark = [
    ...job.stepIds.flatMap((id) => [`"step":${id},`, `"step":${id}}`, `"${id}:`]),
    `"job":${job.jobId},`,
    `"job":${job.jobId}}`,
  ];
  const lines = outputs
    .flatMap((o) => o.split('\n'))
    .filter((l) => mark.some((m) => l.includes(m)))
    .map((l) => ({ at: Number(/"time":(\d+)/.exec(l)?.[1] ?? 0), l }))
    .sort((a, b) => a.at - b.at);
  return lines.map(({ at, l }) => `\n    ${timeOfDay(at)} ${l.slice(0, 600)}`).join('');
}

/** For each host whose log differs: what was expected, what is stored, and the stored chunks. */
async function logDiagnosis(c: Cluster, job: AcknowledgedJob): Promise<string> {
  const out: string[] = [];
  for (const ip of job.hosts) {
    const id = c.hostIds.get(ip) ?? 0;
    const stored = await hostLog(c.via(liveServer(c)), job.jobId, job.stepId, id).catch(() => null);
    if (stored === job.log(ip)) continue;
    const chunks = await c
      .db<{ offset: string; length: number }>(
        'select "offset", length(data) as length from log_chunk where step_instance_id = $1 and host_id = $2 order by "offset"',
        [job.stepId, id],
      )
      .catch(() => []);
    const rows = await c
      .db<{ log_bytes: number; status: number }>(
        'select log_bytes, status from host_task where step_instance_id = $1 and host_id = $2',
        [job.stepId, id],
      )
      .catch(() => []);
    out.push(
      `\n    ${ip}: expected ${JSON.stringify(job.log(ip))}\n    ${ip}: stored   ${JSON.stringify(stored)}\n    ${ip}: chunks ${JSON.stringify(chunks.map((r) => [Number(r.offset), r.length]))} task ${JSON.stringify(rows)}`,
    );
  }
  return out.join('');
}

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    servers: { type: 'string', default: '3' },
    agents: { type: 'string', default: '6' },
    store: { type: 'string', default: 'postgres' },
  },
});
// Every directory the run makes (servers' data, agents' state, PostgreSQL's) goes under one of its
// own, as `npm test`'s do (scripts/run-tests.mjs): removed when the checker passed, kept to look
// into when it failed. Open to every account (sticky): agents run scripts as other accounts.
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-chaos-'));
fs.chmodSync(runDir, 0o1777);
process.env.TMPDIR = runDir;
const passed = await main(values as Options);
if (passed) fs.rmSync(runDir, { recursive: true, force: true, maxRetries: 3 });
else console.log(`chaos: the run's files are kept in ${runDir}`);
process.exit(passed ? 0 : 1);
