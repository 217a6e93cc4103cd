/** The agent's server list: parsing, a random first entry, rotation on failure. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
