/**
 * The chaos run's rolling jobs: script jobs whose hosts run in batches (rolling_config), in each
 * of BK-JOB's three modes: stop at a failed batch (1), go on past failures (2, the step ending
 * 6), or wait for a person between batches and stop at a failed one (3; the run continues each
 * batch through any server once the job waits). Each host's script stamps when it started and when it ended. Besides what any script
 * job must hold (each task run once, logs byte-exact, the true final status), the checker takes
 * each host's batch from the store and requires every batch to start after the one before it
 * ended. In modes 1 and 3 the hosts of the batches after a failed one never run (status 5). A host
 * whose agent was killed while the job ran may lose its task (310), which fails its batch as a
 * failed script does.
 */
import assert from 'node:assert/strict';
import {
  checkCutShort,
  checkHostRan,
  clusterScript,
  everyStatus,
  markerRuns,
  operateStepVia,
  runStamps,
  waitJobFinished,
} from '../helpers/cluster.js';
import type { AcknowledgedJob, Cluster } from '../helpers/cluster.js';
import { hostStatuses } from '../helpers/fleet.js';
import type { KilledWhile } from './chaos-file-jobs.js';

/** Batch sizes: one host at a time, two, half the hosts, and one more host each batch. */
export const ROLLING_EXPRESSIONS = ['1', '2', '50%', '1 +1'] as const;

export interface RollingJob extends AcknowledgedJob {
  submittedAt: number;
  mode: 1 | 2 | 3;
  failOn?: string;
}

export async function submitRollingJob(
  c: Cluster,
  via: number,
  hosts: string[],
  opts: { mode: 1 | 2 | 3; expression: string; sleep: number; failOn?: string },
): Promise<RollingJob> {
  const submittedAt = Date.now();
  const job = await clusterScript(c, via, hosts, {
    sleep: opts.sleep,
    lines: 2,
    rolling: { mode: opts.mode, expression: opts.expression },
    ...(opts.failOn ? { failOn: opts.failOn } : {}),
  });
  return { ...job, submittedAt, mode: opts.mode, ...(opts.failOn ? { failOn: opts.failOn } : {}) };
}

/**
 * Mode 3: whenever the job waits between batches, continues it (operate_step_instance 13)
 * through the server `pick` names, until the job is finished or the deadline passes. Returns
 * how many batches it continued.
 */
export async function continueBatches(
  c: Cluster,
  job: RollingJob,
  pick: () => number | undefined,
  deadline: number,
): Promise<number> {
  let continued = 0;
  await everyStatus(c, job.jobId, pick, deadline, async (st, via) => {
    if (st.finished) return true;
    if (st.step_instance_list[0]?.status === 7 && (await operateStepVia(c, via, job, 13))) continued++;
    return false;
  });
  return continued;
}

/** Checks one rolling job (see the top of this file); returns its lost host tasks. */
export async function checkRollingJob(
  c: Cluster,
  job: RollingJob,
  killedWhile: KilledWhile,
): Promise<number> {
  const st = await waitJobFinished(c, job.jobId, 120_000);
  const end = Number(st.job_instance.end_time ?? Date.now());
  const statusOf = new Map(job.hosts.map((ip) => [ip, hostStatuses(st).get(c.hostIds.get(ip) ?? 0)]));
  const rows = await c.db<{ host_id: string; batch: number }>(
    'select host_id, batch from host_task where step_instance_id = $1',
    [job.stepId],
  );
  const batchOfId = new Map(rows.map((r) => [Number(r.host_id), Number(r.batch)]));
  const batchOf = (ip: string) => batchOfId.get(c.hostIds.get(ip) ?? 0) ?? 0;
  assert.ok(
    job.hosts.every((ip) => batchOf(ip) > 0),
    `job ${job.jobId}: every host has a batch (${JSON.stringify(rows)})`,
  );
  const failed = job.hosts.filter((ip) => statusOf.get(ip) === 104 || statusOf.get(ip) === 310);
  const firstFailed = failed.length > 0 ? Math.min(...failed.map(batchOf)) : undefined;
  // Mode 2 ignores failures: the step ends 6 and the job succeeds; modes 1 and 3 stop at them.
  const stops = failed.length > 0 && job.mode !== 2;
  assert.equal(st.job_instance.status, stops ? 4 : 3, `job ${job.jobId} final status`);
  assert.equal(
    st.step_instance_list[0]?.status,
    failed.length === 0 ? 3 : stops ? 4 : 6,
    `job ${job.jobId} step status`,
  );
  if (job.failOn && job.hosts.includes(job.failOn) && statusOf.get(job.failOn) !== 5)
    assert.ok(failed.includes(job.failOn), `job ${job.jobId}: ${job.failOn} was to fail`);
  let lost = 0;
  for (const ip of job.hosts) {
    const status = statusOf.get(ip);
    if (job.mode !== 2 && firstFailed !== undefined && batchOf(ip) > firstFailed) {
      assert.equal(status, 5, `job ${job.jobId} host ${ip} (batch ${batchOf(ip)} after a failed one)`);
      assert.equal(markerRuns(c, job, ip), 0, `job ${job.jobId} host ${ip} ran after a failed batch`);
    } else if (status === 310) {
      assert.ok(
        killedWhile(ip, job.submittedAt, end),
        `job ${job.jobId} host ${ip} ended lost; its agent was not killed then`,
      );
      await checkCutShort(c, job, ip);
      lost++;
    } else {
      assert.equal(status, ip === job.failOn ? 104 : 9, `job ${job.jobId} host ${ip} status`);
      await checkHostRan(c, job, ip);
    }
  }
  // Every batch starts after the one before it ended (as far as its hosts' stamps got).
  const stamps = job.hosts.map((ip) => ({ ip, batch: batchOf(ip), ...runStamps(c, job, ip) }));
  for (const a of stamps)
    for (const b of stamps)
      if (a.batch < b.batch && a.end !== undefined && b.start !== undefined)
        assert.ok(
          a.end < b.start,
          `job ${job.jobId}: ${b.ip} (batch ${b.batch}) started before ${a.ip} (batch ${a.batch}) ended`,
        );
  return lost;
}
