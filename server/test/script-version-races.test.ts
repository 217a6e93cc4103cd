/**
 * Library changes that race: the API reads a script version (or an account), checks it, then
 * writes. The store's write must hold when it changed in between (another request, another
 * server): a version's status, a version or account deleted while something saved cites it.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { CitedItemsGone } from '../src/store/library-references.js';
import type { Database } from '../src/store/schema.js';
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

    /** The API's check inside a delete: refuse a cited version. */
    const notCited = (store: Store) => async (ids: number[], tx: Kysely<Database>) => {
      const citers = await store.references.scriptVersionsCitedBy(ids, tx);
      if (citers.length > 0) throw new Error(`cited by ${citers.map((c) => c.label).join(', ')}`);
    };
    /** A template body citing one version, as plan-documents.ts stores it. */
    const citing = (versionId: number) =>
      JSON.stringify({
        steps: [{ id: 1, name: 'run', type: 1, script_info: { script_version_id: versionId } }],
      });
    const templateRow = (name: string, body: string) => ({
      scope_type: 'biz',
      scope_id: '1',
      name,
      description: '',
      creator: 'tester',
      create_time: 0,
      last_modify_user: 'tester',
      last_modify_time: 0,
      version: 1,
      body,
    });

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
        assert.equal(await scripts.deleteVersion(v, notCited(store)), false);
        assert.equal((await scripts.getVersion(v.id))?.status, ScriptVersionStatus.ONLINE);
      });
    });

    test('a script whose last version was deleted takes no new version and no new name', async () => {
      await withStore(async (store) => {
        const scripts = store.scripts;
        const v = await draft(store, 'gone');
        assert.equal(await scripts.deleteVersion(v, notCited(store)), true);
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
          const deleting = store.scripts.deleteVersion(v, notCited(store));
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

    test(
      'a template saved citing a version while the version is deleted: one of the two is refused',
      { skip: engine === 'postgres' ? false : 'SQLite runs one write transaction at a time' },
      async () => {
        const databaseUrl = await freshDatabase(engine);
        const store = await Store.open({ databaseUrl, dataDir: tempDir('versions') });
        const other = new pg.Client({ connectionString: databaseUrl });
        await other.connect();
        try {
          // Another server saves a template citing v (insertTemplate's statements), not committed
          // yet, when this one deletes v: the delete waits, then sees the citation.
          const cited = await draft(store, 'cited');
          await other.query('begin');
          await other.query('update script set script_id = script_id where script_id = $1', [
            cited.script.id,
          ]);
          await other.query(
            `insert into job_template (scope_type, scope_id, name, description, creator, create_time, last_modify_user, last_modify_time, version, body)
             values ('biz', '1', 'uses it', '', 'other', 0, 'other', 0, 1, $1)`,
            [citing(cited.id)],
          );
          // Its refusal is awaited from the start: it may come before this test awaits it.
          const deleting = assert.rejects(
            store.scripts.deleteVersion(cited, notCited(store)),
            /cited by template \d+ \(uses it\)/,
          );
          await new Promise((r) => setTimeout(r, 300));
          await other.query('commit');
          await deleting;
          assert.ok(await store.scripts.getVersion(cited.id), 'the cited version stays');

          // Another server deletes v, not committed yet, when this one saves a template citing
          // it: the save waits, then finds v gone and saves nothing.
          const deleted = await draft(store, 'deleted');
          await other.query('begin');
          await other.query('update script set script_id = script_id where script_id = $1', [
            deleted.script.id,
          ]);
          await other.query('delete from script_version where id = $1', [deleted.id]);
          const saving = assert.rejects(
            store.plans.insertTemplate(templateRow('late', citing(deleted.id))),
            (err) => err instanceof CitedItemsGone && err.ids[0] === deleted.id,
          );
          await new Promise((r) => setTimeout(r, 300));
          await other.query('commit');
          await saving;
          assert.equal(await store.plans.findTemplateByName('biz', '1', 'late'), undefined);
        } finally {
          await other.end();
          await store.close();
        }
      },
    );

    /** A Linux system account of business 1. */
    const account = async (store: Store, alias: string, system: number | null = null) => {
      const a = await store.accounts.create(
        {
          bizId: 1,
          account: alias,
          alias,
          category: system === null ? 1 : 2,
          type: system === null ? 1 : 9,
          osType: system === null ? 'linux' : '',
          description: '',
          password: system === null ? undefined : 'pw',
          dbPort: system === null ? null : 3306,
          dbSystemAccountId: system,
        },
        'tester',
        (plain) => `sealed:${plain.length}`,
      );
      assert.ok(typeof a === 'object');
      return a.id;
    };
    const runsAs = (accountId: number) =>
      JSON.stringify({
        steps: [{ id: 1, name: 'run', type: 1, script_info: { account: { id: accountId } } }],
      });
    const accountNotCited = (store: Store, id: number) => async (tx: Kysely<Database>) => {
      const citers = [
        ...(await store.accounts.dbAccountsUsing(id, tx)).map((d) => `database account ${d.id}`),
        ...(await store.references.accountCitedBy(id, tx)).map((c) => c.label),
      ];
      if (citers.length > 0) throw new Error(`cited by ${citers.join(', ')}`);
    };

    test(
      'a template saved running as an account while the account is deleted: one of the two is refused',
      { skip: engine === 'postgres' ? false : 'SQLite runs one write transaction at a time' },
      async () => {
        const databaseUrl = await freshDatabase(engine);
        const store = await Store.open({ databaseUrl, dataDir: tempDir('accounts') });
        const other = new pg.Client({ connectionString: databaseUrl });
        await other.connect();
        try {
          await store.inventory.createBiz(1, 'one');
          const kept = await account(store, 'kept');
          await other.query('begin');
          await other.query('update account set id = id where id = $1', [kept]);
          await other.query(
            `insert into job_template (scope_type, scope_id, name, description, creator, create_time, last_modify_user, last_modify_time, version, body)
             values ('biz', '1', 'runs as kept', '', 'other', 0, 'other', 0, 1, $1)`,
            [runsAs(kept)],
          );
          const deleting = assert.rejects(
            store.accounts.delete(kept, accountNotCited(store, kept)),
            /cited by template \d+ \(runs as kept\)/,
          );
          await new Promise((r) => setTimeout(r, 300));
          await other.query('commit');
          await deleting;
          assert.ok(await store.accounts.get(kept), 'the cited account stays');

          const gone = await account(store, 'gone');
          await other.query('begin');
          await other.query('delete from account where id = $1', [gone]);
          const saving = assert.rejects(
            store.plans.insertTemplate(templateRow('runs as gone', runsAs(gone))),
            (err) => err instanceof CitedItemsGone && err.kind === 'account',
          );
          await new Promise((r) => setTimeout(r, 300));
          await other.query('commit');
          await saving;
          assert.equal(await store.plans.findTemplateByName('biz', '1', 'runs as gone'), undefined);
        } finally {
          await other.end();
          await store.close();
        }
      },
    );

    test('what cites a deleted account is not saved; a cited account is not deleted', async () => {
      await withStore(async (store) => {
        await store.inventory.createBiz(1, 'one');
        const system = await account(store, 'sys');
        const db = await account(store, 'db', system);
        await assert.rejects(
          store.accounts.delete(system, accountNotCited(store, system)),
          /database account/,
        );
        const id = await store.plans.insertTemplate(templateRow('runs as sys', runsAs(system)));
        await store.accounts.update(
          db,
          { dbSystemAccountId: await account(store, 'sys2') },
          'tester',
          String,
        );
        await assert.rejects(store.accounts.delete(system, accountNotCited(store, system)), /template/);
        await store.plans.deleteTemplate(id);
        assert.equal(await store.accounts.delete(system, accountNotCited(store, system)), true);
        await assert.rejects(store.plans.insertTemplate(templateRow('late', runsAs(system))), CitedItemsGone);
        await assert.rejects(
          store.accounts.update(db, { dbSystemAccountId: system }, 'tester', String),
          CitedItemsGone,
        );
      });
    });

    test('a template citing a deleted version is not saved; a cited version or script is not deleted', async () => {
      await withStore(async (store) => {
        const v = await draft(store, 'lib');
        const id = await store.plans.insertTemplate(templateRow('cites', citing(v.id)));
        await assert.rejects(store.scripts.deleteVersion(v, notCited(store)), /cited by template/);
        await assert.rejects(store.scripts.deleteScript(v.script, notCited(store)), /cited by template/);
        await store.plans.deleteTemplate(id);
        assert.equal(await store.scripts.deleteVersion(v, notCited(store)), true);
        await assert.rejects(
          store.plans.insertTemplate(templateRow('too late', citing(v.id))),
          CitedItemsGone,
        );
      });
    });
  });
}
