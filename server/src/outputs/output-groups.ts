/**
 * Output groups: the hosts of a step attempt grouped by (status, tag, exit code, output
 * fingerprint), as `dshbak -c` and `clush -b` do on the command line, kept as results arrive.
 *
 * Output is fingerprinted while it streams: every committed batch of task writes feeds the
 * fingerprinter of each task, and a task's fingerprints are stored when its result is. A task
 * whose output did not stream through this server from byte 0 (it started before a restart, or
 * on another server) is fingerprinted from its stored log once, when it finishes or, failing
 * that, when its group is first asked for.
 */
import type { FastifyBaseLogger } from 'fastify';
import { taskKey } from '@jobfleet/protocol';
import { isHostFinished, HostStatus } from '../engine/statuses.js';
import type { ExecutionStore, HostTask, TaskWrite } from '../store/execution-store.js';
import type { FingerprintRow, OutputStore } from '../store/output-store.js';
import { OutputFingerprinter, fingerprintsOf } from './output-fingerprint.js';
import type { Fingerprints } from './output-fingerprint.js';
import { FingerprintThread } from './output-fingerprint-thread.js';
import { ownCopy } from '../engine/output-slabs.js';
import type { HostIdentity } from './output-normalisers.js';

const MAX_IDENTITIES = 50_000;

/** The tasks a batch finished, and the fingerprints the thread streamed for them (to come). */
interface Finished {
  tasks: { w: TaskWrite; key: string; who: HostIdentity; fp: number | false | undefined }[];
  streamed: Promise<Map<string, Fingerprints>>;
}

/** The hosts whose names a batch's fingerprints need: those with output or a status. */
const withHosts = (writes: readonly TaskWrite[]) =>
  writes.filter((w) => w.chunks.length > 0 || w.status !== undefined).map((w) => w.hostId);

/**
 * Stored output read together to fingerprint hosts from their logs: a batch's logs are held at
 * once, so a step of thousands of hosts is read a few statements at a time without holding all
 * of its output.
 */
const FINGERPRINT_BATCH_BYTES = 32 * 1024 * 1024;

/**
 * `tasks` in runs of at most `budget` bytes of log (by their log_bytes, the bytes they stored),
 * in their order; a task with more than that is a run of its own.
 */
function* byLogBytes(tasks: readonly HostTask[], budget: number): Generator<HostTask[]> {
  let run: HostTask[] = [];
  let bytes = 0;
  for (const t of tasks) {
    if (run.length > 0 && bytes + t.log_bytes > budget) {
      yield run;
      run = [];
      bytes = 0;
    }
    run.push(t);
    bytes += t.log_bytes;
  }
  if (run.length > 0) yield run;
}

export interface OutputGroup {
  /** Stable for a given attempt and set of normalisers: `<status>:<tag>:<exit code>:<fingerprint>`. */
  groupId: string;
  status: number;
  tag: string;
  exitCode: number | null;
  /** Null while the hosts are unfinished (their output is not final). */
  fingerprint: string | null;
  /** Ordered by host id; the first is the group's representative. */
  hosts: HostTask[];
}

export class OutputGroups {
  /**
   * Bytes of each task's output fingerprinted so far (on the thread), while it streams; `false`
   * when it did not start at byte 0 here.
   */
  private readonly live = new Map<string, number | false>();
  private readonly identities = new Map<number, HostIdentity>();
  private readonly thread: FingerprintThread;
  private queue: Promise<void> = Promise.resolve();
  /** Batches copied and queued until their hosts' names are read: later ones queue behind them. */
  private waiting = 0;

  constructor(
    private readonly executions: ExecutionStore,
    private readonly outputs: OutputStore,
    private readonly log: FastifyBaseLogger,
  ) {
    this.thread = new FingerprintThread((err) =>
      this.log.warn({ err }, 'output fingerprint thread lost; groups will read the logs'),
    );
    executions.onTaskWrites((writes, applied) => {
      // The writes' output is in memory the writer reuses once this returns (output-slabs.ts):
      // it goes to the fingerprint thread now, or is copied when it must wait for host names.
      // One batch at a time, in commit order: a task's chunks must be hashed in order.
      if (this.waiting === 0 && this.known(writes)) {
        const fed = this.feed(writes, applied);
        this.enqueue(() => this.complete(fed));
        return;
      }
      const kept = writes.map((w) => ({ ...w, chunks: w.chunks.map(ownCopy) }));
      this.waiting++;
      this.enqueue(async () => {
        try {
          await this.identitiesOf(withHosts(kept));
        } finally {
          this.waiting--;
        }
        await this.complete(this.feed(kept, applied));
      });
    });
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue
      .then(step)
      .catch((err: unknown) =>
        this.log.warn({ err }, 'fingerprinting output failed; groups will read the logs'),
      );
  }

  private async identitiesOf(hostIds: Iterable<number>): Promise<Map<number, HostIdentity>> {
    const missing = [...new Set(hostIds)].filter((id) => !this.identities.has(id));
    if (missing.length > 0) {
      if (this.identities.size + missing.length > MAX_IDENTITIES) this.identities.clear();
      for (const [id, who] of await this.outputs.identities(missing)) this.identities.set(id, who);
    }
    return this.identities;
  }

  /** Whether the names of every host that the batch's fingerprints need are known. */
  private known(writes: readonly TaskWrite[]): boolean {
    return withHosts(writes).every((id) => this.identities.has(id));
  }

  /**
   * Feeds the batch's output to the fingerprint thread, and asks it for the fingerprints of the
   * tasks the batch finished (answered in `complete`).
   */
  private feed(writes: readonly TaskWrite[], applied: Set<string>): Finished {
    const tasks: Finished['tasks'] = [];
    for (const w of writes) {
      const key = taskKey(w.stepInstanceId, w.executeCount, w.hostId);
      const who = this.identities.get(w.hostId) ?? { ip: '', hostname: '' };
      let fp = this.live.get(key);
      for (const c of w.chunks) {
        if (fp === undefined) {
          fp = c.offset === 0 ? 0 : false;
          if (fp === 0) this.thread.start(key, who);
        }
        if (fp === false) break;
        if (c.offset === fp) {
          this.thread.update(key, c.data);
          fp += c.data.length;
        } else if (c.offset > fp) {
          this.thread.drop(key);
          fp = false;
        }
      }
      if (fp !== undefined) this.live.set(key, fp);
      if (!applied.has(key) || w.status === undefined || !isHostFinished(w.status)) continue;
      this.live.delete(key);
      tasks.push({ w, key, who, fp });
    }
    const streamed = this.thread.finish(tasks.filter((f) => typeof f.fp === 'number').map((f) => f.key));
    return { tasks, streamed };
  }

  /** Stores the fingerprints of the tasks a fed batch finished. */
  private async complete({ tasks, streamed: coming }: Finished): Promise<void> {
    const streamed = await coming;
    const done: FingerprintRow[] = [];
    for (const { w, key, who, fp } of tasks) {
      const fingerprints =
        streamed.get(key) ??
        (fp === undefined
          ? new OutputFingerprinter(who).finish()
          : fingerprintsOf(await this.executions.readLog(w.stepInstanceId, w.executeCount, w.hostId), who));
      done.push({
        stepInstanceId: w.stepInstanceId,
        executeCount: w.executeCount,
        hostId: w.hostId,
        fingerprints,
      });
    }
    if (done.length > 0) await this.outputs.save(done);
  }

  /** Waits until every batch committed so far is fingerprinted (tests and shutdown). */
  async settled(): Promise<void> {
    await this.queue;
  }

  /** Stops the fingerprint thread once every batch committed so far is fingerprinted. */
  async close(): Promise<void> {
    await this.settled();
    await this.thread.close();
  }

  /** The attempt whose output a host's log shows (a host kept as "last success" ran earlier). */
  async outputAttempt(task: HostTask): Promise<number> {
    if (task.status !== HostStatus.LAST_SUCCESS) return task.execute_count;
    return (
      (await this.executions.lastSuccessfulRun(task.step_instance_id, task.host_id, task.execute_count)) ??
      task.execute_count
    );
  }

  /**
   * outputAttempt of the tasks of one step attempt, as the tasks whose output is in each
   * attempt: the hosts kept as "last success" are looked up together, not one read each.
   */
  async outputAttempts(tasks: readonly HostTask[]): Promise<Map<number, HostTask[]>> {
    const byAttempt = new Map<number, HostTask[]>();
    const add = (attempt: number, t: HostTask) => {
      const list = byAttempt.get(attempt);
      if (list) list.push(t);
      else byAttempt.set(attempt, [t]);
    };
    const kept = tasks.filter((t) => t.status === HostStatus.LAST_SUCCESS);
    for (const t of tasks) if (t.status !== HostStatus.LAST_SUCCESS) add(t.execute_count, t);
    const [first] = kept;
    if (!first) return byAttempt;
    const runs = await this.executions.lastSuccessfulRuns(
      first.step_instance_id,
      kept.map((t) => t.host_id),
      first.execute_count,
    );
    for (const t of kept) add(runs.get(t.host_id) ?? t.execute_count, t);
    return byAttempt;
  }

  /**
   * Fingerprints of finished tasks of an attempt; those without any (their output did not stream
   * here, or a retry kept them from an earlier attempt) are computed from their logs, read many
   * hosts a statement from the attempt that ran each, a batch of at most
   * FINGERPRINT_BATCH_BYTES of logs at a time.
   */
  private async fingerprints(tasks: readonly HostTask[]): Promise<Map<number, Fingerprints>> {
    const first = tasks[0];
    if (!first) return new Map();
    const have = await this.outputs.ofAttempt(first.step_instance_id, first.execute_count);
    const missing = tasks.filter((t) => isHostFinished(t.status) && !have.has(t.host_id));
    if (missing.length === 0) return have;
    const ids = await this.identitiesOf(missing.map((t) => t.host_id));
    const rows: FingerprintRow[] = [];
    for (const [attempt, inAttempt] of await this.outputAttempts(missing)) {
      for (const batch of byLogBytes(inAttempt, FINGERPRINT_BATCH_BYTES)) {
        const logs = await this.executions.readLogs(
          first.step_instance_id,
          attempt,
          batch.map((t) => t.host_id),
          Number.MAX_SAFE_INTEGER,
        );
        if (!logs) throw new Error('logs to fingerprint were refused for their size');
        for (const t of batch) {
          const output = Buffer.concat(logs.get(t.host_id) ?? []);
          const fingerprints = fingerprintsOf(output, ids.get(t.host_id) ?? { ip: '', hostname: '' });
          have.set(t.host_id, fingerprints);
          rows.push({
            stepInstanceId: t.step_instance_id,
            executeCount: t.execute_count,
            hostId: t.host_id,
            fingerprints,
          });
        }
      }
    }
    await this.outputs.save(rows);
    return have;
  }

  /** The groups of one step attempt under a set of normalisers (its key), largest first. */
  async groups(stepInstanceId: number, executeCount: number, normalisers: string): Promise<OutputGroup[]> {
    const tasks = await this.executions.listHostTasks(stepInstanceId, executeCount);
    const fps = await this.fingerprints(tasks);
    const groups = new Map<string, OutputGroup>();
    for (const t of tasks) {
      const fingerprint = isHostFinished(t.status) ? (fps.get(t.host_id)?.[normalisers] ?? null) : null;
      const groupId = `${t.status}:${t.tag}:${t.exit_code ?? ''}:${fingerprint ?? ''}`;
      let g = groups.get(groupId);
      if (!g) {
        g = { groupId, status: t.status, tag: t.tag, exitCode: t.exit_code, fingerprint, hosts: [] };
        groups.set(groupId, g);
      }
      g.hosts.push(t);
    }
    return [...groups.values()].sort(
      (a, b) => b.hosts.length - a.hosts.length || (a.hosts[0]?.host_id ?? 0) - (b.hosts[0]?.host_id ?? 0),
    );
  }

  async identity(hostId: number): Promise<HostIdentity> {
    return (await this.identitiesOf([hostId])).get(hostId) ?? { ip: '', hostname: '' };
  }
}
