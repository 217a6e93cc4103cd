import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeederPool } from '../src/engine/seeder-pool.js';

const seeder = (name: string) => ({ name, active: 0 });

test('the least busy seeder with a free slot is picked, and none once every slot is taken', () => {
  const pool = new SeederPool<ReturnType<typeof seeder>>(2);
  const origin = seeder('origin');
  pool.add(origin);
  pool.take(origin);
  const a = seeder('a');
  const b = seeder('b');
  pool.add(a);
  pool.add(b);
  const first = pool.pick();
  assert.ok(first === a || first === b, 'an idle seeder before the busy origin');
  pool.take(first);
  const second = pool.pick();
  assert.ok(second && second !== first && second !== origin);
  pool.take(second);
  for (let i = 0; i < 3; i++) {
    const s = pool.pick();
    assert.equal(s?.active, 1);
    pool.take(s);
  }
  assert.equal(pool.pick(), undefined);
  assert.deepEqual(
    [origin, a, b].map((s) => s.active),
    [2, 2, 2],
  );
  pool.free(origin);
  assert.equal(pool.pick(), origin);
  assert.equal(origin.active, 1);
  assert.deepEqual([...pool].map((s) => s.name).sort(), ['a', 'b', 'origin']);
});

test('without a slot limit the one seeder takes every download, and a freed slot is found again', () => {
  const pool = new SeederPool<ReturnType<typeof seeder>>(Infinity);
  const origin = seeder('origin');
  pool.add(origin);
  for (let i = 0; i < 100_000; i++) {
    const s = pool.pick();
    assert.ok(s);
    pool.take(s);
  }
  assert.equal(origin.active, 100_000);
  for (let i = 0; i < 50_000; i++) pool.free(origin);
  assert.equal(pool.pick(), origin);
  assert.equal(origin.active, 50_000);
});

test('a swarm of 50,000 seeders with two slots each serves 100,000 downloads, each to a least busy seeder', () => {
  const pool = new SeederPool<ReturnType<typeof seeder>>(2);
  const all = Array.from({ length: 50_000 }, (_, i) => seeder(String(i)));
  for (const s of all) pool.add(s);
  for (let i = 0; i < 100_000; i++) {
    const s = pool.pick();
    assert.ok(s);
    assert.equal(s.active, i < 50_000 ? 0 : 1);
    pool.take(s);
  }
  assert.equal(pool.pick(), undefined);
  assert.ok(all.every((s) => s.active === 2));
});

test('a removed seeder is never picked again, and its downloads ending changes nothing', () => {
  const pool = new SeederPool<ReturnType<typeof seeder>>(1);
  const origin = seeder('origin');
  const gone = seeder('gone');
  pool.add(origin);
  pool.add(gone);
  pool.take(gone);
  pool.remove(gone);
  pool.free(gone);
  assert.equal(pool.pick(), origin);
  pool.take(origin);
  assert.equal(pool.pick(), undefined);
  assert.deepEqual(
    [...pool].map((s) => s.name),
    ['origin'],
  );
});
