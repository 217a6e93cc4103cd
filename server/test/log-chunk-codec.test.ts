import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import {
  DEFLATE_MIN_BYTES,
  LogEncoding,
  decodeChunks,
  encodeChunks,
  encodeOutput,
} from '../src/store/log-chunk-codec.js';
import { MAX_JOINED_CHUNK_BYTES, joinChunks } from '../src/store/output-alignment.js';

const text = (n: number) => Buffer.from('build step 42 ok\n'.repeat(Math.ceil(n / 17))).subarray(0, n);

test('large text is deflated, small or incompressible chunks are stored as they are, all read back exactly', async () => {
  const chunks = [
    { offset: 0, data: text(DEFLATE_MIN_BYTES - 1) },
    { offset: 100_000, data: text(300_000) },
    { offset: 400_000, data: crypto.randomBytes(200_000) },
    { offset: 600_000, data: Buffer.from(crypto.randomBytes(150_000).toString('base64')) },
  ];
  const stored = await encodeChunks(chunks);
  assert.deepEqual(
    stored.map((c) => c.encoding),
    [LogEncoding.raw, LogEncoding.deflated, LogEncoding.raw, LogEncoding.raw],
  );
  assert.ok((stored[1]?.data.length ?? 0) < 30_000);
  assert.deepEqual(
    stored.map((c) => c.offset),
    chunks.map((c) => c.offset),
  );
  const back = await decodeChunks(stored);
  back.forEach((b, i) => assert.ok(b.equals(chunks[i]?.data ?? Buffer.alloc(0))));
});

test('contiguous chunks are joined up to the row limit; a gap starts a new row', () => {
  const mib = 1024 * 1024;
  const parts = Array.from({ length: 6 }, (_, i) => ({ offset: i * mib, data: text(mib) }));
  const joined = joinChunks([...parts, { offset: 7 * mib, data: text(10) }]);
  assert.deepEqual(
    joined.map((c) => [c.offset, c.data.length]),
    [
      [0, MAX_JOINED_CHUNK_BYTES],
      [4 * mib, 2 * mib],
      [7 * mib, 10],
    ],
  );
  assert.ok(
    Buffer.concat(joined.slice(0, 2).map((c) => c.data)).equals(Buffer.concat(parts.map((p) => p.data))),
  );
});

test('encodeOutput leaves writes without output out', async () => {
  const w1 = { chunks: [{ offset: 0, data: text(10) }] };
  const w2 = { chunks: [] };
  const out = await encodeOutput([w1, w2]);
  assert.equal(out.size, 1);
  assert.equal(out.get(w1)?.[0]?.encoding, LogEncoding.raw);
});

test('a row of many frames is deflated frame by frame into one stream that reads back whole', async () => {
  const mib = 1024 * 1024;
  const sizes = [mib, 300_000, 5, 70_000, mib, 900_000, 3, mib, mib];
  let offset = 0;
  const chunks = sizes.map((n, i) => {
    const c = { offset, data: Buffer.from(text(n + i).subarray(i)) };
    offset += c.data.length;
    return c;
  });
  const w = { chunks };
  const stored = (await encodeOutput([w])).get(w) ?? [];
  assert.deepEqual(
    stored.map((c) => [c.offset, c.encoding]),
    [
      [0, LogEncoding.deflated],
      [chunks[7]?.offset, LogEncoding.deflated],
    ],
  );
  const back = Buffer.concat(await decodeChunks(stored));
  assert.ok(back.equals(Buffer.concat(chunks.map((c) => c.data))));
});
