/**
 * A batch of task writes that carries a step's last result stores the step's and the job's end
 * in the same commit (StepEnd), on every engine: only when the result applied, the job is still
 * running (a terminate that came first wins) and, for a step that goes on, no later step is
 * pending; otherwise neither the step nor the job changes. The job's event log says the same:
 * the output and the host's move, then the step's and the job's end only when they applied.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { StepEnd } from '../src/store/execution-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { newJob } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

const RUNNING = 2;
const SUCCESS = 3;
const PENDING = 1;
const STOPPING = 10;
const HOST_SUCCESS = 9;

for (const engine of engines()) {
  describe(`step and job end with the last result on ${engine}`, () => {
    it('applies with the result, and not past a terminate, a pending later step or an unapplied result', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const ex = store.executions;
        const [host] = await store.inventory.registerAgentHosts([
          {
            cloudId: 0,
            ip: '10.9.0.1',
            ipv6: '',
            hostname: 'h1',
            osType: 'linux',
            agentId: 'agent-1',
            agentTokenHash: 'x',
            bizId: null,
          },
        ]);
        assert.ok(host);
        const jobOf = (stepCount: number) =>
          newJob(
            '1',
            'job',
            Array.from({ length: stepCount }, (_, i) => ({
              name: `step ${i}`,
              type: 1,
              spec: { kind: 'script' },
              hosts: [
                {
                  hostId: host.id,
                  cloudId: 0,
                  ip: host.ip,
                  ipv6: '',
                  agentId: 'agent-1',
                  status: 5,
                  batch: 0,
                },
              ],
            })),
          );
        /** The step and its job end successfully with the result of the step's one host. */
        const endOf = (jobInstanceId: number, stepInstanceId: number): StepEnd => ({
          jobInstanceId,
          stepInstanceId,
          keys: [`${stepInstanceId}:0:${host.id}`],
          stepStatus: SUCCESS,
          jobStatus: SUCCESS,
          endTime: Date.now(),
        });
        /** The events of a job after id `after`, as `kind` or `kind:status`. */
        const eventsOf = async (jobInstanceId: number, after: number) =>
          (await ex.events.listOfJob(jobInstanceId, after, 100)).map((e) => {
            const data = JSON.parse(e.data) as { status?: number };
            return data.status === undefined ? e.kind : `${e.kind}:${data.status}`;
          });
        const lastEventId = async (jobInstanceId: number) =>
          Math.max(0, ...(await ex.events.listOfJob(jobInstanceId, 0, 100)).map((e) => e.id));
        /** Stores the first step's result with its end; what the store says of the end, step and job. */
        const finishFirstStep = async (
          stepCount: number,
          before?: (jobInstanceId: number) => Promise<void>,
          resultStatus = HOST_SUCCESS,
        ) => {
          const { jobInstanceId, stepInstanceIds } = await ex.createJobInstance(jobOf(stepCount), true);
          const stepInstanceId = stepInstanceIds[0] ?? 0;
          await before?.(jobInstanceId);
          const since = await lastEventId(jobInstanceId);
          const now = Date.now();
          const end: StepEnd = { ...endOf(jobInstanceId, stepInstanceId), unlessPendingAfter: 0 };
          await ex.commitTaskWrites(
            [
              {
                stepInstanceId,
                executeCount: 0,
                hostId: host.id,
                chunks: [{ offset: 0, data: Buffer.from('ok\n') }],
                logBytes: 3,
                startTime: now,
                status: resultStatus,
                exitCode: 0,
                errorCode: 0,
                endTime: now,
              },
            ],
            [end],
          );
          const found = await ex.getJobWithSteps(jobInstanceId);
          assert.ok(found);
          const events = await eventsOf(jobInstanceId, since);
          return { applied: end.applied, job: found.job, steps: found.steps, events };
        };

        const one = await finishFirstStep(1);
        assert.equal(one.applied, true);
        assert.equal(one.job.status, SUCCESS);
        assert.equal(one.steps[0]?.status, SUCCESS);
        assert.equal(Number(one.job.end_time), Number(one.steps[0]?.end_time));
        assert.deepEqual(one.events, ['log', `host:${HOST_SUCCESS}`, `step:${SUCCESS}`, `job:${SUCCESS}`]);

        const later = await finishFirstStep(2);
        assert.equal(later.applied, false, 'a later step is pending: the engine starts it');
        assert.equal(later.job.status, RUNNING);
        assert.deepEqual(
          later.steps.map((s) => s.status),
          [RUNNING, PENDING],
        );
        assert.deepEqual(later.events, ['log', `host:${HOST_SUCCESS}`]);

        const stopped = await finishFirstStep(1, async (id) => {
          assert.equal(await ex.casJob(id, [RUNNING], { status: STOPPING }), true);
        });
        assert.equal(stopped.applied, false, 'a terminate that came first wins');
        assert.equal(stopped.job.status, STOPPING);
        assert.equal(stopped.steps[0]?.status, RUNNING);
        assert.deepEqual(stopped.events, ['log', `host:${HOST_SUCCESS}`]);

        // A result that does not apply (the task is already finished) takes no end along.
        const { jobInstanceId, stepInstanceIds } = await ex.createJobInstance(jobOf(1), true);
        const stepInstanceId = stepInstanceIds[0] ?? 0;
        const result = {
          stepInstanceId,
          executeCount: 0,
          hostId: host.id,
          chunks: [],
          status: HOST_SUCCESS,
          exitCode: 0,
          errorCode: 0,
          endTime: Date.now(),
        };
        await ex.commitTaskWrites([result]);
        const since = await lastEventId(jobInstanceId);
        const end = endOf(jobInstanceId, stepInstanceId);
        await ex.commitTaskWrites([{ ...result, chunks: [] }], [end]);
        assert.equal(end.applied, false);
        assert.deepEqual(await eventsOf(jobInstanceId, since), []);
        assert.equal((await ex.getJob(jobInstanceId))?.status, RUNNING);
      } finally {
        await store.close();
      }
    });
  });
}
