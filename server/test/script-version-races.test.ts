/**
 * Script version changes that race: the API reads a version, checks its status, then writes. The
 * store's write must hold when the version changed in between (another request, another server).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { SCRIPT_GONE, ScriptVersionStatus } from '../src/store/script-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

for (const engine of engines()) {
  describe(`script versions changed between read and write on ${engine}`, () => {
    after(dropFreshDatabases);

    const withStore = async (run: (store: Store) => Promise<void>) => {
      const store = await Store.open({
        databaseUrl: await freshDatabase(engine),
        dataDir: tempDir('versions'),
      });
      try {
        await run(store);
      } finally {
        await store.close();
      }
    };
    const owner = { public: false, scopeType: 'biz', scopeId: '1' } as const;
    /** A new business script with its first version (a draft). */
    const draft = async (store: Store, name: string) => {
      const v = await store.scripts.createScript(
        owner,
        { name, language: 1, description: '' },
        { version: 'v1', content: 'echo 1', versionDesc: '' },
        'tester',
      );
      assert.ok(typeof v === 'object');
      return v;
    };

    test('a version disabled after it was read is not published, and the online one stays', async () => {
      await withStore(async (store) => {
        const scripts = store.scripts;
        const first = await draft(store, 'deploy');
        await scripts.publish(first, 'tester');
        const second = await scripts.createVersion(
          first.script,
          { version: 'v2', content: 'echo 2', versionDesc: '' },
          'tester',
        );
        assert.ok(typeof second === 'object');
        // Read as a draft by a publish; disabled by another request before the publish writes.
        assert.ok(await scripts.setStatus(second, ScriptVersionStatus.DISABLED, [0, 1, 2], 'other'));
        assert.equal(await scripts.publish(second, 'tester'), false);
        assert.equal((await scripts.getVersion(second.id))?.status, ScriptVersionStatus.DISABLED);
        assert.equal((await scripts.getVersion(first.id))?.status, ScriptVersionStatus.ONLINE);
      });
    });

    test('a version published after it was read is not deleted', async () => {
      await withStore(async (store) => {
        const scripts = store.scripts;
        const v = await draft(store, 'backup');
        // Read as a draft by a delete; published by another request before the delete writes.
        await scripts.publish(v, 'other');
        assert.equal(await scripts.deleteVersion(v), false);
        assert.equal((await scripts.getVersion(v.id))?.status, ScriptVersionStatus.ONLINE);
      });
    });

    test('a script whose last version was deleted takes no new version and no new name', async () => {
      await withStore(async (store) => {
        const scripts = store.scripts;
        const v = await draft(store, 'gone');
        assert.equal(await scripts.deleteVersion(v), true);
        const next = { version: 'v2', content: 'echo 2', versionDesc: '' };
        assert.equal(await scripts.createVersion(v.script, next, 'tester'), SCRIPT_GONE);
        assert.equal(
          await scripts.updateScriptBasic(v.script, { name: 'x', description: '' }, 'tester'),
          SCRIPT_GONE,
        );
      });
    });

    test(
      'a version added while the last one is deleted keeps its script',
      { skip: engine === 'postgres' ? false : 'SQLite runs one write transaction at a time' },
      async () => {
        const databaseUrl = await freshDatabase(engine);
        const store = await Store.open({ databaseUrl, dataDir: tempDir('versions') });
        const adder = new pg.Client({ connectionString: databaseUrl });
        await adder.connect();
        try {
          const v = await draft(store, 'kept');
          // Another server adds v2 (createVersion's statements) and has not committed yet.
          await adder.query('begin');
          await adder.query('update script set last_modify_time = $1 where script_id = $2', [
            Date.now(),
            v.script.id,
          ]);
          await adder.query(
            `insert into script_version (script_id, version, content, status, version_desc, creator, create_time, last_modify_user, last_modify_time)
             values ($1, 'v2', 'echo 2', 0, '', 'other', 0, 'other', 0)`,
            [v.script.id],
          );
          const deleting = store.scripts.deleteVersion(v);
          await new Promise((r) => setTimeout(r, 300));
          await adder.query('commit');
          assert.equal(await deleting, true);
          assert.ok(await store.scripts.getScript(v.script.id), 'the script stays with its new version');
        } finally {
          await adder.end();
          await store.close();
        }
      },
    );
  });
}
