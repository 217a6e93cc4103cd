/** The agent's server list: parsing, a random first entry, rotation on failure, its home entry, moving downloads. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextSourceUrl } from '../src/file-download.js';
import { ServerList } from '../src/server-list.js';

test('one URL or a comma-separated list; bad entries are refused', () => {
  assert.deepEqual(ServerList.parse('http://a:8080').urls, ['http://a:8080']);
  assert.deepEqual(ServerList.parse(' http://a:1 , http://b:2,').urls, ['http://a:1', 'http://b:2']);
  assert.throws(() => ServerList.parse(' , '), /no server URL/);
  assert.throws(() => ServerList.parse('http://a:1,a:2'), /must start with http/);
  assert.throws(() => ServerList.parse('http://a:1,nota url'), /not a URL/);
  assert.throws(() => ServerList.parse('http://a:1,http://a:1'), /twice/);
});

test('starts at a random entry and moves through every entry in turn', () => {
  const urls = ['http://a:1', 'http://b:1', 'http://c:1'];
  assert.equal(ServerList.parse(urls, () => 0).current(), 'http://a:1');
  assert.equal(ServerList.parse(urls, () => 0.5).current(), 'http://b:1');
  assert.equal(ServerList.parse(urls, () => 0.99).current(), 'http://c:1');
  const list = ServerList.parse(urls, () => 0.5);
  assert.deepEqual(
    [list.advance(), list.advance(), list.advance()],
    ['http://c:1', 'http://a:1', 'http://b:1'],
  );
  const one = ServerList.parse('http://lb:80');
  assert.equal(one.advance(), 'http://lb:80');
});

test('the entry it started at is home: named while away from it, current again after goHome', () => {
  const list = ServerList.parse(['http://a:1', 'http://b:1', 'http://c:1'], () => 0.5);
  assert.equal(list.awayFrom(), undefined);
  list.advance();
  assert.equal(list.awayFrom(), 'http://b:1');
  list.advance();
  list.advance();
  assert.equal(list.awayFrom(), undefined, 'round the list and home again');
  list.advance();
  list.goHome();
  assert.equal(list.current(), 'http://b:1');
  assert.equal(list.awayFrom(), undefined);
  const one = ServerList.parse('http://lb:80');
  one.advance();
  assert.equal(one.awayFrom(), undefined, 'a single entry is always home');
});

test('a download from a server of the list moves on to the others; other sources stay where they are', () => {
  const list = ServerList.parse(['http://a:1', 'http://b:1', 'http://c:1'], () => 0.5);
  assert.deepEqual(list.fromCurrent(), ['http://b:1', 'http://c:1', 'http://a:1']);
  const held = 'http://a:1/agent/v1';
  // The agent is on b now: b next; b failing too, the next entry (c).
  assert.equal(nextSourceUrl(held, held, list.fromCurrent()), 'http://b:1/agent/v1');
  assert.equal(nextSourceUrl(held, 'http://b:1/agent/v1', list.fromCurrent()), 'http://c:1/agent/v1');
  // Still on the server that failed (not reconnected yet): the next one of the list.
  list.advance();
  list.advance();
  assert.equal(nextSourceUrl(held, held, list.fromCurrent()), 'http://b:1/agent/v1');
  // A peer's file server, or a single server: the same URL again.
  assert.equal(
    nextSourceUrl('http://10.0.0.9:4000', 'http://10.0.0.9:4000', list.urls),
    'http://10.0.0.9:4000',
  );
  assert.equal(
    nextSourceUrl('http://lb:80/agent/v1', 'http://lb:80/agent/v1', ['http://lb:80']),
    'http://lb:80/agent/v1',
  );
});
