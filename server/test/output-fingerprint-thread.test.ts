import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  NORMALISED_HEAD_BYTES,
  OutputFingerprinter,
  fingerprintsOf,
} from '../src/outputs/output-fingerprint.js';
import { FingerprintThread, RING_BYTES } from '../src/outputs/output-fingerprint-thread.js';

const host = { ip: '10.0.0.7', hostname: 'web-7' };

/**
 * Lines with numbers, the host and a time, then bytes that are not UTF-8 and a cut character at
 * the end of the head, then more than the ring holds twice over.
 */
function longOutput(): Buffer {
  const lines: Buffer[] = [];
  let bytes = 0;
  for (let i = 0; bytes < NORMALISED_HEAD_BYTES - 4096; i++) {
    const line = Buffer.from(`line ${i} on web-7 (10.0.0.7) at 12:00:01 ✓\n`);
    lines.push(line);
    bytes += line.length;
    if (i === 1000) lines.push(Buffer.from([0xff, 0xfe, 0x0a]));
  }
  const pad = Buffer.alloc(NORMALISED_HEAD_BYTES - 1 - lines.reduce((n, l) => n + l.length, 0), 'x');
  // '✓' is three bytes: the head ends after its first one.
  const tail = Buffer.from('✓ past the head 42\n'.repeat(3_000_000));
  return Buffer.concat([...lines, pad, tail]);
}

const outputs: Record<string, Buffer> = {
  long: longOutput(),
  plain: Buffer.from('hello\nworld\n'),
  numbers: Buffer.from('took 12 ms\nat 2026-11-30 01:02:03 on web-7\nno newline 7'),
  invalid: Buffer.from([0x61, 0xc3, 0x0a, 0xe2, 0x82, 0x31, 0x0a, 0x80, 0x62]),
  empty: Buffer.alloc(0),
};

test('fingerprints from the thread equal those made in this thread, across the head and past the ring', async () => {
  assert.ok((outputs.long?.length ?? 0) > 2 * RING_BYTES, 'the output wraps the ring');
  const thread = new FingerprintThread((err) => assert.fail(err));
  try {
    const keys = Object.keys(outputs);
    const offsets = new Map(keys.map((k) => [k, 0]));
    for (const k of keys) thread.start(k, host);
    // Interleaved, in pieces of odd sizes at odd offsets of their buffers, a batch at a time.
    for (let round = 0, left = true; left; round++) {
      left = false;
      for (const k of keys) {
        const out = outputs[k] as Buffer;
        const from = offsets.get(k) ?? 0;
        if (from >= out.length) continue;
        const size = k === 'long' ? 1_048_573 + round : 1 + (round % 5);
        const copy = Buffer.alloc(size + 3);
        const n = out.copy(copy, 3, from, from + size);
        thread.update(k, copy.subarray(3, 3 + n));
        offsets.set(k, from + n);
        left = true;
      }
      thread.flush();
    }
    const got = await thread.finish(keys);
    for (const k of keys) {
      const out = outputs[k] as Buffer;
      const here = new OutputFingerprinter(host);
      here.update(out);
      assert.deepEqual(got.get(k), here.finish(), k);
      // The long one too, in output-fingerprint.test.ts (a normalisation of its whole head is slow).
      if (k !== 'long') assert.deepEqual(got.get(k), fingerprintsOf(out, host), k);
    }
  } finally {
    await thread.close();
  }
});

test('a dropped task, and one not started on the thread, are not answered (their logs are read)', async () => {
  const thread = new FingerprintThread((err) => assert.fail(err));
  try {
    thread.start('a', host);
    thread.update('a', Buffer.from('one\n'));
    thread.drop('a');
    thread.update('b', Buffer.from('two\n'));
    thread.start('c', host);
    thread.update('c', Buffer.from('three 3\n'));
    const got = await thread.finish(['a', 'b', 'c']);
    assert.deepEqual([...got.keys()], ['c']);
    assert.deepEqual(got.get('c'), fingerprintsOf(Buffer.from('three 3\n'), host));
  } finally {
    await thread.close();
  }
  assert.deepEqual(await thread.finish(['c']), new Map());
});

test('a process awaiting fingerprints stays alive until they come, and then exits', () => {
  const module = new URL('../src/outputs/output-fingerprint-thread.js', import.meta.url).href;
  // The second task is finished once the worker is up (while it starts, it keeps the process alive).
  const script = `
    import { FingerprintThread } from ${JSON.stringify(module)};
    const thread = new FingerprintThread((err) => { throw err; });
    thread.start('a', { ip: '', hostname: '' });
    await thread.finish(['a']);
    thread.start('k', { ip: '', hostname: '' });
    thread.update('k', Buffer.alloc(20 * 1024 * 1024, 'line 1\\n'));
    thread.finish(['k']).then((done) => console.log(Object.keys(done.get('k') ?? {}).length));
  `;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-fingerprint-'));
  try {
    fs.writeFileSync(path.join(dir, 'await.mjs'), script);
    const run = spawnSync(process.execPath, [path.join(dir, 'await.mjs')], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), '8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
