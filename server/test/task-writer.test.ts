/**
 * The task writer holds a batch of output alone for a while (more output joins it), commits a
 * start or result at once with the output held so far, and commits output that reaches
 * OUTPUT_BATCH_BYTES without waiting: the stored log is byte-exact and in order either way.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { OUTPUT_BATCH_BYTES, TaskWriter } from '../src/engine/task-writer.js';
import type { CommittedBatch } from '../src/engine/task-writer.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

const HOST_SUCCESS = 9;
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Lines of text with a counter: every byte's place shows in the stored log. */
function text(from: number, bytes: number): Buffer {
  let s = '';
  for (let i = from; s.length < bytes; i++) s += `line ${i} of the output\n`;
  return Buffer.from(s.slice(0, bytes));
}

for (const engine of engines()) {
  describe(`task writer on ${engine}`, () => {
    it('commits output alone later, a result at once with it, and large output without waiting', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const ex = store.executions;
        const [host] = await store.inventory.registerAgentHosts(agentRegistrations(1, '10.9', null));
        assert.ok(host);
        const hostRow = {
          hostId: host.id,
          cloudId: 0,
          ip: host.ip,
          ipv6: '',
          agentId: 'agent-0',
          status: 5,
          batch: 0,
        };
        const stepOf = async () => {
          const { stepInstanceIds } = await ex.createJobInstance(
            newJob('1', 'job', [{ name: 'step', type: 1, spec: { kind: 'script' }, hosts: [hostRow] }]),
            true,
          );
          return stepInstanceIds[0] ?? 0;
        };
        const batches: CommittedBatch[] = [];
        let committed = () => {};
        const writer = new TaskWriter(
          ex,
          (b) => {
            batches.push(b);
            committed();
          },
          (err) => assert.fail(String(err)),
        );
        const nextCommit = () => new Promise<void>((resolve) => (committed = resolve));

        // Output, then its result a tick later: one commit holds both.
        const first = await stepOf();
        const head = text(0, 100_000);
        writer.output(first, 0, host.id, undefined, { offset: 0, data: head.subarray(0, 70_000) });
        writer.output(first, 0, host.id, undefined, { offset: 70_000, data: head.subarray(70_000) });
        await nextTick();
        assert.equal(batches.length, 0, 'output alone waits for more');
        const committing = nextCommit();
        const w = writer.write(first, 0, host.id);
        Object.assign(w, { status: HOST_SUCCESS, exitCode: 0, errorCode: 0, endTime: Date.now() });
        await committing;
        assert.equal(batches.length, 1);
        assert.equal(batches[0]?.writes[0]?.status, HOST_SUCCESS);
        assert.deepEqual(await ex.readLog(first, 0, host.id), head);

        // Output alone is committed without any other write, whether large or not.
        const second = await stepOf();
        const big = text(1_000, OUTPUT_BATCH_BYTES + 300_000);
        const piece = 1024 * 1024;
        let sent = 0;
        let landed = nextCommit();
        for (; sent + piece <= OUTPUT_BATCH_BYTES; sent += piece) {
          writer.output(second, 0, host.id, undefined, {
            offset: sent,
            data: big.subarray(sent, sent + piece),
          });
        }
        await landed;
        assert.deepEqual(await ex.readLog(second, 0, host.id), big.subarray(0, sent));
        landed = nextCommit();
        writer.output(second, 0, host.id, undefined, { offset: sent, data: big.subarray(sent) });
        await landed;
        await writer.flush();
        assert.deepEqual(await ex.readLog(second, 0, host.id), big);
      } finally {
        await store.close();
      }
    });

    it('holds apart a write the store refuses, and commits the rest of its batch', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const ex = store.executions;
        const hosts = await store.inventory.registerAgentHosts(agentRegistrations(6, '10.8', null));
        const { stepInstanceIds } = await ex.createJobInstance(
          newJob('1', 'job', [
            {
              name: 'step',
              type: 1,
              spec: { kind: 'script' },
              hosts: hosts.map((h, i) => ({
                hostId: h.id,
                cloudId: 0,
                ip: h.ip,
                ipv6: '',
                agentId: `agent-${i}`,
                status: 5,
                batch: 0,
              })),
            },
          ]),
          true,
        );
        const step = stepInstanceIds[0] ?? 0;
        const [bad, ...good] = hosts.map((h) => h.id);
        assert.ok(bad !== undefined);
        const errors: string[] = [];
        const applied = new Set<string>();
        const writer = new TaskWriter(
          ex,
          (b) => b.applied.forEach((k) => applied.add(k)),
          (err) => errors.push(String(err)),
        );
        const finish = (hostId: number) =>
          Object.assign(writer.write(step, 0, hostId), {
            status: HOST_SUCCESS,
            exitCode: 0,
            errorCode: 0,
            endTime: Date.now(),
          });
        writer.output(step, 0, bad, undefined, { offset: 0, data: Buffer.from('first\n') });
        await writer.flush();
        // A value the column cannot take (NULL into NOT NULL; 'NaN' into an integer), however
        // often it is sent.
        Object.assign(finish(bad), { errorCode: Number.NaN });
        for (const id of good) finish(id);
        await writer.flush();
        const tasks = await ex.listHostTasks(step, 0);
        for (const id of good) assert.equal(tasks.find((t) => t.host_id === id)?.status, HOST_SUCCESS);
        assert.notEqual(tasks.find((t) => t.host_id === bad)?.status, HOST_SUCCESS);
        assert.equal(applied.size, good.length);
        assert.ok(
          errors.some((e) => e.includes('held apart')),
          errors.join('\n'),
        );
        assert.deepEqual(await ex.readLog(step, 0, bad), Buffer.from('first\n'));
        // Later writes of other tasks commit at once; the held task's own ones wait with it.
        const errorsBefore = errors.length;
        const more = await ex.createJobInstance(
          newJob('1', 'job', [
            {
              name: 'step',
              type: 1,
              spec: { kind: 'script' },
              hosts: [
                {
                  hostId: good[0] ?? 0,
                  cloudId: 0,
                  ip: '',
                  ipv6: '',
                  agentId: 'agent-1',
                  status: 5,
                  batch: 0,
                },
              ],
            },
          ]),
          true,
        );
        const next = more.stepInstanceIds[0] ?? 0;
        writer.output(step, 0, bad, undefined, { offset: 6, data: Buffer.from('later\n') });
        writer.output(next, 0, good[0] ?? 0, undefined, { offset: 0, data: Buffer.from('other\n') });
        await writer.flush();
        assert.deepEqual(await ex.readLog(next, 0, good[0] ?? 0), Buffer.from('other\n'));
        assert.deepEqual(await ex.readLog(step, 0, bad), Buffer.from('first\n'));
        assert.equal(errors.length, errorsBefore, 'no batch failed again');
      } finally {
        await store.close();
      }
    });
  });
}
