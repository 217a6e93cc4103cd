/**
 * A job's last result and its end are stored in one commit: a client that saw the job finished
 * sees the same end after the server is killed with SIGKILL at that moment and restarted, with
 * the host's result and output that came with it, and the agent's resend changes nothing.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { engines } from './helpers/databases.js';
import { b64, hostLog, jobStatus, runScript, startFleet, waitFinished, stopFleets } from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV } from './helpers/processes.js';

/** Polls without pausing, so the kill follows the first reply that says finished. */
async function firstFinished(fleet: Fleet, jobInstanceId: number): Promise<JobStatus> {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const st = await jobStatus(fleet, jobInstanceId);
    if (st.finished) return st;
  }
  throw new Error(`job ${jobInstanceId} not finished`);
}

for (const engine of engines()) {
  describe(`job end stored with the last result on ${engine}`, () => {
    after(stopFleets);

    test('SIGKILL right after a client saw the job finished keeps that end', async () => {
      const fleet = await startFleet(engine, 1, { env: RESTART_HEARTBEAT_ENV });
      const hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      for (const [script, jobStatus, hostStatus] of [
        ['echo done', 3, 9],
        ['echo failing; exit 3', 4, 104],
      ] as const) {
        const r = await runScript(fleet, {
          script_content: b64(script),
          target_server: { host_id_list: [hostId] },
        });
        assert.equal(r.result, true, r.message);
        const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
        const seen = await firstFinished(fleet, jobId);
        await fleet.server.kill('SIGKILL');
        fleet.server = await fleet.server.restart();
        for (const a of fleet.agents) await a.waitReady(2);

        const st = await waitFinished(fleet, jobId);
        assert.equal(seen.job_instance.status, jobStatus);
        assert.deepEqual(st.job_instance, seen.job_instance);
        assert.deepEqual(st.step_instance_list, seen.step_instance_list);
        const step = st.step_instance_list[0];
        assert.equal(step?.status, jobStatus);
        assert.equal(step.step_ip_result_list?.[0]?.status, hostStatus);
        assert.equal(
          await hostLog(fleet, jobId, stepId, hostId),
          script.startsWith('echo done') ? 'done\n' : 'failing\n',
        );
      }
    });
  });
}
