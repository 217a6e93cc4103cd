/**
 * The variables prelude run by a real bash: awkward values arrive intact, arrays become bash
 * arrays, a cipher comes only through the environment, and what the script assigns comes back
 * through $JOBFLEET_VARS_OUT and folds into the next step's values per host.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { foldReports, parseReported, shellPrelude } from '../src/engine/job-variables.js';
import type { VarState } from '../src/engine/job-variables.js';
import { cipherPurpose } from '../src/plans/plan-shapes.js';
import { SecretBox } from '../src/secret-box.js';
import { tempDir } from './helpers/processes.js';

const box = new SecretBox(crypto.randomBytes(32), []);
const AWKWARD = `it's "quoted" $HOME \`x\` \\ \n second line`;

function run(state: VarState, hostId: number, script: string): { out: string; vars: string | undefined } {
  const dir = tempDir('vars');
  const { prelude, env } = shellPrelude(state, hostId, box);
  const file = path.join(dir, 'script.sh');
  fs.writeFileSync(file, prelude + script);
  const varsOut = path.join(dir, 'vars.out');
  const r = spawnSync('bash', [file], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env, JOBFLEET_VARS_OUT: varsOut },
  });
  assert.equal(r.status, 0, r.stderr);
  return {
    out: r.stdout,
    vars: fs.existsSync(varsOut) ? fs.readFileSync(varsOut).toString('base64') : undefined,
  };
}

describe('job variables in shell scripts', () => {
  const state: VarState = [
    { name: 's', type: 1, value: AWKWARD },
    { name: 'ns', type: 2, value: 'default', hosts: { '7': 'seven' } },
    { name: 'c', type: 4, sealed: box.seal('top secret', cipherPurpose('c')) },
    { name: 'm', type: 5, value: '{"a b":"x\'y","k":"v"}' },
    { name: 'l', type: 6, value: '["one","two words"]' },
    { name: 'b', type: 6, value: '(p q r)' },
  ];

  test('values of every type arrive intact', () => {
    const { out } = run(
      state,
      7,
      [
        'printf "%s|" "$s" "$ns" "$c" "${m[a b]}" "${m[k]}" "${l[1]}" "${#l[@]}" "${b[2]}"',
        // the cipher is a plain shell variable, not exported to children
        'bash -c \'printf "%s" "${c-unset}|${JOBFLEET_CIPHER_c-gone}"\'',
      ].join('\n'),
    );
    assert.equal(out, `${AWKWARD}|seven|top secret|x'y|v|two words|2|r|unset|gone`);
  });

  test('a cipher value is never part of the script text', () => {
    const { prelude, env } = shellPrelude(state, 1, box);
    assert.ok(!prelude.includes('top secret'));
    assert.deepEqual(env, { JOBFLEET_CIPHER_c: 'top secret' });
  });

  test('assignments come back, also after exit, and fold per host', () => {
    const a = run(state, 7, 's="new value"; ns="host seven"; exit 0');
    const b = run(state, 8, "ns=$'eight\\nlines'");
    assert.deepEqual({ ...parseReported(a.vars ?? '') }, { s: 'new value', ns: 'host seven' });
    const next = foldReports(state, [
      { hostId: 7, values: parseReported(a.vars ?? '') },
      { hostId: 8, values: parseReported(b.vars ?? '') },
    ]);
    assert.equal(next[0]?.value, 'new value'); // host 8 left s as it was: host 7's change stands
    assert.deepEqual(next[1]?.hosts, { '7': 'host seven', '8': 'eight\nlines' });
    assert.equal(run(next, 8, 'printf %s "$ns"').out, 'eight\nlines');
  });
});
