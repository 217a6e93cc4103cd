/**
 * The chaos run's retried jobs: script jobs whose script fails on one host the first time it runs
 * there. Once such a job ends failed, the run retries its step through any server
 * (operate_step_instance 2, the failed hosts again, or 8, every host again), up to
 * MAX_RETRIES times, until the job succeeds. A host whose agent was killed while the job ran may
 * lose a task (310) in any execution, which fails that execution as the failing script does and
 * is retried too.
 *
 * The checker takes every execution's host tasks from the store and holds them to: one execution
 * per retry applied (no more than were sent, no fewer than were accepted); every host has a task
 * in each; a host kept from an earlier execution (3) succeeded in it; the script fails (104) once
 * at most, and only on its host; each host ran once per task that ran to its end and at most
 * once more per lost one; the status reply shows the last execution; a host that succeeded has
 * its exact log; the job's status follows from its last execution.
 */
import assert from 'node:assert/strict';
import {
  clusterScript,
  everyStatus,
  liveServer,
  markerRuns,
  operateStepVia,
  waitJobFinished,
} from '../helpers/cluster.js';
import type { AcknowledgedJob, Cluster } from '../helpers/cluster.js';
import { hostLog, hostStatuses } from '../helpers/fleet.js';
import type { KilledWhile } from './chaos-file-jobs.js';

/** Retries the run sends a job at most: a host lost in every execution ends the job failed. */
const MAX_RETRIES = 3;

export interface RetryJob extends AcknowledgedJob {
  submittedAt: number;
  failOnce: string;
  /** What each retry runs again: the hosts that failed (2), or every host (8). */
  operation: 2 | 8;
  /** Retries sent (answered or not), and those accepted. */
  sent: number;
  accepted: number;
}

export async function submitRetryJob(
  c: Cluster,
  via: number,
  hosts: string[],
  opts: { failOnce: string; operation: 2 | 8; sleep: number; callbackUrl?: string },
): Promise<RetryJob> {
  const submittedAt = Date.now();
  const job = await clusterScript(c, via, hosts, {
    sleep: opts.sleep,
    failOnce: opts.failOnce,
    ...(opts.callbackUrl ? { callbackUrl: opts.callbackUrl } : {}),
  });
  return { ...job, submittedAt, failOnce: opts.failOnce, operation: opts.operation, sent: 0, accepted: 0 };
}

/**
 * Whenever the job ends failed, retries its step through the server `pick` names, until the job
 * succeeds, MAX_RETRIES were sent, or the deadline passes.
 */
export async function retryWhenFailed(
  c: Cluster,
  job: RetryJob,
  pick: () => number | undefined,
  deadline: number,
): Promise<void> {
  await everyStatus(c, job.jobId, pick, deadline, async (st, via) => {
    if (!st.finished) return false;
    if (st.job_instance.status !== 4) return true;
    job.sent++;
    if (await operateStepVia(c, via, job, job.operation)) job.accepted++;
    return job.sent >= MAX_RETRIES;
  });
}

/** Checks one retried job (see the top of this file); returns its lost host tasks. */
export async function checkRetryJob(c: Cluster, job: RetryJob, killedWhile: KilledWhile): Promise<number> {
  const st = await waitJobFinished(c, job.jobId, 120_000);
  const end = Number(st.job_instance.end_time ?? Date.now());
  const rows = (
    await c.db<{ host_id: string; execute_count: number; status: number }>(
      'select host_id, execute_count, status from host_task where step_instance_id = $1',
      [job.stepId],
    )
  ).map((r) => ({ hostId: Number(r.host_id), count: Number(r.execute_count), status: Number(r.status) }));
  const last = Math.max(...rows.map((r) => r.count));
  assert.ok(
    last >= job.accepted && last <= job.sent,
    `job ${job.jobId}: ${last + 1} executions after ${job.accepted} retries accepted of ${job.sent} sent`,
  );
  const shown = hostStatuses(st);
  let lost = 0;
  const finals: number[] = [];
  for (const ip of job.hosts) {
    const id = c.hostIds.get(ip) ?? 0;
    const what = `job ${job.jobId} host ${ip}`;
    const tasks = rows.filter((r) => r.hostId === id).sort((a, b) => a.count - b.count);
    assert.deepEqual(
      tasks.map((t) => t.count),
      Array.from({ length: last + 1 }, (_, k) => k),
      `${what}: a task in every execution`,
    );
    let ran = 0;
    let lostHere = 0;
    let failed = 0;
    for (const [k, t] of tasks.entries()) {
      const at = `${what}, execution ${t.count}`;
      if (t.status === 9) ran++;
      else if (t.status === 104) {
        assert.equal(ip, job.failOnce, `${at}: the script failed on a host it does not fail on`);
        ran++;
        failed++;
      } else if (t.status === 3) {
        const before = tasks[k - 1]?.status;
        assert.ok(
          job.operation === 2 && (before === 9 || before === 3),
          `${at}: kept as succeeded (3) after ${before}, retry ${job.operation}`,
        );
      } else if (t.status === 310) {
        assert.ok(killedWhile(ip, job.submittedAt, end), `${at}: ended lost; its agent was not killed then`);
        lostHere++;
      } else assert.fail(`${at}: ended ${t.status}`);
    }
    assert.ok(failed <= 1, `${what}: the script failed ${failed} times`);
    const runs = markerRuns(c, job, ip);
    assert.ok(
      runs >= ran && runs <= ran + lostHere,
      `${what}: ran ${runs} times; ${ran} tasks ran to their end, ${lostHere} were lost`,
    );
    const final = tasks.at(-1)?.status ?? 0;
    assert.equal(shown.get(id), final, `${what}: the status reply shows the last execution`);
    if (final === 9 || final === 3)
      assert.equal(
        await hostLog(c.via(liveServer(c)), job.jobId, job.stepId, id),
        job.log(ip),
        `${what}: log`,
      );
    finals.push(final);
    lost += lostHere;
  }
  const succeeded = finals.every((s) => s === 9 || s === 3);
  assert.equal(st.job_instance.status, succeeded ? 3 : 4, `job ${job.jobId} final status`);
  return lost;
}
