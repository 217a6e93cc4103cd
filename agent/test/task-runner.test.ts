/**
 * The TaskRunner running real scripts in real child processes: outcomes, output order and
 * capping, params, languages, timeouts and kills of whole sessions.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { TAIL_WINDOW_BYTES } from '../src/output-cap.js';
import { defaultStarter, directStarter } from '../src/task-launcher.js';
import type { ProcessStarter } from '../src/task-launcher.js';
import { TaskRunner } from '../src/task-runner.js';
import { TaskSpool } from '../src/task-spool.js';
import {
  alive,
  eventually,
  killQuietly,
  pidsIn,
  scriptDirsAfterRecorded,
  scriptDirsOf,
} from './helpers/os-state.js';
import { RecordingReports, runMsg } from './helpers/recording-reports.js';
import { Runners } from './helpers/runners.js';

const runners = new Runners();
const setup = () => runners.open();
const strays: number[] = [];

after(async () => {
  await runners.cleanup();
  for (const pid of strays) killQuietly(pid);
});

const interpreterMissing = (name: string) =>
  ['/bin', '/usr/bin', '/usr/local/bin'].some((d) => fs.existsSync(`${d}/${name}`))
    ? false
    : `${name} is not installed on this machine`;

describe('TaskRunner: scripts and outcomes', () => {
  it('reports started, the output and a successful exit, and removes the script directory', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo hello\necho "cwd=$(pwd)"\n');
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'exited');
    assert.equal(r.exitCode, 0);
    assert.equal(r.message, '');
    assert.equal(r.droppedBytes, 0);
    assert.match(reports.text(msg.key), /^hello\ncwd=\S*jobfleet-task-/);
    assert.equal(reports.of(msg.key)[0]?.type, 'started');
    assert.equal(reports.count(msg.key, 'started'), 1);
    assert.deepEqual(reports.violations, []);
    assert.equal(scriptDirsOf(msg.key).length, 1, 'kept until the server recorded the result');
    assert.deepEqual(scriptDirsAfterRecorded(runner, msg.key), []);
    assert.ok(r.startTime <= r.endTime);
  });

  it('reads back only a plain variables file: a FIFO or a link in its place does not hold up or leak', async () => {
    const { runner, reports } = setup();
    const plain = { ...runMsg('printf "a\\0b\\0" > "$JOBFLEET_VARS_OUT"'), varsOut: true };
    runner.run(plain);
    const r1 = await reports.finishedResult(plain.key);
    assert.equal(Buffer.from(r1.vars ?? '', 'base64').toString(), 'a\0b\0');
    for (const body of [
      'rm -f "$JOBFLEET_VARS_OUT"; mkfifo "$JOBFLEET_VARS_OUT"',
      'rm -f "$JOBFLEET_VARS_OUT"; ln -s /etc/hostname "$JOBFLEET_VARS_OUT"',
    ]) {
      const msg = { ...runMsg(body), varsOut: true };
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'exited', body);
      assert.equal(r.vars, undefined, body);
    }
  });

  it('makes script directories under the script directory it is given, and removes them with what scripts left', async () => {
    const stateDir = runners.stateDir();
    const scriptDir = `${stateDir}/run/scripts`;
    const { runner, reports } = runners.open(stateDir, { scriptDir });
    assert.equal(fs.statSync(scriptDir).mode & 0o777, 0o711, 'created, passable for other accounts');
    const plain = runMsg('echo "cwd=$(pwd)"');
    const messy = runMsg('echo scratch > left.txt; mkdir -p sub/deeper; rm -f "$0"; echo done');
    runner.run(plain);
    runner.run(messy);
    await reports.finishedResult(plain.key);
    assert.equal((await reports.finishedResult(messy.key)).exitCode, 0);
    assert.ok(reports.text(plain.key).startsWith(`cwd=${scriptDir}/jobfleet-task-`), reports.text(plain.key));
    assert.equal(scriptDirsOf(plain.key, scriptDir).length, 1);
    assert.equal(scriptDirsOf(messy.key, scriptDir).length, 1);
    assert.deepEqual(scriptDirsOf(plain.key), [], 'nothing in the temporary directory');
    runner.recorded(plain.key);
    runner.recorded(messy.key);
    assert.deepEqual(fs.readdirSync(scriptDir), []);
  });

  it('reports empty output as zero bytes and no output frames', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('true');
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.equal(r.outputBytes, 0);
    assert.equal(reports.count(msg.key, 'output'), 0);
  });

  it('reports a non-zero exit code as exited with that code', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo failing; exit 3');
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 3]);
    assert.equal(reports.text(msg.key), 'failing\n');
  });

  it('reports death by a signal as 128 + its number', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('kill -KILL $$');
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 137]);
    assert.match(r.message, /SIGKILL/);
  });

  it('merges stdout and stderr in the order they were written', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('for i in $(seq 1 200); do echo out$i; echo err$i >&2; done');
    runner.run(msg);
    await reports.finishedResult(msg.key);
    const expected = Array.from({ length: 200 }, (_, i) => `out${i + 1}\nerr${i + 1}\n`).join('');
    assert.equal(reports.text(msg.key), expected);
  });

  it('splits params the way a shell command line does', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('for a in "$@"; do echo "[$a]"; done', { params: `'a b' c "d  e" f\\ g` });
    runner.run(msg);
    await reports.finishedResult(msg.key);
    assert.equal(reports.text(msg.key), '[a b]\n[c]\n[d  e]\n[f g]\n');
  });

  it('reports params the shell cannot parse in the output, as a failed exit', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('echo never', { params: `'unbalanced` });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'exited');
    assert.notEqual(r.exitCode, 0);
    assert.match(reports.text(msg.key), /quot|unterminated|EOF/i);
  });

  it('does not pass the agent settings (JOBFLEET_*) to scripts, only the task’s mark', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('env | grep ^JOBFLEET_ | cut -d= -f1');
    runner.run(msg);
    await reports.finishedResult(msg.key);
    assert.equal(reports.text(msg.key), 'JOBFLEET_TASK\n');
  });

  it('runs perl with params', { skip: interpreterMissing('perl') }, async () => {
    const { runner, reports } = setup();
    const msg = runMsg('print "perl:[$_]\\n" for @ARGV; exit 4;', { language: 'perl', params: `x 'y z'` });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 4]);
    assert.equal(reports.text(msg.key), 'perl:[x]\nperl:[y z]\n');
  });

  it('runs python3 with params', { skip: interpreterMissing('python3') }, async () => {
    const { runner, reports } = setup();
    const msg = runMsg('import sys\nprint("py:" + "|".join(sys.argv[1:]))\nsys.exit(5)\n', {
      language: 'python',
      params: `1 "2 3"`,
    });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 5]);
    assert.equal(reports.text(msg.key), 'py:1|2 3\n');
  });

  // SQL without a database login is refused the same way (sql-client.test.ts covers the rest).
  for (const language of ['bat', 'powershell'] as const) {
    it(`answers ${language} with outcome unsupported and starts nothing`, async () => {
      const { runner, reports } = setup();
      const msg = runMsg('echo hi', { language });
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'unsupported');
      assert.match(r.message, new RegExp(`${language} runs only on Windows hosts`));
      assert.equal(r.outputBytes, 0);
      assert.deepEqual(scriptDirsAfterRecorded(runner, msg.key), []);
      assert.equal(reports.count(msg.key, 'started'), 1);
    });
  }
});

describe('TaskRunner: timeouts, kills and stray processes', () => {
  const spawnChildren = 'sleep 1000 & echo "pid=$!"\nsleep 1000 & echo "pid=$!"\necho "pid=$$"\nsleep 1000\n';

  it('kills the whole process group on timeout', async () => {
    const { runner, reports } = setup();
    const msg = runMsg(spawnChildren, { timeoutSeconds: 1 });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    const pids = pidsIn(reports.text(msg.key));
    strays.push(...pids);
    assert.equal(r.outcome, 'timeout');
    assert.equal(r.exitCode, 137);
    assert.match(r.message, /1 s timeout/);
    assert.equal(pids.length, 3);
    // A SIGKILL lands when the target is next scheduled, not within the kill call.
    await eventually(() => pids.every((pid) => !alive(pid)), 'the timeout killed the whole group');
    assert.deepEqual(scriptDirsAfterRecorded(runner, msg.key), []);
  });

  it('kills the whole process group on request, and a later kill changes nothing', async () => {
    const { runner, reports } = setup();
    const msg = runMsg(spawnChildren);
    runner.run(msg);
    await reports.outputMatching(msg.key, /(pid=\d+\n){3}/);
    runner.kill(msg.key);
    const r = await reports.finishedResult(msg.key);
    const pids = pidsIn(reports.text(msg.key));
    strays.push(...pids);
    assert.deepEqual([r.outcome, r.exitCode], ['killed', 137]);
    await eventually(() => pids.every((pid) => !alive(pid)), 'the kill reached the whole group');
    runner.kill(msg.key);
    runner.kill('999:0:1');
    const count = reports.events.length;
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(reports.events.length, count);
    assert.equal(reports.results(msg.key).length, 1);
  });

  it('kills what the script started in process groups of their own (timeout, set -m) on timeout', async () => {
    const { runner, reports } = setup();
    // `timeout` puts itself and its command in a group of their own, in the script's session.
    const msg = runMsg(`timeout 600 sh -c 'echo "pid=$$"; exec sleep 1000'`, { timeoutSeconds: 1 });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    const pids = pidsIn(reports.text(msg.key));
    strays.push(...pids);
    assert.equal(r.outcome, 'timeout');
    assert.equal(pids.length, 1);
    await eventually(() => pids.every((pid) => !alive(pid)), 'the timeout killed every group of the session');
  });

  it('kills of many tasks in one turn reach every group of each session', async () => {
    const { runner, reports } = setup();
    const msgs = Array.from({ length: 24 }, () =>
      runMsg(`timeout 600 sh -c 'echo "pid=$$"; exec sleep 1000' & echo "pid=$!"; wait`),
    );
    for (const m of msgs) runner.run(m);
    for (const m of msgs) await reports.outputMatching(m.key, /pid=\d+\n[\s\S]*pid=\d+\n/);
    const pids = msgs.flatMap((m) => pidsIn(reports.text(m.key)));
    strays.push(...pids);
    assert.equal(pids.length, 2 * msgs.length);
    for (const m of msgs) runner.kill(m.key);
    for (const m of msgs) assert.equal((await reports.finishedResult(m.key)).outcome, 'killed');
    await eventually(() => pids.every((pid) => !alive(pid)), 'every group of every session killed');
  });

  it('finishes when the script exits even though a background child keeps the output open', async () => {
    const { runner, reports } = setup();
    const msg = runMsg('sleep 1000 & echo "pid=$!"\necho script done\n');
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    const [pid] = pidsIn(reports.text(msg.key));
    assert.ok(pid);
    strays.push(pid);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 0]);
    assert.match(reports.text(msg.key), /script done\n$/);
    // Started things keep running after their script, as daemons started by a script must.
    assert.equal(alive(pid), true);
    killQuietly(pid);
  });

  it('does not let a task printing without pause or a long one hold up another', async () => {
    const { runner, reports } = setup();
    const flood = runMsg('yes flood', { logCapBytes: 64 * 1024 });
    const long = runMsg('sleep 1000');
    const quick = runMsg('echo quick');
    runner.run(flood);
    runner.run(long);
    await reports.outputMatching(flood.key, /flood\n/);
    runner.run(quick);
    await reports.finishedResult(quick.key);
    assert.equal(reports.text(quick.key), 'quick\n');
    assert.equal(reports.results(flood.key).length, 0);
    assert.equal(reports.results(long.key).length, 0);
    runner.kill(flood.key);
    runner.kill(long.key);
    const f = await reports.finishedResult(flood.key);
    await reports.finishedResult(long.key);
    assert.equal(f.outcome, 'killed');
    assert.ok(f.outputBytes <= 64 * 1024 + 200, 'the flood stays within its cap');
    assert.deepEqual(reports.violations, []);
  });
});

describe('TaskRunner: output cap', () => {
  /** A perl script printing n bytes of a repeating alphabet in a single write. */
  const printPattern = (n: number) =>
    runMsg(`print substr("abcdefghijklmnopqrstuvwxyz" x ${Math.ceil(n / 26)}, 0, ${n});`, {
      language: 'perl',
    });
  const pattern = (n: number) =>
    Buffer.from('abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(n / 26))).subarray(0, n);

  // Small caps split in halves; a cap past twice the tail window keeps only the window as its tail.
  for (const [cap, printed] of [
    [1000, 3000],
    [1024 * 1024, 3 * 1024 * 1024],
    [2 * TAIL_WINDOW_BYTES + 4 * 1024 * 1024, 3 * TAIL_WINDOW_BYTES],
  ] as const) {
    it(`keeps head, marker with the exact dropped count, and tail when printing past the cap (${cap})`, async () => {
      const { runner, reports, stateDir } = setup();
      const msg = { ...printPattern(printed), logCapBytes: cap };
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      const tailBytes = Math.min(cap / 2, TAIL_WINDOW_BYTES);
      const headBytes = cap - tailBytes;
      const dropped = printed - cap;
      const all = pattern(printed);
      const head = all.subarray(0, headBytes);
      const tail = all.subarray(all.length - tailBytes);
      const marker = `\n[jobfleet: ${dropped} bytes of output dropped here; the log keeps the first ${headBytes} and the last ${tailBytes} bytes]\n`;
      const out = reports.outputOf(msg.key);
      assert.equal(r.droppedBytes, dropped);
      assert.equal(out.length, cap + marker.length);
      assert.ok(out.subarray(0, headBytes).equals(head));
      assert.equal(out.subarray(headBytes, headBytes + marker.length).toString(), marker);
      assert.ok(out.subarray(headBytes + marker.length).equals(tail));
      assert.deepEqual(reports.violations, []);
      // What the spool holds is what was sent: a resend from 0 gives the same bytes.
      const resent = new RecordingReports();
      const again = new TaskRunner(stateDir, resent);
      again.resume({ [msg.key]: 0 }, []);
      // A resend of more than one turn's share goes on after `resume` returned.
      const result = await resent.finishedResult(msg.key);
      assert.ok(resent.outputOf(msg.key).equals(out));
      assert.equal(result.outputBytes, out.length);
    });
  }

  it('sends output exactly at the cap in full, without a marker', async () => {
    const { runner, reports } = setup();
    const msg = { ...printPattern(4096), logCapBytes: 4096 };
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.equal(r.droppedBytes, 0);
    assert.deepEqual(reports.outputOf(msg.key), pattern(4096));
    assert.equal(r.outputBytes, 4096);
  });
});

describe('TaskRunner: a task is run once', () => {
  it('never runs again a task the server told it to forget', async () => {
    const { runner, reports } = setup();
    const marker = `${runners.stateDir()}/ran`;
    const msg = runMsg(`echo ran >> ${marker}`);
    runner.run(msg);
    await reports.finishedResult(msg.key);
    // Its agent moved to a server that already holds the result: forgotten, not recorded.
    runner.resume({}, [msg.key]);
    // A `task.run` of the same attempt sent late (an outbox claim that read it unfinished).
    runner.run(msg);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(fs.readFileSync(marker, 'utf8'), 'ran\n');
  });

  it('starts a script only once its task is in the spool file', async () => {
    // An agent killed after the start must find the task when it comes back (and report it
    // lost), or it runs it again when the server sends it again.
    const stateDir = runners.stateDir();
    const msg = runMsg('echo started');
    const launcher = defaultStarter();
    const spooledAtStart: boolean[] = [];
    const starter: ProcessStarter = {
      joinsOutput: launcher.joinsOutput,
      start: (req, events) => {
        spooledAtStart.push(TaskSpool.keysOnDisk(stateDir).includes(msg.key));
        return launcher.start(req, events);
      },
      close: () => launcher.close(),
    };
    const { runner, reports } = runners.open(stateDir, { starter });
    try {
      runner.run(msg);
      assert.equal((await reports.finishedResult(msg.key)).outcome, 'exited');
      assert.deepEqual(spooledAtStart, [true]);
      assert.equal(reports.text(msg.key), 'started\n');
    } finally {
      launcher.close();
    }
  });

  it('does not quote a parameter it cannot pass (a NUL in it) in the result', async () => {
    const { runner, reports, stateDir } = runners.open(undefined, { starter: directStarter });
    const msg = runMsg('echo never', { params: 'sekrit\0rest' });
    runner.run(msg);
    const r = await reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'spawn_failed');
    assert.equal(r.message, 'a script parameter or variable value holds a NUL character');
    for (const f of fs.readdirSync(stateDir, { recursive: true, encoding: 'utf8' })) {
      const file = `${stateDir}/${f}`;
      if (fs.statSync(file).isFile()) assert.ok(!fs.readFileSync(file, 'latin1').includes('sekrit'), f);
    }
  });

  it('does not start a script killed before its task was spooled', async () => {
    const { runner, reports } = setup();
    const marker = `${runners.stateDir()}/ran`;
    const msg = runMsg(`echo ran >> ${marker}`);
    runner.run(msg);
    runner.kill(msg.key);
    const r = await reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['killed', -1]);
    assert.equal(fs.existsSync(marker), false);
    assert.deepEqual(scriptDirsOf(msg.key), []);
  });
});
