/**
 * The task launchers (task-launcher.ts; launcher/task-launcher.py and task-launcher.pl) and the
 * fallback that spawns from the agent itself: the same outcomes every way, and what happens when
 * a launcher dies. Every other TaskRunner test runs its scripts through the launcher this
 * machine prefers (python3's).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { alive, eventually, killQuietly, pidsIn, tempStateDir } from './helpers/os-state.js';
import { RecordingReports, runMsg } from './helpers/recording-reports.js';
import { LAUNCHERS, TaskLauncher, defaultStarter, directStarter } from '../src/task-launcher.js';
import { findExecutable } from '../src/script-runner.js';
import type { ProcessStarter } from '../src/task-launcher.js';
import { TaskRunner } from '../src/task-runner.js';

const opened: { runner: TaskRunner; stateDir: string; starter: ProcessStarter }[] = [];
const strays: number[] = [];

after(async () => {
  for (const o of opened) {
    await o.runner.close();
    o.starter.close();
    fs.rmSync(o.stateDir, { recursive: true, force: true });
  }
  for (const pid of strays) killQuietly(pid);
});

function open(starter: ProcessStarter): { runner: TaskRunner; reports: RecordingReports } {
  const stateDir = tempStateDir();
  const reports = new RecordingReports();
  const runner = new TaskRunner(stateDir, reports, { starter });
  opened.push({ runner, stateDir, starter });
  return { runner, reports };
}

/** Both launchers, each on this machine's interpreter: python3's first, as the agent prefers it. */
const launchers = LAUNCHERS.map((l) => {
  const interpreter = findExecutable([...l.names]);
  assert.ok(interpreter, `this machine has ${l.names.join(' or ')}`);
  return { name: `${l.names[0]} launcher`, make: () => new TaskLauncher(interpreter, l.script) };
});
const perl = launchers[1];
assert.ok(perl);

/**
 * Starts a program through a launcher (in `/` with only PATH set, unless told otherwise): its pid,
 * output (and in how many pieces it came) and exit code once it ended, or why it did not start.
 */
function runThrough(
  launcher: TaskLauncher,
  file: string,
  args: string[],
  where: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ pid: number; out: string; pieces: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let pid = 0;
    let code: number | null = null;
    let ends = 0;
    const ended = () => {
      if (++ends === 2) resolve({ pid, out: Buffer.concat(out).toString('utf8'), pieces: out.length, code });
    };
    launcher.start(
      { file, args, cwd: where.cwd ?? '/', env: where.env ?? { PATH: '/usr/bin:/bin' } },
      {
        started: (p) => (pid = p),
        failed: (message) => reject(new Error(message)),
        output: (chunk) => out.push(Buffer.from(chunk)),
        exit: (c) => {
          code = c;
          ended();
        },
        closed: ended,
      },
    );
  });
}

/** The fields of /proc/<pid>/stat after the command's name: state, ppid, pgrp, session, … */
function statFields(pid: number): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The launcher's pid: the parent of a process it started. */
function parentOf(pid: number): number {
  return Number(statFields(pid)[1]);
}

describe('choosing a launcher', () => {
  it("takes python3's only where it is 3.9 or later (its subprocess switches users from then on)", () => {
    const [python] = LAUNCHERS;
    const found = findExecutable([...python.names]);
    assert.ok(found);
    assert.equal(python.usable(found), true);
    // An interpreter that fails the version check (as 3.8 would) is passed over, for perl's.
    assert.equal(python.usable('/bin/false'), false);
  });
});

describe('starting task processes', () => {
  assert.ok(
    defaultStarter() instanceof TaskLauncher,
    'this machine has python3: tasks go through its launcher',
  );

  for (const [name, starter] of [
    ...launchers.map((l) => [l.name, l.make()] as const),
    ['spawn from the agent', directStarter] as const,
  ]) {
    it(`${name}: output in order, exit code, timeout, and a background child that keeps the pipe`, async () => {
      const { runner, reports } = open(starter);
      const plain = runMsg('echo out; echo err >&2; exit 5');
      const slow = runMsg('echo started; sleep 30', { timeoutSeconds: 1 });
      const daemon = runMsg('sleep 30 & echo "pid=$!"');
      for (const m of [plain, slow, daemon]) runner.run(m);
      const [p, t, d] = await Promise.all([plain, slow, daemon].map((m) => reports.finishedResult(m.key)));
      strays.push(...pidsIn(reports.text(daemon.key)));
      assert.deepEqual([p?.outcome, p?.exitCode, reports.text(plain.key)], ['exited', 5, 'out\nerr\n']);
      assert.deepEqual([t?.outcome, t?.exitCode, reports.text(slow.key)], ['timeout', 137, 'started\n']);
      assert.deepEqual([d?.outcome, d?.exitCode], ['exited', 0]);
    });

    it(`${name}: a NUL in an environment value fails the task before anything runs`, async () => {
      const { runner, reports } = open(starter);
      const marker = path.join(tempStateDir(), 'ran');
      const msg = {
        ...runMsg(`touch ${marker}`),
        env: { JOBFLEET_CIPHER_x: `a\0/bin/sh\0-c\0touch ${marker}` },
      };
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'spawn_failed');
      assert.equal(fs.existsSync(marker), false);
    });
  }

  for (const l of launchers)
    it(`${l.name}: one that dies ends its running tasks as lost, kills them, and the next task gets a new one`, async () => {
      const { runner, reports } = open(l.make());
      const msg = runMsg('echo "pid=$$"; sleep 30');
      runner.run(msg);
      const [pid] = pidsIn((await reports.outputMatching(msg.key, /pid=\d+/))[0]);
      assert.ok(pid);
      strays.push(pid);
      const launcher = parentOf(pid);
      process.kill(launcher, 'SIGKILL');
      const lost = await reports.finishedResult(msg.key);
      assert.equal(lost.outcome, 'lost');
      assert.match(lost.message, /launcher/);
      const deadline = Date.now() + 5000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(alive(pid), false, 'the task process does not run on unreported');
      const next = runMsg('echo again');
      runner.run(next);
      assert.equal((await reports.finishedResult(next.key)).exitCode, 0);
      assert.equal(reports.text(next.key), 'again\n');
    });
});

describe('a task that cannot start', () => {
  for (const l of launchers)
    it(`${l.name}: is failed with why in words, naming what was missing`, async () => {
      const launcher = l.make();
      const gone = path.join(tempStateDir(), 'gone');
      try {
        await assert.rejects(
          runThrough(launcher, '/bin/sh', ['sh', '-c', 'echo never'], { cwd: gone }),
          (err: Error) => {
            assert.match(err.message, /No such file or directory/);
            assert.ok(err.message.includes(gone) && !err.message.includes(`b'`), err.message);
            return true;
          },
        );
      } finally {
        launcher.close();
      }
    });
});

describe('output of a task printing fast', () => {
  for (const l of launchers)
    it(`${l.name}: reaches the agent byte for byte, in pieces much larger than the writes of the task`, async () => {
      const line = 'jobfleet launcher test line 0123456789 abcdefghijklmnopqrstuvwxyz\n';
      const bytes = 4 * 1024 * 1024;
      const launcher = l.make();
      try {
        const { out, pieces, code } = await runThrough(launcher, '/bin/sh', [
          'sh',
          '-c',
          `yes '${line.trimEnd()}' | head -c ${bytes}`,
        ]);
        assert.equal(code, 0);
        assert.equal(Buffer.byteLength(out), bytes);
        assert.ok(out === line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes), 'byte for byte');
        // `head` writes 8 KiB at a time: relayed as soon as each arrives, that would be 512 pieces
        // (each an output frame to spool, send and store).
        assert.ok(pieces <= bytes / (32 * 1024), `${pieces} pieces`);
      } finally {
        launcher.close();
      }
    });
});

describe('the launcher and task environments', () => {
  /** Runs `env` through the launcher with the given environment; its output, one variable a line. */
  async function envOf(launcher: TaskLauncher, env: Record<string, string>): Promise<string[]> {
    const { out } = await runThrough(launcher, '/usr/bin/env', ['env'], { env });
    return out.split('\n').filter(Boolean).sort();
  }

  for (const l of launchers)
    it(`${l.name}: gives each task exactly its own environment, never the launcher's`, async () => {
      // The launcher is the agent's child: it inherits the agent's settings, which tasks must not see.
      process.env.JOBFLEET_LAUNCHER_TEST_SECRET = 'agent-only';
      const launcher = l.make();
      try {
        const a = { PATH: '/usr/bin:/bin', ONLY_A: '1' };
        const b = { PATH: '/usr/bin:/bin', ONLY_B: 'x=y' };
        assert.deepEqual(await envOf(launcher, {}), []);
        assert.deepEqual(await envOf(launcher, a), ['ONLY_A=1', 'PATH=/usr/bin:/bin']);
        assert.deepEqual(await envOf(launcher, a), ['ONLY_A=1', 'PATH=/usr/bin:/bin']);
        assert.deepEqual(await envOf(launcher, b), ['ONLY_B=x=y', 'PATH=/usr/bin:/bin']);
        assert.deepEqual(await envOf(launcher, a), ['ONLY_A=1', 'PATH=/usr/bin:/bin']);
        assert.deepEqual(await envOf(launcher, {}), []);
      } finally {
        delete process.env.JOBFLEET_LAUNCHER_TEST_SECRET;
        launcher.close();
      }
    });
});

describe("an idle perl launcher's spare child", () => {
  /** Live children of `pid` (zombies left out). */
  function childrenOf(pid: number): number[] {
    return fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => {
        try {
          const f = statFields(p);
          return Number(f[1]) === pid && f[0] !== 'Z';
        } catch {
          return false;
        }
      });
  }

  /** The launcher's one child once it is the only one, and differs from `not`. */
  async function spareOf(launcher: number, not = 0): Promise<number> {
    let spare = 0;
    await eventually(() => {
      const kids = childrenOf(launcher);
      spare = kids.length === 1 && kids[0] !== not ? (kids[0] ?? 0) : 0;
      return spare > 0;
    }, 'the launcher holds one new spare');
    return spare;
  }

  it('waits in a session of its own, runs the next task, is replaced when it dies, and goes with its launcher', async () => {
    const launcher = perl.make();
    try {
      // Other tests' launchers may still run: this one is the first task's parent.
      const first = await runThrough(launcher, '/bin/sh', ['sh', '-c', 'echo $PPID']);
      const launcherPid = Number(first.out);
      assert.ok(launcherPid, 'the launcher runs');
      const spare = await spareOf(launcherPid);
      // It calls setsid first thing after the fork.
      await eventually(() => Number(statFields(spare)[3]) === spare, 'the spare leads a session of its own');

      const next = await runThrough(launcher, '/bin/sh', ['sh', '-c', 'echo "$0 in $(pwd)"']);
      assert.deepEqual(
        { pid: next.pid, out: next.out },
        { pid: spare, out: 'sh in /\n' },
        'the next task runs in the spare',
      );

      const failing = await spareOf(launcherPid, spare);
      await assert.rejects(
        runThrough(launcher, '/nonexistent/program', ['program']),
        /exec \/nonexistent\/program/,
      );
      assert.equal(alive(failing), false);

      const killed = await spareOf(launcherPid, failing);
      process.kill(killed, 'SIGKILL');
      const replaced = await spareOf(launcherPid, killed);
      const after = await runThrough(launcher, '/bin/sh', ['sh', '-c', 'echo after']);
      assert.deepEqual({ pid: after.pid, out: after.out }, { pid: replaced, out: 'after\n' });

      const last = await spareOf(launcherPid, replaced);
      process.kill(launcherPid, 'SIGKILL');
      await eventually(() => !alive(last), 'the spare exits with its launcher');
    } finally {
      launcher.close();
    }
  });
});
