/**
 * On PostgreSQL a one-step job of hosts named by id, and one host's result, are each stored by
 * a single statement whose events are written by the database; on every engine the events say
 * exactly what the step-by-step transaction writes: the same JSON text, fields in the same
 * order, the host's move from the status it had, and nothing for a result already recorded.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { StepEnd, TaskWrite } from '../src/store/execution-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`one-statement writes on ${engine}`, () => {
    it('store the events the transaction stores, text for text', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const ex = store.executions;
        await store.inventory.createBiz(2, 'two');
        const [host] = await store.inventory.registerAgentHosts(agentRegistrations(1, '10.7', 2));
        assert.ok(host);
        const bare = await store.inventory.addHost({
          cloudId: 0,
          ip: '10.7.9.9',
          hostname: 'bare',
          osType: 'linux',
          bizId: 2,
        });
        const byId = (ids: number[]) =>
          ex.createJobInstance(
            newJob('2', 'by "id"', [
              {
                name: 'step \\ one',
                type: 1,
                spec: { kind: 'script' },
                hosts: [],
                hostsById: { ids, bizIds: [2], batches: null },
              },
            ]),
            true,
          );
        const eventsOf = (jobInstanceId: number) => ex.events.listOfJob(jobInstanceId, 0, 100);

        // The created event: counts by status in ascending order, as JSON.stringify writes them.
        const mixed = await byId([bare.id, host.id]);
        const mixedJob = await ex.getJob(mixed.jobInstanceId);
        assert.ok(mixedJob);
        const [created] = await eventsOf(mixed.jobInstanceId);
        assert.equal(created?.kind, 'job');
        assert.equal(
          created.data,
          JSON.stringify({
            job_instance_id: mixed.jobInstanceId,
            created: true,
            name: 'by "id"',
            status: 2,
            create_time: Number(mixedJob.create_time),
            start_time: Number(mixedJob.start_time),
            operator: 'tester',
            steps: [
              {
                step_instance_id: mixed.stepInstanceIds[0],
                name: 'step \\ one',
                type: 1,
                status: 2,
                execute_count: 0,
                host_counts: { 5: 1, 18: 1 },
              },
            ],
          }),
        );

        // A result with output and the job's end: output, the host's move, the step's and job's end.
        const { jobInstanceId, stepInstanceIds } = await byId([host.id]);
        const stepInstanceId = stepInstanceIds[0] ?? 0;
        const now = Date.now();
        const result = (): TaskWrite => ({
          stepInstanceId,
          executeCount: 0,
          hostId: host.id,
          chunks: [{ offset: 0, data: Buffer.from('ok\n') }],
          logBytes: 3,
          startTime: now - 5,
          status: 9,
          exitCode: 0,
          errorCode: 0,
          endTime: now,
        });
        const end = (): StepEnd => ({
          jobInstanceId,
          stepInstanceId,
          keys: [`${stepInstanceId}:0:${host.id}`],
          stepStatus: 3,
          jobStatus: 3,
          endTime: now,
          unlessPendingAfter: 0,
        });
        const first = end();
        const applied = await ex.commitTaskWrites([result()], [first]);
        assert.deepEqual([...applied], [`${stepInstanceId}:0:${host.id}`]);
        assert.equal(first.applied, true);
        const task = {
          job_instance_id: jobInstanceId,
          step_instance_id: stepInstanceId,
          execute_count: 0,
          bk_host_id: host.id,
        };
        const written = (await eventsOf(jobInstanceId)).slice(1);
        assert.deepEqual(
          written.map((e) => [e.kind, e.data]),
          [
            ['log', JSON.stringify({ ...task, offset: 0, length: 3 })],
            [
              'host',
              JSON.stringify({
                ...task,
                from_status: 5,
                status: 9,
                exit_code: 0,
                error_code: 0,
                start_time: now - 5,
                end_time: now,
              }),
            ],
            [
              'step',
              JSON.stringify({
                job_instance_id: jobInstanceId,
                step_instance_id: stepInstanceId,
                status: 3,
                end_time: now,
              }),
            ],
            ['job', JSON.stringify({ job_instance_id: jobInstanceId, status: 3, end_time: now })],
          ],
        );
        const ids = written.map((e) => e.id);
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => a - b),
        );
        const stored = await ex.getHostTask(stepInstanceId, 0, host.id);
        const step = await ex.getStep(stepInstanceId);
        assert.equal(stored?.status, 9);
        assert.equal(Number(stored?.log_bytes), 3);
        assert.equal(Number(stored?.version), Number(step?.hosts_version));
        assert.equal(step?.status, 3);
        assert.equal((await ex.readLog(stepInstanceId, 0, host.id)).toString(), 'ok\n');

        // The same result again (an agent resending): recorded once, nothing more said.
        const again = result();
        const second = end();
        assert.equal((await ex.commitTaskWrites([again], [second])).size, 0);
        assert.equal(again.storedStatus, 9);
        assert.equal(second.applied, false);
        const after = (await eventsOf(jobInstanceId)).slice(1 + written.length);
        assert.deepEqual(
          after.map((e) => e.kind),
          ['log'],
        );
        assert.equal((await ex.readLog(stepInstanceId, 0, host.id)).toString(), 'ok\n');
      } finally {
        await store.close();
      }
    });
  });
}
