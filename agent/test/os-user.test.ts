/**
 * Account lookups: a found account is looked up once for the tasks that follow (getent is a
 * process of its own), a name not found every time. `getent` is the system's, reached through a
 * wrapper first on PATH that notes each call.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveUser } from '../src/os-user.js';

function systemGetent(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v getent'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const getent = systemGetent();
/** An account every Debian system has, other than the one the tests run as. */
const ACCOUNT = 'daemon';
const known = (() => {
  try {
    return getent !== undefined && execFileSync(getent, ['passwd', ACCOUNT], { encoding: 'utf8' }) !== '';
  } catch {
    return false;
  }
})();

describe('resolveUser', { skip: known ? false : `needs getent and an account named ${ACCOUNT}` }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-getent-'));
  const calls = path.join(dir, 'calls');
  fs.writeFileSync(path.join(dir, 'getent'), `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${getent}' "$@"\n`, {
    mode: 0o755,
  });
  process.env.PATH = `${dir}:${process.env.PATH ?? ''}`;
  const called = () =>
    fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [];
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('looks a found account up once for a burst of tasks and the tasks after it', async () => {
    const first = await Promise.all([resolveUser(ACCOUNT), resolveUser(ACCOUNT), resolveUser(ACCOUNT)]);
    const later = await resolveUser(ACCOUNT);
    assert.deepEqual(called(), [`passwd ${ACCOUNT}`]);
    for (const r of [...first, later]) assert.deepEqual(r, first[0]);
    // Root switches to it; any other agent is refused: either way the account was found.
    if (process.getuid?.() === 0) assert.equal(first[0]?.user?.name, ACCOUNT);
    else assert.match(first[0]?.error ?? '', /cannot act as daemon/);
  });

  it('looks a name that is not found up again every time', async () => {
    const before = called().length;
    for (let i = 0; i < 2; i++) {
      const r = await resolveUser('jobfleet-no-such-user');
      assert.equal(r.error, 'user jobfleet-no-such-user does not exist on this host');
    }
    assert.deepEqual(called().slice(before), [
      'passwd jobfleet-no-such-user',
      'passwd jobfleet-no-such-user',
    ]);
  });
});
