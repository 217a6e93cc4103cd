/**
 * The agent's spool journal: many tasks share a write and an fdatasync, what was reported
 * survives the agent being killed, segments are copied forward and deleted, a torn record at
 * the end is ignored, and an older agent's per-task directories are taken over.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { SpoolJournal } from '../src/spool-journal.js';
import { StateDirInUse } from '../src/state-dir-lock.js';
import { TaskSpool } from '../src/task-spool.js';
import { exitedResult as result, runMsg } from './helpers/recording-reports.js';
import { Runners } from './helpers/runners.js';

const runners = new Runners();
after(() => runners.cleanup());

/** Output larger than the spool copies forward out of an old segment. */
const RELOCATE_ABOVE = 2 ** 20 + 1;

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(done(), 'waited 5 s in vain');
}

const journalFiles = (stateDir: string) => fs.readdirSync(path.join(stateDir, 'spool')).sort();

describe('TaskSpool: the journal', () => {
  it('keeps many tasks in one file and hands them to the next run, output and results intact', async () => {
    const stateDir = runners.stateDir();
    const spool = new TaskSpool(stateDir);
    const keys = Array.from({ length: 50 }, (_, i) => `9:0:${i + 1}`);
    for (const key of keys) spool.create(runMsg('true', { key }), 1);
    for (const [i, key] of keys.entries()) spool.append(key, Buffer.from(`out ${i}\n`));
    for (const [i, key] of keys.entries()) spool.finish(key, result(key, `out ${i}\n`.length));
    spool.remove(keys[0] ?? '');
    await spool.close();
    // Every task went into the one segment this run opened: no file or directory per task.
    assert.equal(journalFiles(stateDir).length, 1);

    const next = new TaskSpool(stateDir);
    const left = new Map(next.load().map((t) => [t.msg.key, t]));
    assert.equal(left.size, 49);
    assert.equal(left.has(keys[0] ?? ''), false);
    for (const [i, key] of keys.entries()) {
      if (i === 0) continue;
      assert.deepEqual(left.get(key)?.result, result(key, `out ${i}\n`.length));
      assert.equal(next.readOutput(key, 0, left.get(key)?.outputBytes ?? 0).toString(), `out ${i}\n`);
    }
    await next.close();
  });

  it('ignores a record torn by a crash and keeps every one before it', async () => {
    const stateDir = runners.stateDir();
    const spool = new TaskSpool(stateDir);
    spool.create(runMsg('true', { key: '9:0:1' }), 1);
    spool.append('9:0:1', Buffer.from('kept\n'));
    await spool.close();
    const [segment] = journalFiles(stateDir);
    assert.ok(segment);
    // Half of a header and body, as a crash in the middle of a write would leave.
    fs.appendFileSync(path.join(stateDir, 'spool', segment), Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 5]));
    const next = new TaskSpool(stateDir);
    const [left] = next.load();
    assert.equal(left?.msg.key, '9:0:1');
    assert.equal(next.readOutput('9:0:1', 0, left?.outputBytes ?? 0).toString(), 'kept\n');
    await next.close();
  });

  it('copies small unrecorded tasks forward and deletes segments nothing needs', async () => {
    const stateDir = runners.stateDir();
    const spool = new TaskSpool(stateDir, { segmentBytes: 4096 });
    const pinned = '9:0:1';
    spool.create(runMsg('sleep 1000', { key: pinned }), 1);
    spool.append(pinned, Buffer.from('still running\n'));
    for (let i = 2; i < 400; i++) {
      const key = `9:0:${i}`;
      spool.create(runMsg('true', { key }), 1);
      spool.append(key, Buffer.alloc(100, 'x'));
      spool.finish(key, result(key, 100));
      spool.remove(key);
      if (i % 20 === 0) await spool.flushed();
    }
    spool.append(pinned, Buffer.from('and on\n'));
    await spool.flushed();
    // About 60 KiB went through 4 KiB segments; the running task did not keep them all.
    assert.ok(spool.segments().length <= 3, `segments left: ${spool.segments().join(', ')}`);
    assert.deepEqual(journalFiles(stateDir).length, spool.segments().length);
    await spool.close();
    const next = new TaskSpool(stateDir);
    const left = next.load();
    assert.deepEqual(
      left.map((t) => t.msg.key),
      [pinned],
    );
    assert.equal(next.readOutput(pinned, 0, left[0]?.outputBytes ?? 0).toString(), 'still running\nand on\n');
    await next.close();
  });

  it('leaves a task as it was when its copy forward is cut short by a kill', async () => {
    const stateDir = runners.stateDir();
    const spoolDir = path.join(stateDir, 'spool');
    const spool = new TaskSpool(stateDir, { segmentBytes: 4096 });
    const done = '9:0:1';
    spool.create(runMsg('echo done', { key: done }), 1);
    spool.append(done, Buffer.from('done\n'));
    spool.finish(done, result(done, 5));
    await spool.flushed();
    const [first] = journalFiles(stateDir);
    assert.ok(first);
    const before = fs.readFileSync(path.join(spoolDir, first));
    // Fill the segment: the next write starts a new one and copies the finished task into it.
    spool.create(runMsg('true', { key: '9:0:2' }), 1);
    spool.append('9:0:2', Buffer.alloc(5000, 'x'));
    spool.remove('9:0:2');
    spool.create(runMsg('true', { key: '9:0:3' }), 1);
    await spool.flushed();
    await spool.close();
    const copy = journalFiles(stateDir).at(-1);
    assert.ok(copy && copy !== first, 'a new segment holds the copy');
    const copied = fs.readFileSync(path.join(spoolDir, copy));
    // A kill in the middle of the copy's writes: the old segment is still there (it goes only
    // once the copy is on disk), the new one ends inside its second record.
    const firstRecordEnd = 8 + copied.readUInt32LE(0);
    for (const f of journalFiles(stateDir)) fs.rmSync(path.join(spoolDir, f));
    fs.writeFileSync(path.join(spoolDir, first), before);
    fs.writeFileSync(path.join(spoolDir, copy), copied.subarray(0, firstRecordEnd + 10));
    const next = new TaskSpool(stateDir);
    const left = new Map(next.load().map((t) => [t.msg.key, t]));
    assert.deepEqual(left.get(done)?.result, result(done, 5), 'the finished task keeps its result');
    assert.equal(next.readOutput(done, 0, 5).toString(), 'done\n');
    await next.close();
  });

  it('frees a deleted segment while the agent runs: no descriptor keeps its space', async () => {
    const stateDir = runners.stateDir();
    const spool = new TaskSpool(stateDir, { segmentBytes: 64 * 1024 });
    const spoolDir = fs.realpathSync(path.join(stateDir, 'spool'));
    const keptOpen = () =>
      fs
        .readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`);
          } catch {
            return '';
          }
        })
        .filter((target) => target.startsWith(spoolDir) && target.endsWith('(deleted)'));
    for (let i = 1; i <= 20; i++) {
      const key = `9:0:${i}`;
      spool.create(runMsg('true', { key }), 1);
      spool.append(key, Buffer.alloc(32 * 1024, 'x'));
      spool.finish(key, result(key, 32 * 1024));
      await spool.flushed();
      spool.remove(key);
    }
    await spool.flushed();
    assert.ok(spool.segments().length <= 2, `segments left: ${spool.segments().join(', ')}`);
    // The descriptors of deleted segments are closed off the agent's thread: wait for that.
    for (let i = 0; i < 100 && keptOpen().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(keptOpen(), []);
    await spool.close();
  });

  it('takes over the per-task directories of an older agent', async () => {
    const stateDir = runners.stateDir();
    const key = '9:0:7';
    const dir = path.join(stateDir, 'tasks', key.replace(/:/g, '_'));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'task.json'),
      JSON.stringify({ msg: runMsg('echo old', { key }), startTime: 5 }),
    );
    fs.writeFileSync(path.join(dir, 'output'), 'old\n');
    fs.writeFileSync(path.join(dir, 'result.json'), JSON.stringify(result(key, 4)));
    const { runner, reports } = runners.open(stateDir);
    runner.resume({}, []);
    await runner.flushed();
    assert.deepEqual(reports.results(key), [result(key, 4)]);
    assert.equal(reports.text(key), 'old\n');
    assert.equal(fs.existsSync(path.join(stateDir, 'tasks')), false);
    assert.deepEqual(TaskSpool.keysOnDisk(stateDir), [key]);
  });

  it('writes again once the disk takes writes, every unrecorded task in full', async () => {
    const stateDir = runners.stateDir();
    const logged: string[] = [];
    const spool = new TaskSpool(stateDir, {
      segmentBytes: 4096,
      repairDelayMs: 50,
      log: (level, msg, fields) => logged.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
    });
    // Too large to be copied forward: it stays in the first segment while the disk is "full".
    const big = Buffer.alloc(RELOCATE_ABOVE, 98);
    spool.create(runMsg('true', { key: '9:0:1' }), 1);
    spool.append('9:0:1', big);
    await spool.flushed();
    // The next segment is a device whose every write fails with ENOSPC, as a full disk's do.
    fs.symlinkSync('/dev/full', path.join(stateDir, 'spool', '00000002.journal'));
    spool.create(runMsg('true', { key: '9:0:2' }), 2);
    spool.finish('9:0:2', result('9:0:2', 0));
    spool.finish('9:0:1', result('9:0:1', big.length));
    await waitUntil(() => logged.some((l) => l.startsWith('info the task spool writes again')));
    assert.match(logged[0] ?? '', /^warn the task spool cannot write.*ENOSPC/);
    await spool.close();
    assert.equal(journalFiles(stateDir).includes('00000002.journal'), false, 'the broken segment is deleted');

    const next = new TaskSpool(stateDir);
    const left = new Map(next.load().map((t) => [t.msg.key, t]));
    assert.deepEqual(left.get('9:0:2')?.result, result('9:0:2', 0), 'a task begun while broken');
    assert.deepEqual(left.get('9:0:1')?.result, result('9:0:1', big.length));
    assert.ok(next.readOutput('9:0:1', 0, big.length).equals(big), 'output written before, intact');
    await next.close();
  });

  it("is one agent's: a live agent's state directory is refused, a dead one's taken over", async () => {
    const stateDir = runners.stateDir();
    const lock = new URL('../src/state-dir-lock.js', import.meta.url).href;
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { claimStateDir } from ${JSON.stringify(lock)}; claimStateDir(process.argv[1]); console.log('held'); setInterval(() => {}, 1000);`,
        stateDir,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    assert.throws(
      () => new TaskSpool(stateDir),
      (err: unknown) => err instanceof StateDirInUse && err.message.includes(`pid ${holder.pid}`),
    );
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const spool = new TaskSpool(stateDir);
    spool.create(runMsg('true', { key: '9:0:1' }), 1);
    await spool.close();
    assert.equal(fs.existsSync(path.join(stateDir, 'agent.lock')), false, 'given up at close');
    assert.equal(TaskSpool.keysOnDisk(stateDir).length, 1);
  });
});

describe('SpoolJournal: syncing', () => {
  it('syncs writes a moment later, unless nothing written since still matters', async () => {
    const dir = path.join(runners.stateDir(), 'journal');
    const journal = new SpoolJournal(dir, 2 ** 20, false, 50);
    let syncs = 0;
    let matters = true;
    journal.onSync = () => syncs++;
    journal.needsSync = () => matters;
    journal.append([Buffer.from('kept until recorded')]);
    let written = false;
    journal.afterWritten(() => (written = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(written, true, 'written in the next turn of the event loop');
    assert.equal(syncs, 0, 'not synced at once');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(syncs, 1, 'synced after the delay');

    matters = false; // e.g. the server recorded the task meanwhile
    journal.append([Buffer.from('recorded at once')]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(syncs, 1, 'nothing left worth a sync');

    journal.append([Buffer.from('waited for')]);
    await journal.flushed();
    assert.equal(syncs, 2, 'whoever waits for durability gets a sync at once');
    await journal.close();
  });
});

describe('SpoolJournal: large batches', () => {
  it('runs what waits for the first records of a large batch before the rest is written, and the rest after', async () => {
    const dir = path.join(runners.stateDir(), 'journal');
    const journal = new SpoolJournal(dir, 2 ** 30, false, 50);
    const file = path.join(dir, `${String(journal.activeSegment).padStart(8, '0')}.journal`);
    const mib = (n: number) => Buffer.alloc(1024 * 1024, 97 + n);
    const seen: { record: number; fileBytes: number; read: string }[] = [];
    for (let i = 0; i < 12; i++) {
      const at = journal.append([mib(i)]);
      journal.afterWritten(() => {
        const b = Buffer.alloc(1);
        journal.read(at.segment, at.pos + 1000, b);
        seen.push({ record: i, fileBytes: fs.statSync(file).size, read: b.toString() });
        // Registered while the batch is written: runs once all of it is.
        if (i === 0)
          journal.afterWritten(() => seen.push({ record: -1, fileBytes: fs.statSync(file).size, read: '' }));
      });
    }
    await journal.flushed();
    const total = 12 * (1024 * 1024 + 8);
    assert.deepEqual(
      seen.map((s) => s.record),
      [...Array.from({ length: 12 }, (_, i) => i), -1],
    );
    assert.ok(
      (seen[0]?.fileBytes ?? total) < total,
      'the first record was reported before the last was written',
    );
    assert.ok(
      seen.every((s) => s.record < 0 || s.fileBytes >= (s.record + 1) * (1024 * 1024 + 8)),
      'never before its own record',
    );
    assert.equal(seen.at(-1)?.fileBytes, total);
    assert.equal(
      seen
        .filter((s) => s.record >= 0)
        .map((s) => s.read)
        .join(''),
      'abcdefghijkl',
    );
    await journal.close();
  });
});

describe('TaskRunner: group commit', () => {
  it('reports results only once they are in the spool file: a runner killed right after still has them all', async () => {
    const stateDir = runners.stateDir();
    const msgs = Array.from({ length: 30 }, (_, i) => runMsg(`echo task ${i}`));
    const fixture = fileURLToPath(new URL('./fixtures/task-runner-process.js', import.meta.url));
    const proc = spawn(process.execPath, [fixture, stateDir, ...msgs.map((m) => JSON.stringify(m))], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let printed = '';
    const finished = new Set<string>();
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => {
        printed += d.toString();
        const lines = printed.split('\n');
        printed = lines.pop() ?? '';
        for (const line of lines) {
          const ev = JSON.parse(line) as { type: string; result?: { key: string } };
          if (ev.type === 'finished' && ev.result) finished.add(ev.result.key);
        }
        // Killed the moment the last result was reported, before anything else can happen.
        if (finished.size === msgs.length) {
          proc.kill('SIGKILL');
          resolve();
        }
      });
      proc.once('exit', () => reject(new Error('the runner process exited before reporting every result')));
    });
    await new Promise((r) => proc.once('exit', r));
    const { runner, reports } = runners.open(stateDir);
    runner.resume({}, []);
    await runner.flushed();
    for (const [i, m] of msgs.entries()) {
      assert.equal(reports.results(m.key)[0]?.outcome, 'exited', `task ${i}`);
      assert.equal(reports.text(m.key), `task ${i}\n`);
    }
    assert.deepEqual(reports.violations, []);
  });
});
