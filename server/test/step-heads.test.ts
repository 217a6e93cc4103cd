/**
 * What a status poll reads of a job's steps leaves out their definitions (a step's spec holds its
 * whole script), and is otherwise the step as stored, on every engine: the job and its steps in
 * order, each with every other column, as the full read has them.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob, waitingStep } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

/** A row without its spec, for comparing a full read with a head. */
function withoutSpec<T extends { spec: string }>(row: T): Omit<T, 'spec'> {
  const { spec, ...rest } = row;
  assert.ok(spec.length > 0);
  return rest;
}

for (const engine of engines()) {
  describe(`step heads on ${engine}`, () => {
    it('a job with its steps but their specs, each step otherwise whole; one step alike', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const [host] = await store.inventory.registerAgentHosts(agentRegistrations(1, '10.9', null));
        assert.ok(host);
        const script = `echo start\n${'# a line of a long script\n'.repeat(4000)}`;
        const steps = ['first', 'second', 'third'].map((name) =>
          waitingStep(name, [host], { kind: 'script', script }),
        );
        const { jobInstanceId, stepInstanceIds } = await store.executions.createJobInstance(
          newJob('1', 'long scripts', steps),
          true,
        );
        const ex = store.executions;
        const full = await ex.getJobWithSteps(jobInstanceId);
        const heads = await ex.getJobWithStepHeads(jobInstanceId);
        assert.ok(full && heads);
        assert.ok(full.steps.every((s) => s.spec.includes('a line of a long script')));
        assert.deepEqual(heads.job, full.job);
        assert.deepEqual(
          heads.steps.map((s) => s.name),
          ['first', 'second', 'third'],
        );
        assert.ok(heads.steps.every((s) => !('spec' in s)));
        assert.deepEqual(heads.steps, full.steps.map(withoutSpec));

        const id = stepInstanceIds[1]!;
        const head = await ex.getStepHead(id);
        const step = await ex.getStep(id);
        assert.ok(head && step);
        assert.ok(!('spec' in head));
        assert.deepEqual(head, withoutSpec(step));

        assert.equal(await ex.getJobWithStepHeads(jobInstanceId + 1000), undefined);
        assert.equal(await ex.getStepHead(id + 1000), undefined);
      } finally {
        await store.close();
      }
    });
  });
}
