import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchSizes, failureBudget } from '../src/engine/rolling-plan.js';

test('rolling expressions give the batch sizes BK-JOB documents', () => {
  assert.deepEqual(batchSizes('1', 3), [1, 1, 1]);
  assert.deepEqual(batchSizes('1 10% *2', 40), [1, 4, 8, 16, 11]);
  assert.deepEqual(batchSizes('2 +3', 20), [2, 5, 8, 5]);
  assert.deepEqual(batchSizes('50%', 5), [3, 2]);
  assert.deepEqual(batchSizes('100%', 7), [7]);
  // As the first part, +N and *N start with N hosts; *1 keeps the size (as BK-JOB reads them).
  assert.deepEqual(batchSizes('+2', 7), [2, 4, 1]);
  assert.deepEqual(batchSizes('*3', 13), [3, 9, 1]);
  assert.deepEqual(batchSizes('2 *1', 5), [2, 2, 1]);
});

test('bad expressions and too many batches are refused', () => {
  for (const e of ['', 'x', '0', '101%', '+0', '*0 2', '1 *0', '+2%', '-1', '1.5']) {
    assert.throws(
      () => batchSizes(e, 10),
      (err: { code?: number }) => err.code === 1244026,
      e,
    );
  }
  assert.throws(
    () => batchSizes('1', 501),
    (err: { code?: number }) => err.code === 1244027,
  );
  assert.equal(batchSizes('1', 500).length, 500);
});

test('failure budgets are counts or percentages', () => {
  assert.equal(failureBudget(undefined, 10), undefined);
  assert.equal(failureBudget(3, 10), 3);
  assert.equal(failureBudget('25%', 10), 2);
});
