/**
 * Cluster mode: a rolling job's owner counts results twice over: those it records itself (its
 * own agents), and, at its polls, every host task whose row changed, its own writes included.
 * A poll that came while the step was moving to its next batch found the last batch done a
 * second time, and once the move was over finished it again: a batch skipped (its hosts left
 * waiting, the job never ending) or the step ended failed with its hosts still waiting (seen in
 * chaos seed 18002). Here many rolling jobs run at once on agents held by their owner, which
 * polls every 20 ms; each must succeed with every host run. Runs only where PostgreSQL is given
 * (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterPerSuite, waitJobFinished } from './helpers/cluster.js';
import { b64, hostStatuses, runScript } from './helpers/fleet.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const JOBS = 16;

describe(
  "cluster: rolling jobs counted by their owner from another server's results",
  { skip: !withPg },
  () => {
    const cluster = clusterPerSuite({
      servers: 2,
      agents: 3,
      placement: () => 0,
      env: { JOBFLEET_CLUSTER_POLL_MS: '20' },
    });

    test('every batch runs, and the jobs succeed', async () => {
      const c = cluster();
      const ids = [...c.hostIds.values()];
      const jobs = await Promise.all(
        Array.from({ length: JOBS }, async () => {
          const r = await runScript(c.via(0), {
            script_content: b64('echo batch'),
            target_server: { host_id_list: ids },
            rolling_config: { mode: 2, expression: '1' },
          });
          assert.equal(r.result, true, r.message);
          return r.data.job_instance_id;
        }),
      );
      for (const jobId of jobs) {
        const st = await waitJobFinished(c, jobId, 60_000);
        assert.deepEqual(
          [st.job_instance.status, ...ids.map((id) => hostStatuses(st).get(id))],
          [3, 9, 9, 9],
          `job ${jobId}`,
        );
      }
    });
  },
);
