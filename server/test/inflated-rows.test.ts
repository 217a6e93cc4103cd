/**
 * Deflated log rows inflated for one window are used again for the next window of the same row,
 * and only while the row's stored bytes are the ones they were inflated from.
 */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { test } from 'node:test';
import { InflatedRows } from '../src/store/inflated-rows.js';
import { LogEncoding } from '../src/store/log-chunk-codec.js';

const deflated = (text: string) => ({
  data: zlib.deflateRawSync(Buffer.from(text)),
  encoding: LogEncoding.deflated,
});

test('a row is inflated once for several reads, again once it is written again', async () => {
  const rows = new InflatedRows();
  const first = deflated('a'.repeat(100_000));
  const [once] = await rows.decode([{ key: '1:0:7:0', ...first }]);
  // The same stored bytes, as a new read of the row brings them: the row inflated before.
  const [again] = await rows.decode([
    { key: '1:0:7:0', data: Buffer.from(first.data), encoding: first.encoding },
  ]);
  assert.equal(again, once);
  const [rewritten] = await rows.decode([{ key: '1:0:7:0', ...deflated('b'.repeat(100_000)) }]);
  assert.equal(rewritten?.toString(), 'b'.repeat(100_000));
  // Rows stored as they are pass through; others are kept a few at a time, oldest dropped first.
  const plain = Buffer.from('as it is');
  const many = await rows.decode([
    { key: 'raw', data: plain, encoding: LogEncoding.raw },
    ...Array.from({ length: 6 }, (_, i) => ({ key: `1:0:7:${i + 1}`, ...deflated(`row ${i}`) })),
  ]);
  assert.equal(many[0], plain);
  assert.deepEqual(
    many.slice(1).map((b) => b.toString()),
    Array.from({ length: 6 }, (_, i) => `row ${i}`),
  );
  const [newest] = await rows.decode([{ key: '1:0:7:6', ...deflated('row 5') }]);
  assert.equal(newest, many[6], 'the newest row is still kept');
  const [oldest] = await rows.decode([{ key: '1:0:7:1', ...deflated('row 0') }]);
  assert.notEqual(oldest, many[1], 'the oldest was dropped');
  assert.equal(oldest?.toString(), 'row 0');
});
