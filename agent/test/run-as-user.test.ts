/**
 * The execution account: a root agent runs the script as the requested user; a user that does
 * not exist, or one a non-root agent cannot switch to, ends with outcome user_missing.
 * Creates a throwaway OS user for the run and deletes it afterwards.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { FinishedReport } from '../src/task-spool.js';
import { scriptDirsAfterRecorded, scriptDirsOf } from './helpers/os-state.js';
import { runMsg } from './helpers/recording-reports.js';
import { Runners } from './helpers/runners.js';

const runners = new Runners();
const setup = () => runners.open();

after(() => runners.cleanup());

function canManageUsers(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to create a user and switch to it';
  try {
    execFileSync('useradd', ['--help'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'useradd is not available';
  }
}

describe('TaskRunner: execution account', () => {
  it('answers a user that does not exist with user_missing, starting nothing', async () => {
    const { runner, reports } = setup();
    // "0" is a uid to getent (root's): a name is looked up as a name only.
    for (const user of ['jobfleet-no-such-user', '-bad:name', '0']) {
      const msg = runMsg('id -un', { user });
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'user_missing');
      assert.equal(r.message, `user ${user} does not exist on this host`);
      assert.equal(r.outputBytes, 0);
      assert.deepEqual(scriptDirsOf(msg.key), []);
    }
  });

  describe('with a throwaway user', { skip: canManageUsers() }, () => {
    const name = `jft${process.pid % 100000}`;
    let uid = -1;

    before(() => {
      execFileSync('useradd', ['-M', '-s', '/bin/sh', name], { stdio: 'ignore' });
      uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    });
    after(() => {
      execFileSync('userdel', [name], { stdio: 'ignore' });
    });

    it('runs the script as that user, with their HOME and USER, in a directory of theirs', async () => {
      const { runner, reports } = setup();
      const msg = runMsg('id -un; id -u; echo "$HOME $USER $LOGNAME"; touch ./made && echo can write', {
        user: name,
      });
      runner.run(msg);
      const r = await reports.finishedResult(msg.key);
      assert.deepEqual([r.outcome, r.exitCode], ['exited', 0]);
      assert.equal(reports.text(msg.key), `${name}\n${uid}\n/home/${name} ${name} ${name}\ncan write\n`);
      assert.deepEqual(scriptDirsAfterRecorded(runner, msg.key), []);
    });

    it('as a non-root agent: runs as itself, and refuses to switch to another user', async () => {
      const stateDir = runners.stateDir();
      fs.chownSync(stateDir, uid, uid);
      const own = runMsg('id -un', { user: '' });
      const other = runMsg('id -un', { user: 'root' });
      const fixture = fileURLToPath(new URL('./fixtures/task-runner-process.js', import.meta.url));
      const proc = spawn(process.execPath, [fixture, stateDir, JSON.stringify(own), JSON.stringify(other)], {
        uid,
        gid: uid,
        cwd: '/',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let printed = '';
      proc.stdout.on('data', (d: Buffer) => (printed += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (printed += d.toString()));
      const code = await new Promise((r) => proc.once('exit', r));
      assert.equal(code, 0, printed);
      const lines = printed
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; key?: string; data?: string; result?: FinishedReport });
      const result = (key: string) => lines.find((l) => l.result?.key === key)?.result;
      const text = (key: string) =>
        lines
          .filter((l) => l.type === 'output' && l.key === key)
          .map((l) => Buffer.from(l.data ?? '', 'base64').toString())
          .join('');
      assert.equal(result(own.key)?.outcome, 'exited');
      assert.equal(text(own.key), `${name}\n`);
      assert.equal(result(other.key)?.outcome, 'user_missing');
      assert.match(
        result(other.key)?.message ?? '',
        new RegExp(`agent runs as ${name} and cannot act as root`),
      );
    });
  });
});
