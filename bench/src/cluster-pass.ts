/**
 * P9: one server against a cluster of three on one PostgreSQL database (cluster mode), all on
 * this machine. The same simulated fleet (every agent given the list of all servers, so it
 * lands on a random one) runs
 *  - P9.fanout: one `echo` job on every host, submitted to the first server (the job's owner
 *    dispatches through the outbox to hosts held by the others), seconds until finished;
 *  - P9.jps: a steady stream of one-host `echo` jobs submitted round-robin to every server by
 *    `JPS_CLIENTS` concurrent clients for `JPS_SECONDS`: finished jobs per second;
 *  - P9.roll (three servers only, after the others): the servers restarted one by one
 *    (rolling-restart.ts), seconds from each SIGTERM until every agent is connected again.
 * The 3-server figures have the 1-server ones as their baseline (ratio = 3 servers / 1 server).
 * On one machine three servers share its cores, so this measures the cost of coordination
 * more than the capacity of more machines.
 */
import { BkApi, waitForSuccess } from './bk-api.js';
import { fanOut } from './fan-out.js';
import { createDatabase, dropDatabase } from './postgres-database.js';
import { newSecrets, startFleet } from './processes.js';
import type { ServerHandle } from './processes.js';
import { unmeasured } from './results.js';
import { rollingRestart } from './rolling-restart.js';
import type { Restart } from './rolling-restart.js';
import { startCluster } from './server-cluster.js';
import type { Figure } from './results.js';
import { summarize } from './stats.js';

const JPS_SECONDS = 10;
const JPS_CLIENTS = 16;

export interface ClusterPassOptions {
  pgUrl: string | undefined;
  tmp: string;
  account: string;
  hosts: number;
  runs: number;
  log(line: string): void;
  fail(what: string, err: unknown): string;
}

interface Measured {
  fanOut: number[];
  jps: number[];
  restarts: Restart[];
  /** Agents on each server after each rolling restart. */
  spreads: number[][];
}

async function measure(opts: ClusterPassOptions, pgUrl: string, servers: number): Promise<Measured> {
  const databaseUrl = await createDatabase(pgUrl);
  const secrets = newSecrets();
  try {
    const cluster = await startCluster({
      count: servers,
      secrets,
      databaseUrl,
      tmpRoot: opts.tmp,
      args: ['--heartbeat-timeout-ms', '180000'],
    });
    try {
      return await measureOn(opts, cluster.servers);
    } finally {
      await cluster.stop();
    }
  } finally {
    await dropDatabase(pgUrl, databaseUrl);
  }
}

async function measureOn(opts: ClusterPassOptions, started: ServerHandle[]): Promise<Measured> {
  const servers = started.length;
  const apis = started.map((s) => new BkApi(s.url, s.secrets));
  const first = apis[0] as BkApi;
  await first.prepareBusiness(opts.account);
  // The simulator's agents take the comma-separated list like `jobfleet agent --server`.
  const listed = { ...(started[0] as ServerHandle), url: started.map((s) => s.url).join(',') };
  opts.log(`P9 ${servers} server(s): starting ${opts.hosts} simulated agents…`);
  const fleet = await startFleet({
    server: listed,
    agents: opts.hosts,
    executor: 'process',
    shards: 8,
    tmpRoot: opts.tmp,
  });
  try {
    const out: Measured = { fanOut: [], jps: [], restarts: [], spreads: [] };
    for (let r = 0; r < opts.runs; r++) {
      const run = await fanOut(first, fleet.hostIds, opts.account);
      out.fanOut.push(run.totalSeconds);
      let done = 0;
      let next = 0;
      const until = performance.now() + JPS_SECONDS * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: JPS_CLIENTS }, async () => {
          while (performance.now() < until) {
            const k = next++;
            const api = apis[k % apis.length] as BkApi;
            const host = fleet.hostIds[k % fleet.hostIds.length] as number;
            const job = await api.fastExecuteScript([host], 'echo hello', opts.account);
            await waitForSuccess(api, job.job_instance_id, 1, { timeoutMs: 60_000, pollMs: 20 });
            done++;
          }
        }),
      );
      out.jps.push(done / ((performance.now() - t0) / 1000));
      opts.log(
        `P9 ${servers} server(s): ${opts.hosts}-host fan-out ${run.totalSeconds.toFixed(2)} s, ${out.jps.at(-1)?.toFixed(1)} jobs/s`,
      );
    }
    // After the other figures: a roll leaves the fleet unevenly spread until its agents go back
    // to the servers they started at (about a minute later), which would slow their fan-outs.
    for (let r = 0; servers > 1 && r < opts.runs; r++) {
      const roll = await rollingRestart(started, fleet.hostIds, opts.account, 120_000);
      out.restarts.push(...roll.restarts);
      out.spreads.push(roll.spread);
      opts.log(
        `P9 rolling restart of ${servers} servers: every agent back ${roll.restarts.map((x) => x.backSeconds.toFixed(2)).join(', ')} s after each SIGTERM; jobs finished ${roll.restarts.map((x) => x.jobSeconds.toFixed(2)).join(', ')} s; agents per server after it ${roll.spread.join(', ')}`,
      );
    }
    return out;
  } finally {
    await fleet.stop();
  }
}

export async function clusterFigures(opts: ClusterPassOptions): Promise<Figure[]> {
  const base = (id: string, servers: number, unit: string) => ({
    id,
    params: { servers, hosts: opts.hosts, store: 'postgres' },
    unit,
    target: null,
    executor: 'process' as const,
  });
  const unmeasuredAll = (note: string): Figure[] => [
    ...[1, 3].flatMap((n) => [
      unmeasured(base('P9.fanout', n, 's'), note),
      unmeasured(base('P9.jps', n, 'jobs/s'), note),
    ]),
    unmeasured(base('P9.roll', 3, 's'), note),
  ];
  if (!opts.pgUrl) return unmeasuredAll('needs PostgreSQL (--pg-url)');
  let one: Measured;
  let three: Measured;
  try {
    one = await measure(opts, opts.pgUrl, 1);
    three = await measure(opts, opts.pgUrl, 3);
  } catch (err) {
    return unmeasuredAll(opts.fail('P9', err));
  }
  const figure = (
    id: string,
    unit: string,
    n: number,
    values: number[],
    baseline: number | null,
    note: string,
  ) => {
    const s = summarize(values);
    return {
      ...base(id, n, unit),
      value: s.median,
      baseline,
      ratio: baseline === null ? null : s.median / baseline,
      met: null,
      min: s.min,
      max: s.max,
      note,
    };
  };
  const fanOne = summarize(one.fanOut).median;
  const jpsOne = summarize(one.jps).median;
  const fanNote = `one echo job on ${opts.hosts} simulated hosts submitted to the first server, until seen finished`;
  const jpsNote = `one-host echo jobs, ${JPS_CLIENTS} clients round-robin over the servers for ${JPS_SECONDS} s, submit until seen finished`;
  return [
    figure('P9.fanout', 's', 1, one.fanOut, null, `${fanNote}; cluster mode, 1 server`),
    figure(
      'P9.fanout',
      's',
      3,
      three.fanOut,
      fanOne,
      `${fanNote}, hosts spread over 3 servers; baseline: 1 server`,
    ),
    figure('P9.jps', 'jobs/s', 1, one.jps, null, `${jpsNote}; cluster mode, 1 server`),
    figure('P9.jps', 'jobs/s', 3, three.jps, jpsOne, `${jpsNote}; baseline: 1 server`),
    figure(
      'P9.roll',
      's',
      3,
      three.restarts.map((r) => r.backSeconds),
      null,
      `the 3 servers restarted one by one (SIGTERM, started again on the same port at once, the next once the fleet was whole): from each SIGTERM until all ${opts.hosts} agents were connected again, to any server; ` +
        `a job on every host submitted to the next server at each SIGTERM finished after ${three.restarts.map((r) => r.jobSeconds.toFixed(2)).join(', ')} s; ` +
        `agents per server after each roll: ${three.spreads.map((s) => s.join('/')).join(', ')} (they go back to the servers they started at about a minute later)`,
    ),
  ];
}
