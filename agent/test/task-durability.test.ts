/**
 * What the TaskRunner keeps across a lost connection and an agent restart: resending output
 * from the server's offset, forgetting, recording, duplicate dispatch, shutdown, and a runner
 * process killed outright while a task ran.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { RunScript } from '@jobfleet/protocol';
import { alive, eventually, killQuietly, pidsIn, scriptDirsOf } from './helpers/os-state.js';
import { runMsg } from './helpers/recording-reports.js';
import type { RecordingReports, Reported } from './helpers/recording-reports.js';
import { Runners } from './helpers/runners.js';
import { RESEND_HIGH_WATER } from '../src/output-resend.js';
import type { TaskRunner } from '../src/task-runner.js';
import { TaskSpool } from '../src/task-spool.js';

const runners = new Runners();
const setup = (stateDir?: string) => runners.open(stateDir);
const strays: number[] = [];

after(async () => {
  await runners.cleanup();
  for (const pid of strays) killQuietly(pid);
});

/** Whether the spool on disk holds the task, once everything said so far is written. */
async function spooled(runner: TaskRunner, stateDir: string, key: string): Promise<boolean> {
  await runner.flushed();
  return TaskSpool.keysOnDisk(stateDir).includes(key);
}

/** A TaskRunner in a process of its own (fixtures/task-runner-process.ts), running `tasks`. */
function startRunnerProcess(stateDir: string, flags: string[], tasks: RunScript[]) {
  const fixture = fileURLToPath(new URL('./fixtures/task-runner-process.js', import.meta.url));
  const proc = spawn(
    process.execPath,
    [fixture, stateDir, ...flags, ...tasks.map((t) => JSON.stringify(t))],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let printed = '';
  proc.stdout.on('data', (d: Buffer) => (printed += d.toString()));
  const lines = () =>
    printed
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; key?: string; data?: string; result?: { key: string } });
  const textOf = (key: string) =>
    lines()
      .filter((l) => l.type === 'output' && l.key === key)
      .map((l) => Buffer.from(l.data ?? '', 'base64').toString())
      .join('');
  return { proc, lines, textOf };
}

describe('TaskRunner: dispatch and record', () => {
  it('runs a key once however often it is dispatched, also after it finished or was recorded', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo once');
    runner.run(msg);
    runner.run(msg);
    await reports.finishedResult(msg.key);
    runner.run(msg);
    runner.recorded(msg.key);
    runner.run(msg);
    assert.equal(reports.count(msg.key, 'started'), 1);
    assert.equal(reports.count(msg.key, 'finished'), 1);
    assert.equal(reports.text(msg.key), 'once\n');
    assert.deepEqual(runner.held(), []);
  });

  it('ignores recorded for a task still running, and drops the spool once recorded after it ended', async () => {
    const { runner, reports, stateDir } = setup();
    const msg = runMsg('echo go; sleep 1000');
    runner.run(msg);
    await reports.outputMatching(msg.key, /go\n/);
    runner.recorded(msg.key);
    assert.deepEqual(runner.held(), [{ key: msg.key, outputBytes: 3, finished: false }]);
    runner.kill(msg.key);
    await reports.finishedResult(msg.key);
    assert.deepEqual(runner.held(), [{ key: msg.key, outputBytes: 3, finished: true }]);
    assert.ok(await spooled(runner, stateDir, msg.key));
    runner.recorded(msg.key);
    assert.deepEqual(runner.held(), []);
    assert.equal(await spooled(runner, stateDir, msg.key), false);
  });
});

describe('TaskRunner: resume after a reconnect', () => {
  it('resends output past the stored offset, then the result, for a finished task', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('printf 0123456789; exit 2');
    runner.run(msg);
    const first = await reports.finishedResult(msg.key);
    runner.resume({ [msg.key]: 4 }, []);
    const resent = reports.of(msg.key).slice(-2);
    assert.deepEqual(
      resent.map((e) => (e.type === 'output' ? [e.offset, e.data.toString()] : e.type)),
      [[4, '456789'], 'finished'],
    );
    assert.deepEqual(await reports.finishedResult(msg.key, 2), first);
    // The server already has everything: only the result again.
    runner.resume({ [msg.key]: 10 }, []);
    assert.equal(reports.of(msg.key).at(-1)?.type, 'finished');
    assert.equal(reports.count(msg.key, 'output'), 2);
    assert.deepEqual(reports.violations, []);
  });

  it('resends the missed part of a running task and goes on streaming after it', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo one; while [ ! -e go ]; do sleep 0.05; done; echo two');
    runner.run(msg);
    await reports.outputMatching(msg.key, /one\n/);
    runner.resume({ [msg.key]: 1 }, []);
    const last = reports.of(msg.key).at(-1);
    assert.ok(last?.type === 'output' && last.offset === 1 && last.data.toString() === 'ne\n');
    // The script waits for a file in its working directory; the runner put it in the temp dir.
    const [dir] = scriptDirsOf(msg.key);
    assert.ok(dir);
    fs.writeFileSync(path.join(os.tmpdir(), dir, 'go'), '');
    const r = await reports.finishedResult(msg.key);
    assert.equal(reports.text(msg.key), 'one\ntwo\n');
    assert.equal(r.outputBytes, 8);
    assert.deepEqual(reports.violations, []);
  });

  /** A task printing `bytes` x's, then `tail` once the file `go` exists in `dir`. */
  const printsThenWaits = (dir: string, bytes: number) =>
    runMsg(
      `head -c ${bytes} /dev/zero | tr '\\0' x; while [ ! -e '${dir}/go' ]; do sleep 0.05; done; echo tail`,
      {
        logCapBytes: 16 * 1024 * 1024,
      },
    );
  const outputsAfter = (reports: RecordingReports, key: string, from: number) =>
    reports.events
      .slice(from)
      .filter((e): e is Extract<Reported, { type: 'output' }> => e.type === 'output' && e.key === key);

  it('resends only while the connection has room, holds back the live output and the result of a task being resent', async () => {
    const { runner, reports } = setup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-test-resend-'));
    const printed = 3 * 1024 * 1024;
    const msg = printsThenWaits(dir, printed);
    runner.run(msg);
    await reports.until(() => (reports.outputOf(msg.key).length === printed ? true : undefined), 'the x’s');
    reports.queued = RESEND_HIGH_WATER;
    const resumedAt = reports.events.length;
    runner.resume({ [msg.key]: 0 }, []);
    assert.deepEqual(
      outputsAfter(reports, msg.key, resumedAt),
      [],
      'nothing is sent while the socket is full',
    );
    // The task prints its last line and ends meanwhile: neither may overtake the resend.
    fs.writeFileSync(path.join(dir, 'go'), '');
    await eventually(() => runner.held()[0]?.finished === true, 'the task ended');
    await runner.flushed();
    assert.deepEqual(reports.events.slice(resumedAt), [], 'live output and the result wait for the resend');
    reports.queued = 0;
    const r = await reports.finishedResult(msg.key);
    const resent = outputsAfter(reports, msg.key, resumedAt);
    assert.deepEqual(
      resent.map((e) => [e.offset, e.data.length]),
      [
        [0, 1024 * 1024],
        [1024 * 1024, 1024 * 1024],
        [2 * 1024 * 1024, 1024 * 1024],
        [printed, 5],
      ],
    );
    assert.equal(reports.events.at(-1)?.type, 'finished');
    assert.equal(r.outputBytes, printed + 5);
    assert.equal(Buffer.concat(resent.map((e) => e.data)).toString(), `${'x'.repeat(printed)}tail\n`);
    assert.deepEqual(reports.violations, []);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a task caught up by the resend streams live again; a resend whose connection is gone stops, the next one starts over', async () => {
    const { runner, reports } = setup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-test-resend-'));
    const printed = 2 * 1024 * 1024;
    const msg = printsThenWaits(dir, printed);
    runner.run(msg);
    await reports.until(() => (reports.outputOf(msg.key).length === printed ? true : undefined), 'the x’s');
    // The connection is gone after the first frame: the resend stops there.
    reports.queued = 0;
    let frames = 0;
    const output = reports.output.bind(reports);
    reports.output = (key, offset, data) => {
      output(key, offset, data);
      if (++frames === 1) reports.queued = undefined;
    };
    const firstAt = reports.events.length;
    runner.resume({ [msg.key]: 0 }, []);
    assert.deepEqual(
      outputsAfter(reports, msg.key, firstAt).map((e) => e.offset),
      [0],
      'one frame, then nothing once the connection is gone',
    );
    // The next welcome: the server has the first MiB.
    reports.queued = 0;
    const secondAt = reports.events.length;
    runner.resume({ [msg.key]: 1024 * 1024 }, []);
    assert.deepEqual(
      outputsAfter(reports, msg.key, secondAt).map((e) => [e.offset, e.data.length]),
      [[1024 * 1024, 1024 * 1024]],
    );
    fs.writeFileSync(path.join(dir, 'go'), '');
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual(
      outputsAfter(reports, msg.key, secondAt).map((e) => [e.offset, e.data.length]),
      [
        [1024 * 1024, 1024 * 1024],
        [printed, 5],
      ],
      'the rest went out live, once',
    );
    assert.equal(r.outputBytes, printed + 5);
    assert.deepEqual(reports.violations, []);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports started again for a task the server has no offset for', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo x');
    runner.run(msg);
    await reports.finishedResult(msg.key);
    runner.resume({}, []);
    assert.deepEqual(
      reports.of(msg.key).map((e) => e.type),
      ['started', 'output', 'finished', 'started', 'output', 'finished'],
    );
  });

  it('forgets tasks: kills a running one without a result, drops its spool and its processes', async () => {
    const { runner, reports, stateDir } = setup();
    const running = runMsg('echo "pid=$$"; sleep 1000 & echo "pid=$!"; wait');
    const done = runMsg('echo done');
    runner.run(running);
    runner.run(done);
    await reports.finishedResult(done.key);
    const [pid1, pid2] = (await reports.outputMatching(running.key, /pid=(\d+)\npid=(\d+)\n/))
      .slice(1)
      .map(Number);
    assert.ok(pid1 && pid2);
    strays.push(pid1, pid2);
    runner.resume({}, [running.key, done.key, '12345:0:9']);
    assert.deepEqual(runner.held(), []);
    assert.equal(await spooled(runner, stateDir, running.key), false);
    assert.equal(await spooled(runner, stateDir, done.key), false);
    await eventually(() => !alive(pid1) && !alive(pid2), 'the forgotten task is dead');
    await eventually(() => scriptDirsOf(running.key).length === 0, 'its script directory is gone');
    assert.equal(reports.count(running.key, 'finished'), 0);
    assert.equal(await spooled(runner, stateDir, running.key), false);
  });
});

describe('TaskRunner: agent stop and restart', () => {
  it('on close, kills running tasks and keeps them as lost for the next run of the agent', async () => {
    const { runner, reports, stateDir } = setup();
    const msg = runMsg('echo "pid=$$"; sleep 1000');
    runner.run(msg);
    const [, pid] = (await reports.outputMatching(msg.key, /pid=(\d+)\n/)).map(Number);
    assert.ok(pid);
    strays.push(pid);
    await runner.close();
    const r = reports.results(msg.key)[0];
    assert.equal(r?.outcome, 'lost');
    assert.match(r?.message ?? '', /agent stopped/);
    assert.equal(alive(pid), false);
    assert.deepEqual(scriptDirsOf(msg.key), []);
    runner.run(runMsg('echo too late'));
    assert.equal(reports.events.filter((e) => e.key !== msg.key).length, 0);

    const next = setup(stateDir);
    next.runner.resume({ [msg.key]: 0 }, []);
    await next.runner.flushed(); // the restart spooled the lost result; the resend follows it
    assert.deepEqual(next.reports.results(msg.key), [r]);
    assert.equal(next.reports.text(msg.key), reports.text(msg.key));
  });

  // Through the launcher, the scripts die with the agent (the launcher kills them when it sees the
  // agent gone); started by the agent itself, they outlive it. Either way the restart reports
  // them lost and kills what is left of them.
  for (const starter of ['launcher', 'direct'] as const)
    it(`after the agent process died (${starter} starter): resends finished results, reports running tasks lost and kills them`, async () => {
      const stateDir = runners.stateDir();
      const quick = runMsg('echo quick; exit 7');
      const slow = runMsg('echo "pid=$$"; sleep 1000 & echo "pid=$!"; wait');
      const { proc, lines, textOf } = startRunnerProcess(stateDir, starter === 'direct' ? ['--direct'] : [], [
        quick,
        slow,
      ]);
      const slowText = () => textOf(slow.key);
      await eventually(
        () => lines().some((l) => l.result?.key === quick.key) && pidsIn(slowText()).length === 2,
        'the runner process finished one task and started the other',
      );
      const pids = pidsIn(slowText());
      strays.push(...pids);
      // The runner process's children: its launcher, or the script itself.
      const children = fs
        .readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8')
        .split(' ')
        .filter(Boolean)
        .map(Number);
      if (starter === 'launcher') assert.equal(children.length, 1, 'one launcher started the scripts');
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
      if (starter === 'launcher') {
        await eventually(
          () => children.every((pid) => !alive(pid)),
          'the task launcher exited with its agent',
        );
        await eventually(() => pids.every((pid) => !alive(pid)), 'the launcher killed the running script');
      } else {
        assert.deepEqual(
          pids.map((pid) => alive(pid)),
          [true, true],
          'the script outlives its runner process',
        );
      }
      assert.equal(scriptDirsOf(slow.key).length, 1);
      assert.equal(scriptDirsOf(quick.key).length, 1, 'a finished task keeps its directory until recorded');

      const { runner, reports } = setup(stateDir);
      // A SIGKILL lands when the target is next scheduled, not within the kill call.
      await eventually(
        () => pids.every((pid) => !alive(pid)),
        'the restart killed what the lost task left running',
      );
      assert.deepEqual(scriptDirsOf(slow.key), []);
      assert.deepEqual(scriptDirsOf(quick.key), []);
      const held = runner.held().sort((a, b) => a.key.localeCompare(b.key));
      const slowBytes = Buffer.byteLength(slowText());
      assert.deepEqual(
        held,
        [
          { key: quick.key, outputBytes: 6, finished: true },
          { key: slow.key, outputBytes: slowBytes, finished: true },
        ].sort((a, b) => a.key.localeCompare(b.key)),
      );
      runner.resume({ [quick.key]: 0 }, []);
      await runner.flushed(); // the restart spooled the lost result; the resend follows it
      const q = reports.results(quick.key)[0];
      assert.deepEqual([q?.outcome, q?.exitCode, q?.outputBytes], ['exited', 7, 6]);
      assert.equal(reports.text(quick.key), 'quick\n');
      const s = reports.results(slow.key)[0];
      assert.deepEqual([s?.outcome, s?.outputBytes], ['lost', slowBytes]);
      assert.match(s?.message ?? '', /agent restarted/);
      assert.equal(reports.text(slow.key), slowText());
      assert.equal(reports.count(slow.key, 'started'), 1);
      assert.deepEqual(reports.violations, []);
      for (const pid of pids) killQuietly(pid);
    });

  it('after the agent died before writing down a script’s pid: the restart finds its session by the mark in its environment and kills it, not a daemon it started', async () => {
    const stateDir = runners.stateDir();
    const slow = runMsg(
      'echo "pid=$$"; sleep 1000 & echo "pid=$!"; setsid sleep 1001 >/dev/null 2>&1 & echo "daemon=$!"; wait',
    );
    const { proc, textOf } = startRunnerProcess(stateDir, ['--unrecorded'], [slow]);
    const slowText = () => textOf(slow.key);
    const daemonOf = () => Number(/daemon=(\d+)/.exec(slowText())?.[1] ?? 0);
    const sessionOf = (pid: number) => {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    };
    await eventually(
      () => pidsIn(slowText()).length === 2 && daemonOf() > 0 && sessionOf(daemonOf()) === daemonOf(),
      'the script started its child and its daemon',
    );
    const pids = pidsIn(slowText());
    const daemon = daemonOf();
    strays.push(...pids, daemon);
    assert.equal(sessionOf(pids[1] ?? 0), pids[0], 'the script leads its session');
    const spooled = new TaskSpool(stateDir, { readOnly: true }).load().find((t) => t.msg.key === slow.key);
    assert.ok(spooled, 'the spool holds the task');
    assert.equal(spooled.process, undefined, 'the spool does not know its pid');
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    assert.deepEqual(
      [...pids, daemon].map(alive),
      [true, true, true],
      'the script outlives its runner process',
    );

    const { runner, reports } = setup(stateDir);
    await eventually(() => pids.every((pid) => !alive(pid)), 'the restart killed the script’s session');
    // Killed together with the session, the daemon would be gone by now as well.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alive(daemon), true, 'a daemon the script started is left alone');
    runner.resume({}, []);
    await runner.flushed();
    assert.equal(reports.results(slow.key)[0]?.outcome, 'lost');
    killQuietly(daemon);
  });
});
