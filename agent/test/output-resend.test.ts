/**
 * The resend after a reconnect against a real `jobfleet serve` process, with an agent in this
 * process (so that its connection can be watched) whose link runs through a relay the test cuts
 * and heals: tasks print tens of MiB while the agent is away, and the resend must bring every
 * byte to the server in order without queueing it all on the socket at once; a task printing
 * across the reconnect must not get a gap or a duplicate; a cut in the middle of a resend must
 * stop it, and the next connection's resend must finish the job.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../src/agent.js';
import { RESEND_HIGH_WATER } from '../src/output-resend.js';
import type { TaskReports } from '../src/task-runner-api.js';
import { TaskRunner } from '../src/task-runner.js';
import type * as ApiClient from '../../server/dist/test/helpers/api-client.js';
import type * as FaultProxies from '../../server/dist/test/helpers/fault-proxy.js';
import type * as Fleets from '../../server/dist/test/helpers/fleet.js';
import { tempStateDir } from './helpers/os-state.js';

// The server's test helpers are compiled with the server's tests; this file runs from
// agent/dist/test, so their paths are resolved from the repository root at run time.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const load = async <T>(rel: string): Promise<T> =>
  (await import(pathToFileURL(path.join(repoRoot, 'server/dist/test/helpers', rel)).href)) as T;
const fleets = await load<typeof Fleets>('fleet.js');
const proxies = await load<typeof FaultProxies>('fault-proxy.js');
const api = await load<typeof ApiClient>('api-client.js');

const MiB = 1024 * 1024;
/** The runner's largest output frame (task-runner.ts). */
const FRAME_BYTES = MiB;
/** Lines of a big task: 13 bytes each, 13 MB a task. */
const BIG_LINES = 1_000_000;
const SUCCESS = 9;

/** What `seq -f '<prefix>-%09.0f' from to` prints. */
function seqText(prefix: string, from: number, to: number): string {
  const parts: string[] = [];
  for (let i = from; i <= to; i++) parts.push(`${prefix}-${String(i).padStart(9, '0')}\n`);
  return parts.join('');
}

/** Equality of long texts, saying where they part instead of printing both. */
function assertSameText(actual: string | null, expected: string, what: string): void {
  const a = actual ?? '';
  if (a === expected) return;
  let i = 0;
  while (i < a.length && a[i] === expected[i]) i++;
  assert.fail(
    `${what}: ${a.length} chars, expected ${expected.length}; first difference at ${i}: ` +
      `${JSON.stringify(a.slice(i, i + 40))} instead of ${JSON.stringify(expected.slice(i, i + 40))}`,
  );
}

/**
 * Watches what the runner hands the agent's connection: the most the socket had queued right
 * after an output frame was handed to it, and whether each connection got every task's output
 * contiguous (no gap, no byte twice).
 */
class Watch {
  agent: Agent | undefined;
  maxBacklog = 0;
  readonly problems: string[] = [];
  /** Connections that got a welcome. */
  connections = 0;
  /** Output bytes the runner reported per connection (index: connection number - 1). */
  readonly bytesPer: number[] = [];
  /** Output bytes the runner reported while the agent had no connection to send them on. */
  awayBytes = 0;
  onOutput: (() => void) | undefined;
  private next = new Map<string, number>();

  wrap(reports: TaskReports): TaskReports {
    return {
      ...reports,
      output: (key, offset, data) => {
        reports.output(key, offset, data);
        if (this.agent?.state !== 'ready') {
          this.awayBytes += data.length;
          return;
        }
        this.maxBacklog = Math.max(this.maxBacklog, reports.backlog?.() ?? 0);
        const next = this.next.get(key);
        if (next !== undefined && offset !== next)
          this.problems.push(
            `connection ${this.connections}, ${key}: output at ${offset}, expected ${next} (${offset > next ? 'a gap' : 'a duplicate'})`,
          );
        this.next.set(key, offset + data.length);
        this.bytesPer[this.connections - 1] = (this.bytesPer[this.connections - 1] ?? 0) + data.length;
        this.onOutput?.();
      },
    };
  }

  /** A welcome: the server says from where it wants each task's output. */
  welcomed(): void {
    this.connections++;
    this.next = new Map();
  }
}

describe('resend after a reconnect, against a real server', () => {
  let fleet: Fleets.Fleet;
  const dirs: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    fleet = await fleets.startFleet('sqlite', 0, {
      args: ['--log-cap-bytes', String(64 * MiB)],
      // The agent is away for as long as its tasks take to print; the host must not be failed meanwhile.
      env: { JOBFLEET_HEARTBEAT_TIMEOUT_MS: '300000' },
    });
  });

  after(async () => {
    for (const c of cleanups.splice(0)) await c();
    await fleets.stopFleets();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** An agent of this process connected to the server through a relay; ready when this resolves. */
  async function connectedAgent(ip: string) {
    const proxy = await proxies.startFaultProxy(fleet.server.url);
    const stateDir = tempStateDir();
    const files = tempStateDir();
    dirs.push(stateDir, files);
    const watch = new Watch();
    const agent = new Agent({
      serverUrl: proxy.url,
      bootstrapToken: fleet.server.bootstrapToken,
      host: { ip, ipv6: '', cloudId: 0, hostname: `resend-${ip}`, osType: 'linux' },
      bizId: fleets.BIZ,
      stateDir,
      backoffBaseMs: 50,
      backoffCapMs: 200,
      createRunner: (reports) => new TaskRunner(stateDir, watch.wrap(reports)),
    });
    watch.agent = agent;
    agent.on('state', (s: string) => {
      if (s === 'ready') watch.welcomed();
    });
    cleanups.push(async () => {
      await agent.stop();
      await proxy.close();
    });
    agent.start();
    await agent.waitFor('ready', 30_000);
    const hostId = (await fleets.hostIdsByIp(fleet.server.url, fleet.server.adminToken)).get(ip);
    assert.ok(hostId, 'the agent registered in the test business');
    const file = (name: string) => path.join(files, name);
    const run = async (script: string) => {
      const r = await fleets.runScript(fleet, {
        script_content: fleets.b64(script),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      return { jobId: r.data.job_instance_id, stepId: r.data.step_instance_id };
    };
    /** A task that waits for the file `go`, then prints BIG_LINES lines and exits. */
    const runBig = (prefix: string) =>
      run(`while [ ! -e '${file('go')}' ]; do sleep 0.05; done\nseq -f '${prefix}-%09.0f' 1 ${BIG_LINES}\n`);
    const held = () => agent.runner.held();
    /** Until every task the agent holds is finished with its whole output spooled. */
    const allPrinted = (tasks: number, bytes: number) =>
      api.eventually(
        async () => {
          const h = held();
          return h.length === tasks && h.every((t) => t.finished && t.outputBytes === bytes)
            ? true
            : undefined;
        },
        120_000,
        `${tasks} tasks printed ${bytes} bytes each`,
      );
    const finishedOk = async (job: { jobId: number }) => {
      const st = await fleets.waitFinished(fleet, job.jobId, 180_000);
      assert.equal(fleets.hostStatuses(st).get(hostId), SUCCESS);
    };
    const log = (job: { jobId: number; stepId: number }) =>
      fleets.hostLog(fleet, job.jobId, job.stepId, hostId);
    const storedBytes = async (job: { jobId: number; stepId: number }) => {
      const r = await api.get<{ log_total_bytes: number }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: job.jobId,
          step_instance_id: job.stepId,
          bk_host_id: hostId,
          log_offset: 0,
          log_length: 4,
        },
        fleet.creds,
      );
      return r.result ? r.data.log_total_bytes : 0;
    };
    /** Cuts the agent's link and keeps it down until `proxy.heal()`. */
    const partition = async () => {
      proxy.cut(Infinity);
      await agent.waitFor('backoff', 30_000);
    };
    /**
     * Big tasks (one per prefix) started, then left to print all of their output while the
     * agent is cut off; the link stays down. Their jobs, and the bytes each printed.
     */
    const printedWhileAway = async (prefixes: readonly string[]) => {
      const jobs = await Promise.all(prefixes.map((p) => runBig(p)));
      await api.eventually(
        async () => (held().length === prefixes.length ? true : undefined),
        30_000,
        'the tasks to start',
      );
      await partition();
      fs.writeFileSync(file('go'), '');
      const bytes = seqText(prefixes[0] ?? '', 1, BIG_LINES).length;
      await allPrinted(prefixes.length, bytes);
      return { jobs, bytes };
    };
    return {
      agent,
      proxy,
      watch,
      hostId,
      file,
      run,
      runBig,
      held,
      allPrinted,
      finishedOk,
      log,
      storedBytes,
      partition,
      printedWhileAway,
    };
  }

  it(
    'resends tens of MiB printed while away byte-exact, without queueing more than the high-water mark on the socket',
    { timeout: 300_000 },
    async () => {
      const a = await connectedAgent('127.0.0.21');
      const prefixes = ['a', 'b', 'c', 'd'];
      const { jobs, bytes } = await a.printedWhileAway(prefixes);
      a.proxy.heal();

      for (const job of jobs) await a.finishedOk(job);
      for (const [i, job] of jobs.entries())
        assertSameText(await a.log(job), seqText(prefixes[i] ?? '', 1, BIG_LINES), `the log of task ${i}`);
      assert.deepEqual(a.watch.problems, []);
      const resent = a.watch.bytesPer.slice(1).reduce((sum, n) => sum + n, 0);
      assert.ok(resent >= 4 * bytes, `the connections after the first got the output (${resent} bytes)`);
      // One frame past the mark at most (the check comes before each frame), and a second for
      // what else went out meanwhile (a result, a heartbeat).
      const bound = RESEND_HIGH_WATER + 2 * FRAME_BYTES;
      assert.ok(
        a.watch.maxBacklog <= bound,
        `the socket had ${a.watch.maxBacklog} bytes queued at most, more than ${bound}`,
      );
    },
  );

  it(
    'a task printing across the reconnect: its live output waits for its resend and follows it without gap or duplicate',
    { timeout: 300_000 },
    async () => {
      const a = await connectedAgent('127.0.0.22');
      const big = await Promise.all(['e', 'f', 'g'].map((p) => a.runBig(p)));
      // A trickle, a burst of several frames once `go` exists (while the agent is away), and a
      // trickle again, until `stop` exists.
      const live = await a.run(
        [
          'i=0; burst=0',
          `while [ ! -e '${a.file('stop')}' ]; do`,
          `  n=100; if [ $burst = 0 ] && [ -e '${a.file('go')}' ]; then n=300000; burst=1; fi`,
          `  seq -f 'live-%09.0f' $((i+1)) $((i+n)); i=$((i+n)); sleep 0.01`,
          'done',
        ].join('\n'),
      );
      await api.eventually(
        async () => {
          const h = a.held();
          return h.length === 4 && h.some((t) => t.outputBytes > 0) ? true : undefined;
        },
        30_000,
        'the tasks to start and the live one to print',
      );
      await a.partition();
      fs.writeFileSync(a.file('go'), '');
      const bytes = seqText('e', 1, BIG_LINES).length;
      await api.eventually(
        async () => {
          const h = a.held();
          const done = h.filter((t) => t.finished && t.outputBytes === bytes);
          const running = h.find((t) => !t.finished);
          return done.length === 3 && running && running.outputBytes > 300_000 * 15 ? true : undefined;
        },
        120_000,
        'the big tasks printed and the live one had its burst',
      );
      a.proxy.heal();

      for (const job of big) await a.finishedOk(job);
      // The live task streams again: the server gets what it prints after the resend.
      const printed = a.held().find((t) => !t.finished)?.outputBytes ?? 0;
      await api.eventually(
        async () => ((await a.storedBytes(live)) > printed ? true : undefined),
        60_000,
        'the live task to stream after the resend',
      );
      fs.writeFileSync(a.file('stop'), '');
      await a.finishedOk(live);
      const text = (await a.log(live)) ?? '';
      const lines = text.split('\n').length - 1;
      assert.ok(lines > 300_000);
      assertSameText(text, seqText('live', 1, lines), 'the live task’s log');
      for (const [i, job] of big.entries())
        assertSameText(
          await a.log(job),
          seqText(['e', 'f', 'g'][i] ?? '', 1, BIG_LINES),
          `the log of task ${i}`,
        );
      assert.deepEqual(a.watch.problems, []);
      assert.ok(a.watch.maxBacklog <= RESEND_HIGH_WATER + 2 * FRAME_BYTES, `backlog ${a.watch.maxBacklog}`);
    },
  );

  it(
    'a cut in the middle of a resend stops it; the next connection resends the rest',
    { timeout: 300_000 },
    async () => {
      const a = await connectedAgent('127.0.0.23');
      const prefixes = ['h', 'i', 'j', 'k'];
      const { jobs, bytes } = await a.printedWhileAway(prefixes);
      // Cut once the second connection's resend has sent a few frames.
      let cut = false;
      a.watch.onOutput = () => {
        if (cut || a.watch.connections !== 2 || (a.watch.bytesPer[1] ?? 0) < 6 * FRAME_BYTES) return;
        cut = true;
        a.watch.awayBytes = 0;
        a.proxy.cut(Infinity);
      };
      a.proxy.heal();
      await api.eventually(async () => (cut ? true : undefined), 60_000, 'the cut during the resend');
      await a.agent.waitFor('backoff', 30_000);
      const sent = a.watch.bytesPer[1] ?? 0;
      assert.ok(sent < 4 * bytes, `the resend was cut short (${sent} bytes sent)`);
      a.proxy.heal();

      for (const job of jobs) await a.finishedOk(job);
      for (const [i, job] of jobs.entries())
        assertSameText(await a.log(job), seqText(prefixes[i] ?? '', 1, BIG_LINES), `the log of task ${i}`);
      assert.equal(a.watch.awayBytes, 0, 'nothing was read and sent while the agent had no connection');
      assert.ok(a.watch.connections >= 3);
      assert.ok((a.watch.bytesPer[2] ?? 0) > 0, 'the next connection resent the rest');
      assert.deepEqual(a.watch.problems, []);
    },
  );
});
