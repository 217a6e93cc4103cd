import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateServerKey, parseServerKey, SecretBox, SecretBoxError } from '../src/secret-box.js';

describe('secret box', () => {
  const key = parseServerKey(generateServerKey());

  it('seals to a value that holds no plain text and opens it again', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('hunter2-password', 'account:1');
    assert.ok(SecretBox.isSealed(sealed));
    assert.ok(!sealed.includes('hunter2'));
    assert.notEqual(box.seal('hunter2-password', 'account:1'), sealed, 'a fresh IV every time');
    assert.equal(box.open(sealed, 'account:1'), 'hunter2-password');
  });

  it('refuses a value moved to another purpose, damaged, or sealed under an unknown key', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('s', 'app:a');
    assert.throws(() => box.open(sealed, 'app:b'), SecretBoxError);
    const damaged = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'BB' : 'AA');
    assert.throws(() => box.open(damaged, 'app:a'), SecretBoxError);
    const other = new SecretBox(parseServerKey(generateServerKey()));
    assert.throws(() => other.open(sealed, 'app:a'), /does not hold/);
    assert.throws(() => box.open('plain', 'app:a'), /not a sealed value/);
  });

  it('after a rotation opens old values with the previous key and reports them for resealing', () => {
    const oldBox = new SecretBox(key);
    const sealedOld = oldBox.seal('v', 'p');
    const rotated = new SecretBox(parseServerKey(generateServerKey()), [key]);
    assert.equal(rotated.open(sealedOld, 'p'), 'v');
    assert.equal(rotated.needsReseal(sealedOld), true);
    assert.equal(rotated.needsReseal(rotated.seal('v', 'p')), false);
  });

  it('takes keys as base64 or hex and refuses other lengths', () => {
    const hex = key.toString('hex');
    assert.deepEqual(parseServerKey(hex), key);
    assert.deepEqual(parseServerKey(key.toString('base64')), key);
    assert.throws(() => parseServerKey('c2hvcnQ='), /32 bytes/);
  });
});
