/** Batch sizes of rolling expressions (behaviour notes §4.7). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rollingBatchSizes } from '../src/rolling-batches.js';

test('batch sizes: counts, percents, steps and factors, the last part repeating', () => {
  assert.deepEqual(rollingBatchSizes('1 10% *2', 20), [1, 2, 4, 8, 5]);
  assert.deepEqual(rollingBatchSizes('1 +1', 10), [1, 2, 3, 4]);
  assert.deepEqual(rollingBatchSizes('50%', 5), [3, 2]);
  // As the first part, +N and *N start with N hosts; *1 keeps the size.
  assert.deepEqual(rollingBatchSizes('+2', 7), [2, 4, 1]);
  assert.deepEqual(rollingBatchSizes('*3', 13), [3, 9, 1]);
  assert.deepEqual(rollingBatchSizes('2 *1', 5), [2, 2, 1]);
  for (const bad of ['', 'x', '0', '+0', '*0', '101%', '+2%'])
    assert.equal(rollingBatchSizes(bad, 5), 'invalid', bad);
  assert.equal(rollingBatchSizes('1', 501), 'too-many-batches');
});
