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
  });
}
