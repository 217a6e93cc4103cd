/**
 * Cluster mode: a terminate received by another server is stored (the job 2 -> 10) while the
 * job's owner is ending the job from its last results. The owner read the job as running, then
 * wrote its end (3) over the 10: the terminate was accepted, and the job ended successful
 * instead of stopped (seen in chaos seed 20004). The end must apply only while the job is not
 * being stopped, and a job found at 10 ends 11 (BK-JOB's 10 -> 11).
 *
 * The moment is made certain with a row lock on the job: the owner's write of the end waits
 * for it, the terminate's update (what another server writes for it) is made under it, and
 * then the lock is released. Runs only where PostgreSQL is given (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { clusterPerSuite, waitJobFinished } from './helpers/cluster.js';
import { b64, runScript } from './helpers/fleet.js';
import { eventually } from './helpers/api-client.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

describe('cluster: a terminate stored while the owner ends the job', { skip: !withPg }, () => {
  const cluster = clusterPerSuite({ servers: 2, agents: 1, placement: () => 0 });

  test('the terminate wins: the job ends stopped (11), not successful', async () => {
    const c = cluster();
    const locker = new pg.Client({ connectionString: c.databaseUrl });
    await locker.connect();
    try {
      const r = await runScript(c.via(0), {
        script_content: b64('sleep 1; echo done'),
        target_server: { host_id_list: [c.hostIds.get('127.0.0.2')] },
      });
      assert.equal(r.result, true, r.message);
      const jobId = r.data.job_instance_id;
      await locker.query('begin');
      // Not FOR UPDATE: events of the job (their foreign key) must still be stored meanwhile.
      await locker.query('select id from job_instance where id = $1 for no key update', [jobId]);
      // The host's result is stored, and the owner, having read the job as running, waits to
      // write its end (the only write to the job's row on the way).
      await eventually(
        async () => {
          const { rows } = await locker.query<{ waiting: string; done: string }>(
            `select
               (select count(*) from pg_stat_activity where wait_event_type = 'Lock') as waiting,
               (select count(*) from host_task where status = 9) as done`,
          );
          return (Number(rows[0]?.waiting) > 0 && Number(rows[0]?.done) > 0) || undefined;
        },
        20_000,
        "the owner's end of the job waiting for the lock",
      );
      await locker.query('update job_instance set status = 10 where id = $1 and status = 2', [jobId]);
      await locker.query('commit');
      const st = await waitJobFinished(c, jobId, 20_000);
      assert.equal(st.job_instance.status, 11, 'the job ends stopped');
      assert.equal(st.step_instance_list[0]?.status, 11, 'its step too');
      // The host ran to its end before the terminate: its result stands.
      assert.equal(st.step_instance_list[0]?.step_ip_result_list?.[0]?.status, 9);
    } finally {
      await locker.end();
    }
  });
});
