/**
 * The script and account stores on each engine, in process: what code citing library items by
 * id relies on (a version with its script's owner and status, the citer registry), and that
 * concurrent publishes still leave exactly one version online.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Store } from '../src/store/store.js';
import { ScriptVersionStatus } from '../src/store/script-store.js';
import type { ScriptVersion } from '../src/store/script-store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

after(dropFreshDatabases);

for (const engine of engines()) {
  describe(`library stores on ${engine}`, () => {
    let store: Store;

    before(async () => {
      store = await Store.open({
        databaseUrl: await freshDatabase(engine),
        dataDir: tempDir('library-store'),
      });
      await store.inventory.createBiz(5, 'biz five');
    });
    after(async () => {
      await store?.close();
    });

    it('answers a version by id with its script, owner and status', async () => {
      const v = await store.scripts.createScript(
        { public: false, scopeType: 'biz', scopeId: '5' },
        { name: 'cited.sh', language: 1, description: 'd' },
        { version: '1', content: 'echo 1', versionDesc: '' },
        'alice',
      );
      assert.notEqual(v, 'name-taken');
      const got = await store.scripts.getVersion((v as ScriptVersion).id);
      assert.ok(got);
      assert.equal(got.script.public, false);
      assert.equal(got.script.scopeType, 'biz');
      assert.equal(got.script.scopeId, '5');
      assert.equal(got.script.language, 1);
      assert.equal(got.status, ScriptVersionStatus.DRAFT);
      assert.equal(got.content, 'echo 1');
      assert.equal(got.creator, 'alice');
      assert.equal(await store.scripts.getVersion(987_654), undefined);
    });

    it('leaves exactly one version online after concurrent publishes', async () => {
      const first = (await store.scripts.createScript(
        { public: true },
        { name: 'raced.sh', language: 1, description: '' },
        { version: '0', content: 'echo 0', versionDesc: '' },
        'bob',
      )) as ScriptVersion;
      const versions = [first];
      for (let i = 1; i < 10; i++) {
        const v = await store.scripts.createVersion(
          first.script,
          { version: String(i), content: `echo ${i}`, versionDesc: '' },
          'bob',
        );
        versions.push(v as ScriptVersion);
      }
      await Promise.all(versions.map((v) => store.scripts.publish(v, 'bob')));
      const page = await store.scripts.listVersions(first.script, {
        withContent: false,
        start: 0,
        length: 100,
      });
      assert.equal(page.items.filter((v) => v.status === ScriptVersionStatus.ONLINE).length, 1);
      assert.equal(page.items.filter((v) => v.status === ScriptVersionStatus.OFFLINE).length, 9);
    });

    it('asks every registered citer whether an item is still cited', async () => {
      const cited = (label: string) => ({ label, scopeType: 'biz', scopeId: '2' });
      assert.deepEqual(await store.references.scriptVersionsCitedBy([1, 2]), []);
      store.references.register({
        citerName: 'job plan',
        citingScriptVersions: async (ids) => (ids.includes(2) ? [cited('plan 7 (deploy)')] : []),
        citingAccount: async (id) => (id === 3 ? [cited('cron 4 (nightly)')] : []),
      });
      assert.deepEqual(await store.references.scriptVersionsCitedBy([1, 2]), [cited('plan 7 (deploy)')]);
      assert.deepEqual(await store.references.scriptVersionsCitedBy([1]), []);
      assert.deepEqual(await store.references.accountCitedBy(3), [cited('cron 4 (nightly)')]);
      assert.deepEqual(await store.references.accountCitedBy(4), []);
    });

    it('keeps the sealed password out of every account read but its own', async () => {
      const a = await store.accounts.create(
        {
          bizId: 5,
          account: 'Administrator',
          alias: 'win',
          category: 1,
          type: 2,
          osType: 'windows',
          description: '',
          password: 'pw',
          dbPort: null,
          dbSystemAccountId: null,
        },
        'carol',
        (plain, id) => `sealed(${id}):${plain.length}`,
      );
      assert.notEqual(a, 'alias-taken');
      const id = (a as { id: number }).id;
      assert.equal(await store.accounts.sealedPassword(id), `sealed(${id}):2`);
      const { items } = await store.accounts.list([5], { start: 0, length: 10 });
      for (const row of [a, await store.accounts.get(id), ...items])
        assert.equal(Object.keys(row ?? {}).includes('password_sealed'), false);
    });
  });
}
