/**
 * Job event retention on both stores: events of finished jobs older than the retention are
 * removed, events of jobs still running (or waiting, or stopping) stay however old they are,
 * nothing inside the retention is touched, and ids go on growing after a prune so that
 * Last-Event-ID stays exact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FINISHED_RUN_STATUSES, RunStatus } from '../src/engine/statuses.js';
import type { NewJob } from '../src/store/execution-store.js';
import { Store } from '../src/store/store.js';
import { pruneJobEvents } from '../src/streams/job-event-retention.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const DAY_MS = 24 * 3600_000;

const job = (name: string): NewJob => ({
  scopeType: 'biz',
  scopeId: '2',
  name,
  type: 1,
  launchMode: 2,
  operator: 'tester',
  appCode: 'app',
  callbackUrl: null,
  clientRequestId: null,
  steps: [
    {
      name,
      type: 1,
      spec: { kind: 'confirm', approvers: [], message: '', notifyChannels: [], webhookUrl: null },
      hosts: [],
    },
  ],
});

after(async () => {
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`job event retention on ${engine}`, () => {
    let store: Store;
    before(async () => {
      store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('events') });
    });
    after(async () => {
      await store.close();
    });

    test('old events of finished jobs go; running jobs and recent events stay; ids keep growing', async () => {
      const ex = store.executions;
      const events = ex.events;
      const started = async (name: string) => (await ex.createJobInstance(job(name), true)).jobInstanceId;
      const finished = await started('finished');
      const failed = await started('failed');
      const running = await started('running');
      const waiting = await started('waiting for a person');
      const stopping = await started('stopping');
      const now = Date.now();
      assert.equal(await ex.casJob(finished, undefined, { status: RunStatus.SUCCESS, end_time: now }), true);
      assert.equal(await ex.casJob(failed, undefined, { status: RunStatus.FAIL, end_time: now }), true);
      assert.equal(await ex.casJob(waiting, undefined, { status: RunStatus.WAITING_USER }), true);
      assert.equal(await ex.casJob(stopping, undefined, { status: RunStatus.STOPPING }), true);
      const count = async (id: number) => (await events.listOfJob(id, 0, 1000)).length;
      const all = [finished, failed, running, waiting, stopping];
      const before = await Promise.all(all.map(count));
      assert.ok(
        before.every((n) => n > 0),
        `every job has events: ${before.join(',')}`,
      );
      const lastBefore = await events.lastId();

      // Within the retention (30 days), nothing goes; retention 0 keeps everything.
      assert.equal(await pruneJobEvents(events, 30, now + DAY_MS), 0);
      assert.equal(await pruneJobEvents(events, 0, now + 365 * DAY_MS), 0);
      assert.deepEqual(await Promise.all(all.map(count)), before);

      // 31 days on: the finished jobs' events are gone, the others' all kept (one per statement here,
      // to go through the paging).
      const removed = await events.prune(now + DAY_MS, FINISHED_RUN_STATUSES, 1);
      assert.equal(removed, (before[0] ?? 0) + (before[1] ?? 0));
      assert.deepEqual(await Promise.all(all.map(count)), [0, 0, ...before.slice(2)]);

      // A job that ended after weeks of waiting keeps its events, however old, for the retention
      // after its end.
      const long = await started('waited for weeks');
      const longEvents = await count(long);
      assert.equal(
        await ex.casJob(long, undefined, { status: RunStatus.SUCCESS, end_time: now + 40 * DAY_MS }),
        true,
      );
      assert.equal(await pruneJobEvents(events, 30, now + 41 * DAY_MS), 0);
      assert.equal(await count(long), longEvents + 1, 'its end is one more event');

      // A finished job's streams still know it is over: its status is kept, only the replay goes.
      assert.equal((await ex.getJob(finished))?.status, RunStatus.SUCCESS);

      // New events get ids after every earlier one, pruned or not.
      await ex.casJob(running, undefined, { status: RunStatus.SUCCESS, end_time: Date.now() });
      const [latest] = (await events.listOfJob(running, 0, 1000)).slice(-1);
      assert.ok(Number(latest?.id) > lastBefore, `${latest?.id} > ${lastBefore}`);
    });
  });
}
