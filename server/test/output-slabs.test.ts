/**
 * The slabs pending output is held in: a copy is the bytes given, memory is written again only
 * once no lease holds it, and a lease merged into another lives on in it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutputSlabs, SLAB_BYTES } from '../src/engine/output-slabs.js';
import type { SlabLease } from '../src/engine/output-slabs.js';

const filled = (bytes: number, value: number) => Buffer.alloc(bytes, value);
const joined = (pieces: Buffer[]) => Buffer.concat(pieces);

test('output crossing a slab end is copied as two pieces holding its bytes', () => {
  const slabs = new OutputSlabs();
  const lease: SlabLease = new Set();
  const first = slabs.copy(filled(SLAB_BYTES - 10, 1), lease);
  assert.equal(first.length, 1);
  const data = Buffer.from('0123456789abcdefghij');
  const pieces = slabs.copy(data, lease);
  assert.deepEqual(
    pieces.map((p) => p.length),
    [10, 10],
  );
  assert.deepEqual(joined(pieces), data);
  assert.equal(lease.size, 2);
  assert.deepEqual(slabs.copy(Buffer.alloc(0), lease), []);
});

test('memory is written again once released, never while a lease holds it', () => {
  const slabs = new OutputSlabs();
  const held: SlabLease = new Set();
  const kept = slabs.copy(filled(3 * SLAB_BYTES + 5, 7), held);
  const seen = new Set(kept.map((p) => p.buffer));
  // Batch after batch copied and released, ten slabs' worth: none lands on the held bytes.
  for (let i = 0; i < 40; i++) {
    const lease: SlabLease = new Set();
    slabs.copy(filled(SLAB_BYTES / 4, i), lease);
    slabs.release(lease);
  }
  assert.ok(kept.every((p) => p.every((b) => b === 7)));
  slabs.release(held);
  // Released, the memory is used again.
  const again: SlabLease = new Set();
  const later = slabs.copy(filled(4 * SLAB_BYTES, 9), again);
  assert.ok(later.some((p) => seen.has(p.buffer)));
});

test('a lease merged into another is held until that one is released', () => {
  const slabs = new OutputSlabs();
  const older: SlabLease = new Set();
  const newer: SlabLease = new Set();
  const a = slabs.copy(Buffer.from('older '), older);
  const b = slabs.copy(Buffer.from('newer'), newer);
  assert.equal(a[0]?.buffer, b[0]?.buffer, 'both in one slab');
  slabs.merge(newer, older);
  assert.equal(older.size, 0);
  const spare: SlabLease = new Set();
  for (let i = 0; i < 10; i++) {
    slabs.copy(filled(SLAB_BYTES / 2, 0), spare);
    slabs.release(spare);
  }
  assert.equal(joined([...a, ...b]).toString(), 'older newer');
  slabs.release(newer);
  const reused: SlabLease = new Set();
  assert.ok(slabs.copy(filled(8 * SLAB_BYTES, 0), reused).some((p) => p.buffer === a[0]?.buffer));
});
