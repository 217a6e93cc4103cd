/** The identity an agent keeps between starts: a file it cannot read means registering again. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadIdentity } from '../src/identity.js';
import { tempStateDir } from './helpers/os-state.js';

describe('identity file', () => {
  it('reads as none when missing, empty (a power cut after its write) or not an identity', () => {
    const dir = tempStateDir();
    assert.equal(loadIdentity(dir), undefined);
    for (const text of ['', '{"agent_id":', '[]']) {
      fs.writeFileSync(path.join(dir, 'identity.json'), text);
      assert.equal(loadIdentity(dir), undefined, JSON.stringify(text));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
