/**
 * Paging the script library: 2,500 scripts, read page by page while more are being added,
 * come back each exactly once, on each engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const SCRIPTS = 2500;
const CONCURRENCY = 8;

interface ScriptPage {
  data: { id: string; name: string }[];
  start: number;
  length: number;
  total: number;
}

for (const engine of engines()) {
  describe(`script library paging on ${engine}`, () => {
    let fleet: Fleet;
    const call = <T>(name: string, body: Record<string, unknown>) =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
    const create = async (name: string) => {
      const r = await call<{ script_id: string }>('create_script', {
        name,
        script_language: 1,
        content: b64(`echo ${name}`),
        version: '1',
      });
      assert.equal(r.result, true, r.message);
      return r.data.script_id;
    };

    before(async () => {
      fleet = await startFleet(engine, 0);
    });

    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test(`${SCRIPTS} scripts page back each exactly once while more are added`, async () => {
      const made: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < SCRIPTS) {
            const i = next++;
            made.push(await create(`paged-${String(i).padStart(4, '0')}`));
          }
        }),
      );
      assert.equal(new Set(made).size, SCRIPTS);

      const seen = new Map<string, number>();
      let added = 0;
      for (let start = 0; ; start += 100) {
        const page = await call<ScriptPage>('get_script_list', { start, length: 100 });
        assert.equal(page.result, true, page.message);
        assert.equal(page.data.start, start);
        if (page.data.data.length === 0) break;
        for (const s of page.data.data) seen.set(s.id, (seen.get(s.id) ?? 0) + 1);
        // Rows added between pages land after every row already there.
        await create(`added-${added++}`);
      }
      for (const id of made) assert.equal(seen.get(id), 1, `script ${id} seen ${seen.get(id) ?? 0} times`);
      assert.equal(
        [...seen.values()].every((n) => n === 1),
        true,
        'no script is repeated',
      );

      const whole = await call<ScriptPage>('get_script_list', { length: 5000 });
      assert.equal(whole.data.length, 1000, 'length is capped at 1000');
      assert.equal(whole.data.data.length, 1000);
      assert.equal(whole.data.total, SCRIPTS + added);
      const byDefault = await call<ScriptPage>('get_script_list', {});
      assert.equal(byDefault.data.length, 20);
      assert.equal(byDefault.data.data.length, 20);
      const named = await call<ScriptPage>('get_script_list', { name: 'paged-12', length: 1000 });
      assert.equal(named.data.total, 100, 'paged-1200 .. paged-1299');
      const literal = await call<ScriptPage>('get_script_list', { name: 'paged_' });
      assert.equal(literal.data.total, 0, '_ is not a wildcard');
    });
  });
}
