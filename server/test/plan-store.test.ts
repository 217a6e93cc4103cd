/**
 * The plan store on both engines: templates report the library script versions and execution
 * accounts their steps cite (what the library's "still cited" check asks), and job variable
 * states and host reports keep their order and overwrite on resend.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const row = (name: string, steps: unknown[]) => ({
  scope_type: 'biz',
  scope_id: '2',
  name,
  description: '',
  creator: 'u',
  create_time: 1,
  last_modify_user: 'u',
  last_modify_time: 1,
  version: 1,
  body: JSON.stringify({ steps, vars: [], nextId: 9 }),
});

for (const engine of engines()) {
  describe(`plan store on ${engine}`, () => {
    after(dropFreshDatabases);

    test('citations of script versions and accounts, and variable states', async () => {
      const store = await Store.open({
        databaseUrl: await freshDatabase(engine),
        dataDir: tempDir('plan-store'),
      });
      try {
        const plans = store.plans;
        // A template saves only citations of versions that exist.
        const version = async (name: string) => {
          const v = await store.scripts.createScript(
            { public: false, scopeType: 'biz', scopeId: '2' },
            { name, language: 1, description: '' },
            { version: 'v1', content: 'echo 1', versionDesc: '' },
            'tester',
          );
          assert.ok(typeof v === 'object');
          return v.id;
        };
        const [v12, v123] = [await version('first'), await version('second')];
        // ... and of accounts that exist.
        await store.inventory.createBiz(2, 'two');
        const account = async (alias: string) => {
          const created = await store.accounts.create(
            {
              bizId: 2,
              account: alias,
              alias,
              category: 1,
              type: 1,
              osType: 'linux',
              description: '',
              password: undefined,
              dbPort: null,
              dbSystemAccountId: null,
            },
            'tester',
            String,
          );
          assert.ok(typeof created === 'object');
          return created.id;
        };
        const [a5, a6, a7, a8] = [
          await account('a5'),
          await account('a6'),
          await account('a7'),
          await account('a8'),
        ];
        const a = await plans.insertTemplate(
          row('cites 12', [
            { id: 1, script_info: { script_type: 2, script_version_id: v12, account: { id: a5 } } },
          ]),
        );
        const b = await plans.insertTemplate(
          row('cites 123', [
            { id: 1, script_info: { script_type: 3, script_version_id: v123, account: { id: a6 } } },
            {
              id: 2,
              file_info: {
                file_destination: { account: { id: a7 } },
                file_source_list: [{ account: { id: a8 } }],
              },
            },
          ]),
        );
        const labels = async (cited: Promise<{ label: string; scopeType: string; scopeId: string }[]>) =>
          (await cited).map((c) => `${c.label} in ${c.scopeType} ${c.scopeId}`);
        assert.deepEqual(await labels(plans.citingScriptVersions([v12])), [
          `template ${a} (cites 12) in biz 2`,
        ]);
        assert.deepEqual(await labels(plans.citingScriptVersions([v123 + 100, v123])), [
          `template ${b} (cites 123) in biz 2`,
        ]);
        assert.deepEqual(await plans.citingScriptVersions([v123 + 99]), []);
        assert.deepEqual(await labels(plans.citingAccount(a8)), [`template ${b} (cites 123) in biz 2`]);
        assert.deepEqual(await labels(plans.citingAccount(a5)), [`template ${a} (cites 12) in biz 2`]);
        assert.deepEqual(await plans.citingAccount(a8 + 100), []);

        await plans.addVarState(40, 0, 0, 'start');
        await plans.addVarState(40, 41, 0, 'after 41');
        await plans.addVarState(40, 41, 1, 'after 41 again');
        assert.deepEqual(await plans.varStates(40), [
          { stepInstanceId: 0, executeCount: 0, body: 'start' },
          { stepInstanceId: 41, executeCount: 0, body: 'after 41' },
          { stepInstanceId: 41, executeCount: 1, body: 'after 41 again' },
        ]);
        await plans.putHostVars(41, 0, 3, '{"x":"1"}');
        await plans.putHostVars(41, 0, 3, '{"x":"2"}');
        await plans.putHostVars(41, 0, 2, '{"x":"0"}');
        assert.deepEqual(await plans.hostVars(41, 0), [
          { hostId: 2, body: '{"x":"0"}' },
          { hostId: 3, body: '{"x":"2"}' },
        ]);
      } finally {
        await store.close();
      }
    });
  });
}
