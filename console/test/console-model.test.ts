/** The console's pure model code, without a browser. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReadOrder } from '../src/model/read-order.js';
import { MAX_ENTRIES, parseTargets } from '../src/model/targets.js';
import { hostStatus } from '../src/model/statuses.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('ReadOrder', () => {
  test('a reply that comes after the reply of a later read is dropped', async () => {
    const order = new ReadOrder();
    const first = deferred<string>();
    const second = deferred<string>();
    const a = order.read(() => first.promise);
    const b = order.read(() => second.promise);
    second.resolve('page 2');
    assert.deepEqual(await b, { value: 'page 2' });
    first.resolve('page 1');
    assert.equal(await a, undefined);
  });

  test('replies in order are all taken, errors too', async () => {
    const order = new ReadOrder();
    const first = deferred<string>();
    const second = deferred<string>();
    const a = order.read(() => first.promise);
    const b = order.read(() => second.promise);
    first.resolve('older');
    assert.deepEqual(await a, { value: 'older' });
    const failure = new Error('refused');
    second.reject(failure);
    assert.deepEqual(await b, { error: failure });
  });

  test('abortAll aborts the reads still out and drops their replies', async () => {
    const order = new ReadOrder();
    const out = deferred<string>();
    let signal: AbortSignal | undefined;
    const a = order.read((s) => {
      signal = s;
      return out.promise;
    });
    order.abortAll();
    assert.equal(signal?.aborted, true);
    out.resolve('late');
    assert.equal(await a, undefined);
    assert.deepEqual(await order.read(async () => 'next'), { value: 'next' });
  });
});

describe('parseTargets', () => {
  test('ranges expand; a list over the limit says so', () => {
    assert.deepEqual(parseTargets('10.0.0.[1-3], 2:10.0.1.1;#7'), {
      entries: ['10.0.0.1', '10.0.0.2', '10.0.0.3', '2:10.0.1.1', '#7'],
      tooMany: false,
    });
    const over = parseTargets(`127.0.0.2 10.1.0.[1-${MAX_ENTRIES}]`);
    assert.equal(over.tooMany, true);
    assert.equal(over.entries.length, MAX_ENTRIES);
    assert.equal(parseTargets(`10.1.0.[1-${MAX_ENTRIES}]`).tooMany, false);
  });
});

describe('hostStatus', () => {
  test('names every host status the server sets, invalid hosts (2) included', () => {
    for (const n of [2, 3, 5, 7, 9, 11, 12, 101, 102, 103, 104, 202, 203, 310, 329, 403])
      assert.doesNotMatch(hostStatus(n).label, /^Status /, `host status ${n}`);
    assert.equal(hostStatus(2).tone, 'fail');
  });
});
