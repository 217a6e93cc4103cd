import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOLD_BYTES, HOLD_FILES, ReportHold } from '../src/report-hold.js';
import type { CombinedReport } from '../src/report-hold.js';
import type { FileReport } from '../src/task-spool.js';
import { exitedResult as result } from './helpers/recording-reports.js';

/** Waits `n` turns of the event loop (the hold releases two turns after its time is up). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** What reached the wire, in order; `fileReports: false` for a server that takes no files in reports. */
function wire({ fileReports = true } = {}) {
  const sent: (string | CombinedReport)[] = [];
  return {
    sent,
    hold: (ms = 1000) =>
      new ReportHold(
        {
          started: (key) => sent.push(`started ${key}`),
          output: (key, offset, data) => sent.push(`output ${key} ${offset} ${data.length}`),
          finished: (m) => sent.push(`finished ${m.key}`),
          report: (m) => sent.push(m),
          ...(fileReports
            ? { file: (f: FileReport) => sent.push(`file ${f.key} ${f.sourcePath} ${f.status} ${f.bytes}`) }
            : {}),
        },
        ms,
      ),
  };
}

/** A download's report of one file. */
function fileReport(key: string, name: string, status: FileReport['status'], bytes: number): FileReport {
  return {
    key,
    label: '0:127.0.0.2',
    sourcePath: `/src/${name}`,
    targetPath: `/dst/${name}`,
    status,
    size: 10,
    bytes,
    speed: bytes * 100,
    message: '',
  };
}

describe('ReportHold', () => {
  it('sends a task that ends within the hold as one report holding its start, output and result', () => {
    const { sent, hold } = wire();
    const h = hold();
    h.started('1:1:1', 1);
    h.output('1:1:1', 0, Buffer.from('he'));
    h.output('1:1:1', 2, Buffer.from('llo\n'));
    assert.deepEqual(sent, []);
    h.finished(result('1:1:1', 6));
    const { key: _key, ...rest } = result('1:1:1', 6);
    assert.deepEqual(sent, [
      {
        key: '1:1:1',
        startTime: 1,
        output: { offset: 0, data: Buffer.from('hello\n').toString('base64') },
        result: rest,
      },
    ]);
  });

  it('leaves the output out of a report of a task that wrote nothing', () => {
    const { sent, hold } = wire();
    const h = hold();
    h.started('1:1:2', 1);
    h.finished(result('1:1:2', 0));
    assert.equal((sent[0] as CombinedReport).output, undefined);
  });

  it('releases a hold that outlives its time as separate messages, in order; later output goes out at the end of its turn', async () => {
    const { sent, hold } = wire();
    const h = hold(20);
    h.started('1:1:3', 1);
    h.output('1:1:3', 0, Buffer.from('abc'));
    await new Promise((resolve) => setTimeout(resolve, 60));
    await turns(2);
    assert.deepEqual(sent, ['started 1:1:3', 'output 1:1:3 0 3']);
    h.output('1:1:3', 3, Buffer.from('d'));
    h.output('1:1:3', 4, Buffer.from('ef'));
    assert.deepEqual(sent.slice(2), []);
    await turns(1);
    assert.deepEqual(sent.slice(2), ['output 1:1:3 3 1', 'output 1:1:3 4 2']);
    h.finished(result('1:1:3', 6));
    assert.deepEqual(sent.slice(4), ['finished 1:1:3']);
  });

  it('sends the last output of a released task with its result, when both come in one turn', async () => {
    const { sent, hold } = wire();
    const h = hold(20);
    h.started('1:1:9', 1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    await turns(2);
    assert.deepEqual(sent, ['started 1:1:9']);
    h.output('1:1:9', 0, Buffer.from('hel'));
    h.output('1:1:9', 3, Buffer.from('lo\n'));
    h.finished(result('1:1:9', 6));
    const { key: _key, ...rest } = result('1:1:9', 6);
    assert.deepEqual(sent.slice(1), [
      {
        key: '1:1:9',
        startTime: 1,
        output: { offset: 0, data: Buffer.from('hello\n').toString('base64') },
        result: rest,
      },
    ]);
    await turns(1);
    assert.equal(sent.length, 2);
  });

  it('keeps the order of output and file reports of a released task', async () => {
    const { sent, hold } = wire();
    const h = hold(20);
    h.started('1:1:10', 1);
    h.release('1:1:10');
    h.output('1:1:10', 0, Buffer.from('a'));
    h.release('1:1:10'); // a file report follows
    h.output('1:1:10', 1, Buffer.from('b'));
    h.finished(result('1:1:10', 2));
    await turns(1);
    assert.deepEqual(sent, ['started 1:1:10', 'output 1:1:10 0 1', 'output 1:1:10 1 1', 'finished 1:1:10']);
  });

  it('releases at once when the output grows past what a hold keeps', () => {
    const { sent, hold } = wire();
    const h = hold();
    h.started('1:1:4', 1);
    h.output('1:1:4', 0, Buffer.alloc(10));
    h.output('1:1:4', 10, Buffer.alloc(HOLD_BYTES));
    assert.deepEqual(sent, ['started 1:1:4', 'output 1:1:4 0 10', `output 1:1:4 10 ${HOLD_BYTES}`]);
  });

  it('sends reports of tasks it holds nothing for directly, and forgets every hold on drop', () => {
    const { sent, hold } = wire();
    const h = hold();
    h.output('1:1:5', 7, Buffer.from('x'));
    h.finished(result('1:1:5', 8));
    h.started('1:1:6', 1);
    h.drop();
    h.finished(result('1:1:6', 0));
    assert.deepEqual(sent, ['output 1:1:5 7 1', 'finished 1:1:5', 'finished 1:1:6']);
  });

  it("runs a hold from the moment the task's process started", async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { sent, hold } = wire();
    const h = hold(60);
    h.started('1:1:7', 1);
    t.mock.timers.tick(40);
    h.spawned('1:1:7');
    t.mock.timers.tick(40);
    // 80 ms after the start, 40 ms after the process started: still held.
    assert.deepEqual(sent, []);
    t.mock.timers.tick(30);
    await turns(2);
    assert.deepEqual(sent, ['started 1:1:7']);
  });

  it('lets a result that arrived while the loop was busy past the hold close it', async () => {
    const { sent, hold } = wire();
    const h = hold(20);
    h.started('1:1:8', 1);
    // Due after the hold, and run in the same turn as its timer once the loop gets to them.
    setTimeout(() => h.finished(result('1:1:8', 0)), 25);
    const until = Date.now() + 60;
    while (Date.now() < until) {
      /* the loop is busy */
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    await turns(2);
    assert.equal(sent.length, 1);
    assert.equal((sent[0] as CombinedReport).key, '1:1:8');
  });

  it('sends a download that ends within the hold as one report holding the last report of each file', () => {
    const { sent, hold } = wire();
    const h = hold();
    const k = '1:1:11';
    h.started(k, 1);
    assert.equal(h.file(fileReport(k, 'a', 'downloading', 0)), true);
    assert.equal(h.file(fileReport(k, 'b', 'downloading', 0)), true);
    assert.equal(h.file(fileReport(k, 'b', 'downloading', 4)), true);
    assert.equal(h.file(fileReport(k, 'b', 'finished', 10)), true);
    assert.equal(h.file(fileReport(k, 'a', 'failed', 3)), true);
    assert.deepEqual(sent, []);
    h.finished(result(k, 0));
    const { key: _key, ...rest } = result(k, 0);
    const last = (f: FileReport) => {
      const { key: _k, ...fields } = f;
      return fields;
    };
    // In the order of the last reports: the server ends up with what the separate messages left.
    assert.deepEqual(sent, [
      {
        key: k,
        startTime: 1,
        files: [last(fileReport(k, 'b', 'finished', 10)), last(fileReport(k, 'a', 'failed', 3))],
        result: rest,
      },
    ]);
  });

  it('releases a download that outlives the hold with the last report of each file; later ones go out directly', async () => {
    const { sent, hold } = wire();
    const h = hold(20);
    const k = '1:1:12';
    h.started(k, 1);
    assert.equal(h.file(fileReport(k, 'a', 'downloading', 0)), true);
    assert.equal(h.file(fileReport(k, 'a', 'downloading', 2)), true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    await turns(2);
    assert.deepEqual(sent, [`started ${k}`, `file ${k} /src/a downloading 2`]);
    // The caller sends it, as every later report of the download.
    assert.equal(h.file(fileReport(k, 'a', 'downloading', 5)), false);
    assert.equal(h.file(fileReport(k, 'a', 'finished', 10)), false);
    h.finished(result(k, 0));
    assert.deepEqual(sent.slice(2), [`finished ${k}`]);
  });

  it('holds no file report for a server that does not take them in a report: it releases the hold', () => {
    const { sent, hold } = wire({ fileReports: false });
    const h = hold();
    const k = '1:1:13';
    h.started(k, 1);
    assert.equal(h.file(fileReport(k, 'a', 'downloading', 0)), false);
    assert.deepEqual(sent, [`started ${k}`]);
    assert.equal(h.file(fileReport(k, 'a', 'finished', 10)), false);
    h.finished(result(k, 0));
    assert.deepEqual(sent, [`started ${k}`, `finished ${k}`]);
  });

  it('releases a hold whose output follows a file report, in the order they came', () => {
    const { sent, hold } = wire();
    const h = hold();
    const k = '1:1:14';
    h.started(k, 1);
    h.output(k, 0, Buffer.from('a'));
    assert.equal(h.file(fileReport(k, 'a', 'finished', 10)), true);
    h.output(k, 1, Buffer.from('bc'));
    assert.deepEqual(sent, [
      `started ${k}`,
      `output ${k} 0 1`,
      `file ${k} /src/a finished 10`,
      `output ${k} 1 2`,
    ]);
  });

  it('releases a hold past HOLD_FILES files; a file it holds already stays held until then', () => {
    const { sent, hold } = wire();
    const h = hold();
    const k = '1:1:15';
    h.started(k, 1);
    for (let i = 0; i < HOLD_FILES; i++) assert.equal(h.file(fileReport(k, `f${i}`, 'downloading', 0)), true);
    assert.equal(h.file(fileReport(k, 'f0', 'finished', 10)), true);
    assert.deepEqual(sent, []);
    assert.equal(h.file(fileReport(k, 'one-more', 'downloading', 0)), false);
    assert.equal(sent.length, 1 + HOLD_FILES);
    assert.equal(sent[0], `started ${k}`);
    assert.equal(sent[1], `file ${k} /src/f1 downloading 0`);
    assert.equal(sent.at(-1), `file ${k} /src/f0 finished 10`);
  });

  it('forgets held file reports on drop (the resume after the next welcome resends them)', () => {
    const { sent, hold } = wire();
    const h = hold();
    const k = '1:1:16';
    h.started(k, 1);
    assert.equal(h.file(fileReport(k, 'a', 'finished', 10)), true);
    h.drop();
    assert.equal(h.file(fileReport(k, 'a', 'finished', 10)), false);
    h.finished(result(k, 0));
    assert.deepEqual(sent, [`finished ${k}`]);
  });
});
