import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import {
  NORMALISED_HEAD_BYTES,
  OutputFingerprinter,
  fingerprintsOf,
} from '../src/outputs/output-fingerprint.js';

const host = { ip: '10.0.0.7', hostname: 'web-7' };
const samples = [
  'hello\nworld\n',
  'pid 1234 at 2026-11-30 01:02:03 on 10.0.0.7\nweb-7 ok\nplain\n',
  'no newline at end 42',
  'ünïcødé ✓ 12\n'.repeat(50) + 'tail web-7',
  'y\n'.repeat(5000) + 'then 7 at 10.0.0.7\n' + 'y\n'.repeat(100),
  '',
  '\n\n\n',
  'Nov 30 ready\nJan  5 x\n',
  // Sets agree for a while (numbers only), then part: the host, a time, a date, a month.
  'run 1\n'.repeat(40) +
    'on web-7 now\n' +
    'run 2\n'.repeat(40) +
    'at 10:11:12\nday 2026-01-02\nOct 3 done 9\n',
];

test('streamed fingerprints equal those of the whole output, however the output is cut', () => {
  for (const text of samples) {
    const output = Buffer.from(text);
    const whole = fingerprintsOf(output, host);
    for (const size of [1, 2, 3, 7, 64, 65536]) {
      const fp = new OutputFingerprinter(host);
      for (let i = 0; i < output.length; i += size) fp.update(output.subarray(i, i + size));
      assert.deepEqual(fp.finish(), whole, `${JSON.stringify(text.slice(0, 20))} cut every ${size} bytes`);
    }
  }
});

test('a large piece of output is taken in blocks: lines across them and longer than them', () => {
  const text = 'a'.repeat(150_000) + ' 12 web-7\n' + 'b 3\n'.repeat(40_000) + 'c'.repeat(70_000);
  const output = Buffer.from(text);
  const whole = fingerprintsOf(output, host);
  for (const size of [4096, 65537, 1_000_003]) {
    const fp = new OutputFingerprinter(host);
    for (let i = 0; i < output.length; i += size) fp.update(output.subarray(i, i + size));
    assert.deepEqual(fp.finish(), whole, `cut every ${size} bytes`);
  }
});

test('outputs that differ only in what a normaliser hides share that fingerprint, and only that', () => {
  const a = fingerprintsOf(Buffer.from('took 12 ms\nok\n'), host);
  const b = fingerprintsOf(Buffer.from('took 31 ms\nok\n'), host);
  assert.equal(a.numbers, b.numbers);
  assert.notEqual(a[''], b['']);
  assert.notEqual(a.host, b.host);
});

test('past the normalised head, output is compared as it is, and streaming still equals the whole', () => {
  const line = (n: number) => `line ${n} at 2026-11-30 01:02:03 on 10.0.0.7\n`;
  const head = Buffer.from(Array.from({ length: 200_000 }, (_, i) => line(i)).join(''));
  assert.ok(head.length > NORMALISED_HEAD_BYTES);
  const a = Buffer.concat([head, Buffer.from('tail 1\n')]);
  const b = Buffer.concat([head, Buffer.from('tail 2\n')]);
  const c = Buffer.from(a);
  c.write('9', 5); // inside the head: hidden by `numbers`
  const [fa, fb, fc] = [a, b, c].map((o) => fingerprintsOf(o, host));
  for (const size of [65536, 1_000_003]) {
    const fp = new OutputFingerprinter(host);
    for (let i = 0; i < a.length; i += size) fp.update(a.subarray(i, i + size));
    assert.deepEqual(fp.finish(), fa, `cut every ${size} bytes`);
  }
  assert.notEqual(fa?.numbers, fb?.numbers);
  assert.equal(fa?.numbers, fc?.numbers);
  assert.notEqual(fa?.[''], fc?.['']);
});

test('the tail past the head is hashed with BLAKE3: a stored fingerprint keeps its meaning', () => {
  // BLAKE3's published test vector for the input [0], and the 1,023 bytes i % 251.
  const vectors: [Buffer, string][] = [
    [Buffer.from([0]), '2d3adedff11b61f14c886e35afa03673'],
    [Buffer.from(Array.from({ length: 1023 }, (_, i) => i % 251)), '10108970eeda3eb932baac1428c7a216'],
  ];
  const head = Buffer.alloc(NORMALISED_HEAD_BYTES, 'y\n');
  const sha = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex').slice(0, 32);
  for (const [tail, blake3] of vectors) {
    const expected = sha(`${sha(head)}:${blake3}`);
    assert.equal(fingerprintsOf(Buffer.concat([head, tail]), host)[''], expected);
    const fp = new OutputFingerprinter(host);
    fp.update(head.subarray(0, 1000));
    fp.update(Buffer.concat([head.subarray(1000), tail]));
    assert.equal(fp.finish()[''], expected);
  }
});
