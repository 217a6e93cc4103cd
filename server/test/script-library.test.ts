/**
 * The script library end to end: a real server and agent on each engine. Scripts are created,
 * versioned, published and run by id (the output shows which version ran); every state change
 * and every refusal answers its documented code; public scripts are seen from every business,
 * business scripts only from their own; bad input changes nothing; dangerous-command rules
 * apply when a script is saved and when it runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, get, post } from './helpers/api-client.js';
import type { ApiCreds, Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { BIZ, b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const OTHER_BIZ = 3;

interface VersionData {
  id: number;
  script_id: string;
  name: string;
  version: string;
  content: string | null;
  status: number;
  script_language: number;
  bk_scope_type?: string;
  bk_scope_id?: string;
  creator: string;
  create_time: number;
  warnings?: { line: number; level: number; line_content: string }[];
}

interface PageData<T> {
  data: T[];
  start: number;
  length: number;
  total: number;
}

for (const engine of engines()) {
  describe(`script library on ${engine}`, () => {
    let fleet: Fleet;
    let hostId = 0;
    const call = <T = unknown>(name: string, body: Record<string, unknown>, creds?: ApiCreds) =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, creds ?? fleet.creds);
    const inScope = (biz: number) => ({ bk_scope_type: 'biz', bk_scope_id: String(biz) });

    async function createScript(name: string, content: string, version = 'v1') {
      const r = await call<VersionData>('create_script', {
        name,
        script_language: 1,
        content: b64(content),
        version,
      });
      assert.equal(r.result, true, r.message);
      return r.data;
    }

    async function output(r: Envelope<{ job_instance_id: number; step_instance_id: number }>) {
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      return hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, hostId);
    }

    const target = () => ({ target_server: { host_id_list: [hostId] } });

    before(async () => {
      fleet = await startFleet(engine, 1);
      hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      const r = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', {
        id: OTHER_BIZ,
        name: 'other business',
      });
      assert.equal(r.result, true, r.message);
    });

    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('create, version, publish, run by script_id and by version id', async () => {
      const v1 = await createScript('deploy.sh', 'echo "running version one $1"');
      assert.equal(v1.status, 0);
      assert.equal(v1.version, 'v1');
      assert.equal(v1.content, 'echo "running version one $1"', 'content comes back as text');
      assert.equal(v1.bk_scope_type, 'biz');
      assert.equal(v1.bk_scope_id, String(BIZ));
      assert.equal(v1.creator, 'tester');
      assert.match(v1.script_id, /^[0-9a-f]{32}$/);
      assert.deepEqual(v1.warnings, []);

      // No version online yet: running by script_id is refused, and a draft does not run by its
      // id either (only online and offline versions run, as in BK-JOB).
      const none = await runScript(fleet, { script_id: v1.script_id, ...target() });
      assert.equal(none.code, 1244018, none.message);
      const draft = await runScript(fleet, { script_version_id: v1.id, ...target() });
      assert.equal(draft.code, 1244018, draft.message);
      assert.match(draft.message, /draft/);

      const v2r = await call<VersionData>('create_script_version', {
        script_id: v1.script_id,
        content: b64('echo "running version two $1"'),
        version: 'v2',
        version_desc: 'second',
      });
      assert.equal(v2r.result, true, v2r.message);
      const v2 = v2r.data;
      const pub = await call('publish_script_version', { script_id: v1.script_id, script_version_id: v1.id });
      assert.deepEqual(pub.data, { script_id: v1.script_id, id: v1.id, status: 1 });

      const byScript = await runScript(fleet, {
        script_id: v1.script_id,
        script_param: b64('p1'),
        script_language: 4, // ignored: a library script runs in its own language
        ...target(),
      });
      assert.match((await output(byScript)) ?? '', /running version one p1/);

      // Publishing v2 puts v1 offline; script_id now runs v2, v1 still runs by its id.
      await call('publish_script_version', { script_id: v1.script_id, script_version_id: v2.id });
      const list = await call<PageData<VersionData>>('get_script_version_list', {
        script_id: v1.script_id,
        return_script_content: true,
      });
      assert.deepEqual(
        list.data.data.map((v) => [v.version, v.status, v.content]),
        [
          ['v1', 2, 'echo "running version one $1"'],
          ['v2', 1, 'echo "running version two $1"'],
        ],
      );
      assert.equal(list.data.total, 2);
      const noContent = await get<PageData<VersionData>>(
        fleet.server.url,
        'get_script_version_list',
        { ...fleet.scope, script_id: v1.script_id },
        fleet.creds,
      );
      assert.equal(noContent.data.data[0]?.content, null);

      const run2 = await runScript(fleet, { script_id: v1.script_id, ...target() });
      assert.match((await output(run2)) ?? '', /running version two/);
      assert.match(
        (await output(await runScript(fleet, { script_version_id: v1.id, ...target() }))) ?? '',
        /running version one/,
      );

      const detail = await get<{ script_info: Record<string, unknown> }>(
        fleet.server.url,
        'get_step_instance_detail',
        {
          ...fleet.scope,
          job_instance_id: run2.data.job_instance_id,
          step_instance_id: run2.data.step_instance_id,
        },
        fleet.creds,
      );
      assert.equal(detail.result, true, detail.message);
      assert.equal(detail.data.script_info.script_type, 2);
      assert.equal(detail.data.script_info.script_id, v1.script_id);
      assert.equal(detail.data.script_info.script_version_id, v2.id);

      const scripts = await get<PageData<Record<string, unknown>>>(
        fleet.server.url,
        'get_script_list',
        { ...fleet.scope, name: 'DEPLOY' },
        fleet.creds,
      );
      assert.equal(scripts.data.total, 1);
      assert.equal(scripts.data.data[0]?.online_script_version_id, v2.id);
      assert.equal(scripts.data.data[0]?.id, v1.script_id);

      const byName = await get<VersionData>(
        fleet.server.url,
        'get_script_version_detail',
        { ...fleet.scope, script_id: v1.script_id, version: 'v1' },
        fleet.creds,
      );
      assert.equal(byName.data.id, v1.id);
      // An id of 0 or less is no id (BK-JOB): script_id and version are read, each named when missing.
      const versionDetail = (query: Record<string, string | number>) =>
        get<VersionData>(
          fleet.server.url,
          'get_script_version_detail',
          { ...fleet.scope, ...query },
          fleet.creds,
        );
      assert.equal((await versionDetail({ id: 0, script_id: v1.script_id, version: 'v1' })).data.id, v1.id);
      for (const [query, param] of [
        [{ script_id: v1.script_id }, /\[version\]/],
        [{ version: 'v1' }, /\[script_id\]/],
        [{ script_id: '', version: 'v1' }, /\[script_id\]/],
        [{ id: -1 }, /\[script_id\]/],
      ] as const) {
        const r = await versionDetail(query);
        assert.equal(r.code, 1241005, `${JSON.stringify(query)}: ${r.message}`);
        assert.match(r.message, param);
      }
    });

    test('a new version shows on its script as a change; a name in any script is found in any case', async () => {
      const v1 = await createScript('Ölwechsel.sh', 'echo one');
      const before = await call<PageData<{ id: string; last_modify_user: string; last_modify_time: number }>>(
        'get_script_list',
        { name: 'ölWECHSEL' },
      );
      assert.deepEqual(
        before.data.data.map((x) => x.id),
        [v1.script_id],
      );
      const v2 = await call<VersionData>(
        'create_script_version',
        { script_id: v1.script_id, content: b64('echo two'), version: 'v2' },
        { ...fleet.creds, username: 'bob' },
      );
      assert.equal(v2.result, true, v2.message);
      const after = await call<PageData<{ last_modify_user: string; last_modify_time: number }>>(
        'get_script_list',
        { name: 'ÖLWECHSEL' },
      );
      assert.equal(after.data.data[0]?.last_modify_user, 'bob');
      assert.ok((after.data.data[0]?.last_modify_time ?? 0) >= (before.data.data[0]?.last_modify_time ?? 0));
    });

    test('state changes and every refusal code', async () => {
      const v1 = await createScript('states.sh', 'echo states one');
      const sid = v1.script_id;
      const ref = (id: number) => ({ script_id: sid, script_version_id: id });

      const edited = await call<VersionData>('update_script_version', {
        ...ref(v1.id),
        content: b64('echo states edited'),
      });
      assert.equal(edited.data.content, 'echo states edited');
      const dup = await call('create_script_version', { script_id: sid, content: b64('x'), version: 'v1' });
      assert.equal(dup.code, 1243036, dup.message);
      // Disabling a draft is refused: only online or offline versions are disabled.
      assert.equal((await call('disable_script_version', ref(v1.id))).code, 1241003);

      await call('publish_script_version', ref(v1.id));
      const notDraft = await call('update_script_version', { ...ref(v1.id), content: b64('echo no') });
      assert.equal(notDraft.code, 1241003, notDraft.message);
      const online = await call('delete_script_version', ref(v1.id));
      assert.equal(online.code, 1243005, online.message);

      const dis = await call('disable_script_version', ref(v1.id));
      assert.deepEqual(dis.data, { script_id: sid, id: v1.id, status: 3 });
      assert.equal((await call('publish_script_version', ref(v1.id))).code, 1241003, 'disabling is final');
      assert.equal((await call('disable_script_version', ref(v1.id))).code, 1241003);
      const byVersion = await runScript(fleet, { script_version_id: v1.id, ...target() });
      assert.equal(byVersion.code, 1244014, byVersion.message);
      const byScript = await runScript(fleet, { script_id: sid, ...target() });
      assert.equal(byScript.code, 1244018, byScript.message);

      // A version of another script, or an unknown one, does not exist for this script.
      const other = await createScript('states-other.sh', 'echo other');
      const wrong = await call('publish_script_version', ref(other.id));
      assert.equal(wrong.code, 1243001, wrong.message);
      assert.equal((await call('publish_script_version', ref(999_999))).code, 1243001);
      assert.equal((await runScript(fleet, { script_version_id: 999_999, ...target() })).code, 1243001);
      assert.equal((await runScript(fleet, { script_id: 'f'.repeat(32), ...target() })).code, 1243001);

      // Renames: a name taken in the scope is refused.
      const rename = await call('update_script_basic', { script_id: sid, name: 'states-other.sh' });
      assert.equal(rename.code, 1243002, rename.message);
      const renamed = await call<{ name: string; description: string }>('update_script_basic', {
        script_id: sid,
        name: 'states-renamed.sh',
        description: 'now renamed',
      });
      assert.equal(renamed.data.name, 'states-renamed.sh');
      assert.equal(renamed.data.description, 'now renamed');
      // A rename without a description (or with null or "") keeps the description, as on BK-JOB.
      for (const description of [undefined, null, '']) {
        const kept = await call<{ name: string; description: string }>('update_script_basic', {
          script_id: sid,
          name: 'states-renamed.sh',
          ...(description === undefined ? {} : { description }),
        });
        assert.equal(kept.data.description, 'now renamed', kept.message);
      }
      const taken = await call('create_script', {
        name: 'states-renamed.sh',
        script_language: 1,
        content: b64('x'),
        version: 'v1',
      });
      assert.equal(taken.code, 1243002, taken.message);

      // Deleting the last version deletes the script; delete_script takes every version.
      const del = await call('delete_script_version', ref(v1.id));
      assert.equal(del.result, true, del.message);
      assert.equal((await call('get_script_version_list', { script_id: sid })).code, 1243001);
      assert.equal((await call('delete_script', { script_id: other.script_id })).result, true);
      assert.equal((await call('get_script_version_detail', { id: other.id })).code, 1243001);
    });

    test('public scripts are seen from every business, business scripts only from their own', async () => {
      const pub = await call<VersionData>('create_public_script', {
        name: 'public-hello',
        script_language: 1,
        content: b64('echo "public hello"'),
        version: '1.0',
      });
      assert.equal(pub.result, true, pub.message);
      assert.equal(pub.data.bk_scope_type, undefined);
      await call('publish_public_script_version', {
        script_id: pub.data.script_id,
        script_version_id: pub.data.id,
      });
      for (const biz of [BIZ, OTHER_BIZ]) {
        const seen = await post<PageData<{ id: string }>>(
          fleet.server.url,
          'get_public_script_list',
          { ...inScope(biz), name: 'public-hello' },
          fleet.creds,
        );
        assert.deepEqual(
          seen.data.data.map((s) => s.id),
          [pub.data.script_id],
        );
      }
      const run = await runScript(fleet, { script_id: pub.data.script_id, ...target() });
      assert.match((await output(run)) ?? '', /public hello/);
      const detail = await get<{ script_info: Record<string, unknown> }>(
        fleet.server.url,
        'get_step_instance_detail',
        {
          ...fleet.scope,
          job_instance_id: run.data.job_instance_id,
          step_instance_id: run.data.step_instance_id,
        },
        fleet.creds,
      );
      assert.equal(detail.data.script_info.script_type, 3);

      const mine = await createScript('only-mine.sh', 'echo mine');
      const fromOther = (name: string, body: Record<string, unknown>) =>
        post(fleet.server.url, name, { ...inScope(OTHER_BIZ), ...body }, fleet.creds);
      assert.equal((await fromOther('get_script_version_detail', { id: mine.id })).code, 1243001);
      assert.equal((await fromOther('get_script_version_list', { script_id: mine.script_id })).code, 1243001);
      assert.equal(
        (
          await fromOther('fast_execute_script', {
            script_id: mine.script_id,
            account_alias: fleet.account,
            ...target(),
          })
        ).code,
        1243001,
      );
      const otherList = await fromOther('get_script_list', {});
      assert.equal((otherList.data as PageData<unknown>).total, 0);
      // Business APIs do not reach public scripts, nor public APIs business ones.
      assert.equal((await call('get_script_version_detail', { id: pub.data.id })).code, 1243001);
      assert.equal((await call('get_public_script_version_detail', { id: mine.id })).code, 1243001);

      // Changing public scripts needs a platform app or the public_script_manage permission.
      const limited: ApiCreds = { appCode: 'limited', appSecret: 'limited-secret-1', username: 'lim' };
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
        app_code: 'limited',
        app_secret: 'limited-secret-1',
        scopes: [{ type: 'biz', id: BIZ }],
      });
      const body = { name: 'by-limited', script_language: 1, content: b64('echo x'), version: '1' };
      const denied = await post(fleet.server.url, 'create_public_script', body, limited);
      assert.equal(denied.code, 9900403, denied.message);
      const readable = await post(fleet.server.url, 'get_public_script_list', {}, limited);
      assert.equal(readable.result, true, readable.message);
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
        app_code: 'limited',
        app_secret: 'limited-secret-1',
        scopes: [{ type: 'biz', id: BIZ }],
        permissions: ['public_script_manage'],
      });
      // The app cache keeps a grant for up to 2 s; forget() is called, so it applies at once.
      const allowed = await post(fleet.server.url, 'create_public_script', body, limited);
      assert.equal(allowed.result, true, allowed.message);

      // A template of another business cites the public script: the app (of one business) is
      // refused its delete without being shown that template.
      const account = await admin<{ id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/accounts',
        {
          bk_biz_id: OTHER_BIZ,
          alias: 'other-root',
          os_user: 'root',
        },
      );
      assert.equal(account.result, true, account.message);
      const citing = await fromOther('create_job_template', {
        name: 'secret-project-template',
        step_list: [
          {
            name: 'hello',
            type: 1,
            script_info: {
              script_type: 3,
              script_id: pub.data.script_id,
              script_version_id: pub.data.id,
              account: { alias: 'other-root' },
              server: { host_id_list: [] },
            },
          },
        ],
      });
      assert.equal(citing.result, true, citing.message);
      const refused = await post(
        fleet.server.url,
        'delete_public_script',
        { script_id: pub.data.script_id },
        limited,
      );
      assert.equal(refused.code, 1243054, refused.message);
      assert.doesNotMatch(refused.message, /secret-project/);
      assert.match(refused.message, /1 in scopes you cannot see/);
      const platform = await call('delete_public_script', { script_id: pub.data.script_id });
      assert.match(platform.message, /secret-project-template/, 'an app of every scope is shown it');
    });

    test('bad names, versions and contents answer 1240003 and store nothing', async () => {
      const total = async () => (await call<PageData<unknown>>('get_script_list', { length: 1 })).data.total;
      const before = await total();
      const valid = { name: 'ok-name', script_language: 1, content: b64('echo ok'), version: 'v1' };
      const cases: Record<string, unknown>[] = [
        ...['\\', '|', '/', ':', '*', '<', '>', '"', '?'].map((c) => ({ ...valid, name: `bad${c}name` })),
        { ...valid, name: 'n'.repeat(61) },
        { ...valid, name: '   ' },
        { ...valid, name: 'nul\u0000name' },
        { ...valid, description: 'nul\u0000' },
        { ...valid, name: undefined },
        ...[' ', '!', '$', '%', '/', '+', '中'].map((c) => ({ ...valid, version: `v${c}1` })),
        { ...valid, version: 'v'.repeat(61) },
        { ...valid, version: '' },
        { ...valid, content: 'not base64!' },
        { ...valid, content: 'YWJj=' },
        { ...valid, content: Buffer.from([0xff, 0xfe, 0x00]).toString('base64') },
        { ...valid, content: b64('echo a\u0000b') },
        { ...valid, content: '' },
        { ...valid, script_language: 7 },
        { ...valid, script_language: 0 },
        { ...valid, script_language: 'shell' },
      ];
      for (const body of cases) {
        const r = await call('create_script', body);
        assert.equal(r.code, 1240003, `${JSON.stringify(body)} -> ${r.code} ${r.message}`);
        assert.match(r.message, /name|version|content|script_language|description/);
      }
      assert.equal(await total(), before);
      const bad = await call('get_script_list', { script_language: 9 });
      assert.equal(bad.code, 1241005, bad.message);
      const noId = await call('get_script_version_list', {});
      assert.equal(noId.code, 1241005, noId.message);
      // NUL in any field, ids and filters included, is refused before anything is looked up
      // (PostgreSQL answered an internal error for it).
      for (const [name, body] of [
        ['get_script_version_list', { script_id: 'a\u0000' }],
        ['get_script_list', { creator: '\u0000' }],
        ['fast_execute_script', { script_id: 'a\u0000b', target_server: { ip_list: [] } }],
        ['get_cron_list', { last_modify_user: 'x\u0000' }],
      ] as const) {
        const r = await call(name, body);
        assert.equal(r.code, 1240003, `${name}: ${r.code} ${r.message}`);
        assert.match(r.message, /must not contain NUL/);
      }
      // The longest valid name and version are accepted.
      const longest = await call('create_script', {
        ...valid,
        name: 'n'.repeat(60),
        version: `${'v'.repeat(55)}_-#@.`,
      });
      assert.equal(longest.result, true, longest.message);
    });

    test('dangerous-command rules: warnings at save, refusal at save and at run time', async () => {
      const rule = async (expression: string, action: number) => {
        const r = await post<{ id: number }>(
          fleet.server.url,
          'create_dangerous_rule',
          { expression, script_language_list: [1], action, description: `rule ${expression}` },
          fleet.creds,
        );
        assert.equal(r.result, true, r.message);
        await post(fleet.server.url, 'enable_dangerous_rule', { id: r.data.id }, fleet.creds);
        return r.data.id;
      };
      const scan = await rule('chmod\\s+777', 1);
      const saved = await createScript('warned.sh', 'echo a\nchmod 777 /tmp/x || true\n');
      assert.equal(saved.warnings?.length, 1);
      assert.equal(saved.warnings?.[0]?.line, 2);
      assert.equal(saved.warnings?.[0]?.level, 3);

      // A script saved before an intercept rule existed is still refused when it runs.
      const later = await createScript('later.sh', 'echo b\nmkfs.ext4 /dev/null || true\n');
      await call('publish_script_version', { script_id: later.script_id, script_version_id: later.id });
      const intercept = await rule('mkfs\\.', 2);
      const refused = await runScript(fleet, { script_id: later.script_id, ...target() });
      assert.equal(refused.code, 1244019, refused.message);
      const countBefore = (await call<PageData<unknown>>('get_script_list', {})).data.total;
      const atSave = await call('create_script', {
        name: 'refused.sh',
        script_language: 1,
        content: b64('echo c\nmkfs.xfs /dev/sdz\n'),
        version: 'v1',
      });
      assert.equal(atSave.code, 1244019, atSave.message);
      assert.match(atSave.message, /mkfs.* at line 2/);
      assert.equal((await call<PageData<unknown>>('get_script_list', {})).data.total, countBefore);
      const atUpdate = await call('create_script_version', {
        script_id: saved.script_id,
        content: b64('mkfs.ext3 /dev/sdq'),
        version: 'v2',
      });
      assert.equal(atUpdate.code, 1244019, atUpdate.message);
      for (const id of [scan, intercept])
        await post(fleet.server.url, 'delete_dangerous_rule', { id }, fleet.creds);
    });

    test('jobfleet admin script push and the admin bridge', async () => {
      const { execFile } = await import('node:child_process');
      const { promisify } = await import('node:util');
      const fs = await import('node:fs');
      const path = await import('node:path');
      const { CLI, tempDir } = await import('./helpers/processes.js');
      const file = path.join(tempDir('push'), 'pushed.sh');
      fs.writeFileSync(file, 'echo "pushed from a file"\n');
      const cli = (...args: string[]) =>
        promisify(execFile)(process.execPath, [CLI, 'admin', '--server', fleet.server.url, ...args], {
          env: { ...process.env, JOBFLEET_ADMIN_TOKEN: fleet.server.adminToken },
        });
      const push = async (version: string) => {
        const args = ['--biz', String(BIZ), '--name', 'pushed.sh', '--version', version, '--publish'];
        return JSON.parse((await cli('script', 'push', file, ...args)).stdout) as VersionData;
      };
      const v = await push('1.0');
      assert.equal(v.status, 1);
      assert.equal(v.creator, 'admin');
      const run = await runScript(fleet, { script_id: v.script_id, ...target() });
      assert.match((await output(run)) ?? '', /pushed from a file/);
      // A second push of the same name adds a version to the same script.
      fs.writeFileSync(file, 'echo "pushed again"\n');
      const again = await push('2.0');
      assert.equal(again.script_id, v.script_id);
      assert.match(
        (await output(await runScript(fleet, { script_id: v.script_id, ...target() }))) ?? '',
        /pushed again/,
      );
      const listed = JSON.parse(
        (await cli('script', 'list', '--biz', String(BIZ), '--name', 'pushed')).stdout,
      ) as PageData<{
        id: string;
      }>;
      assert.deepEqual(
        listed.data.map((s) => s.id),
        [v.script_id],
      );
      await assert.rejects(
        cli('script', 'push', file, '--biz', String(BIZ), '--name', 'bad|name', '--version', '3'),
        /1240003/,
      );
    });

    test('the admin bridge needs the admin token', async () => {
      for (const authorization of [undefined, 'Bearer wrong-token']) {
        const res = await fetch(`${fleet.server.url}/api/admin/v3/get_script_list`, {
          method: 'POST',
          headers: authorization ? { authorization } : {},
          body: JSON.stringify(fleet.scope),
        });
        const env = (await res.json()) as { result: boolean; code: number };
        assert.equal(env.code, 1238001);
      }
      const ok = await fetch(`${fleet.server.url}/api/admin/v3/get_script_list`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fleet.server.adminToken}` },
        body: JSON.stringify(fleet.scope),
      });
      assert.equal(((await ok.json()) as { result: boolean }).result, true);
    });

    test('lists filter by who changed a script and when', async () => {
      const list = async (body: Record<string, unknown>) =>
        (
          await call<PageData<{ name: string; creator: string }>>('get_script_list', {
            length: 1000,
            ...body,
          })
        ).data;
      const byAdmin = await list({ creator: 'admin' });
      assert.deepEqual(
        byAdmin.data.map((s) => s.name),
        ['pushed.sh'],
      );
      const mark = Date.now();
      const fresh = await createScript('fresh.sh', 'echo fresh');
      const since = await list({ create_time_start: mark });
      assert.deepEqual(
        since.data.map((s) => s.name),
        ['fresh.sh'],
      );
      const before = await list({ create_time_end: mark - 1 });
      assert.equal(
        before.data.some((s) => s.name === 'fresh.sh'),
        false,
      );
      assert.equal(before.total + since.total, (await list({})).total);
      const touched = await list({ last_modify_time_start: fresh.create_time, last_modify_user: 'tester' });
      assert.deepEqual(
        touched.data.map((s) => s.name),
        ['fresh.sh'],
      );
      assert.equal((await call('get_script_list', { create_time_start: 'yesterday' })).code, 1240003);
    });
  });
}
