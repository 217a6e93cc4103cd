/**
 * The audit log of writes: one entry per write call of each class (job submission, job
 * operation, dangerous rules, upload URLs, admin API, agent registration), with who, scope,
 * target, outcome and code, and never a secret; none for reads; queried through the admin API
 * (filters, paging) and the CLI; pruned past the retention window.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { AuditEntryView } from '../src/admin/audit-routes.js';
import { pruneAudit } from '../src/audit/audit-retention.js';
import { Store } from '../src/store/store.js';
import { admin, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { ruleHit } from './helpers/store-fixtures.js';
import { b64, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { adminCli } from './helpers/admin-cli.js';
import { stopAll, tempDir } from './helpers/processes.js';

type Entry = AuditEntryView;
interface Page {
  entries: Entry[];
  next_before_id: number | null;
}

for (const engine of engines()) {
  describe(`audit log on ${engine}`, () => {
    let fleet: Fleet;
    let hostId: number;
    const secretsSeen: string[] = [];

    before(async () => {
      fleet = await startFleet(engine, 1);
      hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
      secretsSeen.push(fleet.server.appSecret, fleet.server.adminToken, fleet.server.bootstrapToken);
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    const audit = async (query: Record<string, string | number> = {}) => {
      const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
      const r = await admin<Page>(fleet.server.url, fleet.server.adminToken, 'GET', `/audit?${q}`);
      assert.equal(r.result, true, r.message);
      return r.data;
    };
    const newest = async (action: string) => (await audit({ action, limit: 1 })).entries[0];

    test('a job submission, accepted and refused, and a job operation each leave one entry', async () => {
      const before = (await audit({ action: 'fast_execute_script' })).entries.length;
      const script = 'echo audited-script-body';
      const ok = await runScript(fleet, {
        script_content: b64(script),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(ok.result, true, ok.message);
      await waitFinished(fleet, ok.data.job_instance_id);
      const accepted = await newest('fast_execute_script');
      assert.ok(accepted);
      assert.equal(accepted.actor_kind, 'app');
      assert.equal(accepted.app_code, fleet.server.appCode);
      assert.equal(accepted.username, 'tester');
      assert.equal(accepted.scope_type, 'biz');
      assert.equal(accepted.scope_id, '2');
      assert.equal(
        accepted.target,
        `job_instance:${ok.data.job_instance_id} step_instance:${ok.data.step_instance_id}`,
      );
      assert.equal(accepted.outcome, 'ok');
      assert.equal(accepted.code, 0);
      assert.equal(accepted.source_ip, '127.0.0.1');
      assert.equal(typeof accepted.detail.request_id, 'string');

      const refused = await runScript(fleet, {
        script_content: b64(script),
        account_alias: 'no-such-account',
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(refused.code, ERROR_CATALOGUE.ACCOUNT_NOT_EXIST.code);
      const r = await newest('fast_execute_script');
      assert.equal(r?.outcome, 'refused');
      assert.equal(r?.code, ERROR_CATALOGUE.ACCOUNT_NOT_EXIST.code);
      assert.equal((await audit({ action: 'fast_execute_script' })).entries.length, before + 2);

      const wrongSecret = await post(
        fleet.server.url,
        'fast_execute_script',
        { ...fleet.scope },
        { ...fleet.creds, appSecret: 'guessed-secret-0000' },
      );
      assert.equal(wrongSecret.code, ERROR_CATALOGUE.APP_AUTH_FAILED.code);
      const guessed = await newest('fast_execute_script');
      assert.equal(guessed?.outcome, 'refused');
      assert.equal(guessed?.app_code, fleet.server.appCode, 'the app code claimed is kept');
      secretsSeen.push('guessed-secret-0000');

      const op = await post(
        fleet.server.url,
        'operate_job_instance',
        { ...fleet.scope, job_instance_id: ok.data.job_instance_id, operation_code: 1 },
        fleet.creds,
      );
      assert.equal(op.result, false, 'a finished job cannot be terminated');
      const opEntry = await newest('operate_job_instance');
      assert.equal(opEntry?.target, `job_instance:${ok.data.job_instance_id}`);
      assert.equal(opEntry?.outcome, 'refused');
      assert.equal(opEntry?.code, op.code);
    });

    test('a claimed name holding NUL is audited, and no other entry of its batch is lost', async () => {
      const nul = { appCode: 'nul\u0000app', appSecret: 'guessed-secret-0001', username: 'a\u0000b' };
      secretsSeen.push(nul.appSecret);
      const [refused, ok] = await Promise.all([
        post(fleet.server.url, 'fast_execute_script', { ...fleet.scope }, nul, { inBody: true }),
        runScript(fleet, {
          script_content: b64('echo next-to-nul'),
          target_server: { host_id_list: [hostId] },
        }),
      ]);
      assert.equal(refused.result, false);
      assert.equal(ok.result, true, ok.message);
      const entries = (await audit({ action: 'fast_execute_script', limit: 10 })).entries;
      assert.ok(
        entries.some((e) => e.target.startsWith(`job_instance:${ok.data.job_instance_id} `)),
        'the accepted call is audited',
      );
      const claimed = entries.find((e) => e.username === 'a\ufffdb');
      assert.equal(claimed?.app_code, 'nul\ufffdapp');
      assert.equal(claimed?.outcome, 'refused');
      const named = await post(
        fleet.server.url,
        'fast_execute_script',
        {
          ...fleet.scope,
          script_content: b64('true'),
          account_alias: fleet.account,
          target_server: { host_id_list: [hostId] },
        },
        { ...fleet.creds, username: 'a\u0000b' },
      );
      assert.equal(named.code, ERROR_CATALOGUE.BAD_REQUEST.code, named.message);
      // Names an admin gives are refused with NUL in them.
      const biz = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', {
        id: 77,
        name: 'a\u0000b',
      });
      assert.equal(biz.code, ERROR_CATALOGUE.BAD_REQUEST.code, biz.message);
      const twice = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz_set', {
        id: 8_000_077,
        name: 'twice',
        biz_ids: [2, 2],
      });
      assert.equal(twice.code, ERROR_CATALOGUE.BAD_REQUEST.code, twice.message);
      assert.match(twice.message, /twice/);
    });

    test('dangerous rules and upload URLs are audited; reads and checks are not', async () => {
      const rule = await post<{ id: number }>(
        fleet.server.url,
        'create_dangerous_rule',
        { ...fleet.scope, expression: 'rm -rf /audited', script_language_list: [1], action: 1 },
        fleet.creds,
      );
      assert.equal(rule.result, true, rule.message);
      const created = await newest('create_dangerous_rule');
      assert.equal(created?.target, `id:${rule.data.id}`);
      const del = await post(
        fleet.server.url,
        'delete_dangerous_rule',
        { ...fleet.scope, id: rule.data.id },
        fleet.creds,
      );
      assert.equal(del.result, true, del.message);
      assert.equal((await newest('delete_dangerous_rule'))?.target, `id:${rule.data.id}`);

      const upload = await post<{ url_map: Record<string, { upload_url: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['audited.txt'] },
        fleet.creds,
      );
      assert.equal(upload.result, true, upload.message);
      assert.equal((await newest('generate_local_file_upload_url'))?.outcome, 'ok');
      for (const u of Object.values(upload.data.url_map)) {
        secretsSeen.push(new URL(u.upload_url).pathname.split('/').at(-1) ?? u.upload_url);
      }

      const total = (await audit({ actor_kind: 'app', limit: 1000 })).entries.length;
      await get(fleet.server.url, 'get_dangerous_rule_list', { ...fleet.scope }, fleet.creds);
      await post(
        fleet.server.url,
        'check_script',
        { content: b64('echo hi'), script_language: 1 },
        fleet.creds,
      );
      await post(fleet.server.url, 'get_dangerous_rule_list', { ...fleet.scope }, fleet.creds);
      assert.equal(
        (await audit({ actor_kind: 'app', limit: 1000 })).entries.length,
        total,
        'reads leave no entry',
      );
    });

    test('the script library is audited, through an app and through the admin token alike', async () => {
      const body = {
        ...fleet.scope,
        name: 'audited',
        script_language: 1,
        content: b64('echo a'),
        version: 'v1',
      };
      const byApp = await post<{ script_id: string }>(fleet.server.url, 'create_script', body, fleet.creds);
      assert.equal(byApp.result, true, byApp.message);
      const entry = await newest('create_script');
      assert.equal(entry?.actor_kind, 'app');
      assert.equal(entry?.outcome, 'ok');
      const bridge = (name: string, b: Record<string, unknown>) =>
        fetch(`${fleet.server.url}/api/admin/v3/${name}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${fleet.server.adminToken}`, 'x-bk-username': 'root-admin' },
          body: JSON.stringify(b),
        }).then((r) => r.json() as Promise<{ result: boolean; code: number }>);
      const again = await bridge('create_script', body);
      assert.equal(again.result, false, 'the same name again is refused');
      const adminEntry = await newest('create_script');
      assert.equal(adminEntry?.actor_kind, 'admin');
      assert.equal(adminEntry?.username, 'root-admin');
      assert.equal(adminEntry?.outcome, 'refused');
      assert.equal(adminEntry?.code, again.code);
      const before = (await audit({ limit: 1000 })).entries.length;
      assert.equal((await bridge('get_script_list', fleet.scope)).result, true);
      assert.equal(
        (await audit({ limit: 1000 })).entries.length,
        before,
        'a read through the bridge leaves none',
      );
    });

    test('admin writes and agent registration are audited, refusals included', async () => {
      const app = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
        app_code: 'audited-app',
        app_secret: 'audited-app-secret-42',
        scopes: [{ type: 'biz', id: 2 }],
      });
      assert.equal(app.result, true, app.message);
      secretsSeen.push('audited-app-secret-42');
      const entry = await newest('admin POST /apps');
      assert.equal(entry?.actor_kind, 'admin');
      assert.equal(entry?.target, 'app:audited-app');
      assert.equal(entry?.outcome, 'ok');

      const denied = await admin(fleet.server.url, 'wrong-admin-token', 'POST', '/biz', {
        id: 9,
        name: 'nine',
      });
      assert.equal(denied.code, ERROR_CATALOGUE.ADMIN_AUTH_FAILED.code);
      const deniedEntry = await newest('admin POST /biz');
      assert.equal(deniedEntry?.outcome, 'refused');
      assert.equal(deniedEntry?.code, ERROR_CATALOGUE.ADMIN_AUTH_FAILED.code);

      const assigned = await admin(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        `/hosts/${hostId}/biz`,
        {
          bk_biz_id: 2,
        },
      );
      assert.equal(assigned.result, true);
      const assignEntry = await newest('admin POST /hosts/:id/biz');
      assert.equal(assignEntry?.target, `host:${hostId}`);
      assert.equal(assignEntry?.scope_id, '2');

      const reg = await newest('agent register');
      assert.equal(reg?.actor_kind, 'agent');
      assert.equal(reg?.target, `host:${hostId}`);
      assert.equal(reg?.outcome, 'ok');
      assert.equal(
        (await audit({ action: 'admin GET /hosts' })).entries.length,
        0,
        'admin reads leave no entry',
      );
    });

    test('no entry holds a secret, and the query pages by id with filters', async () => {
      const all = await audit({ limit: 1000 });
      const text = JSON.stringify(all);
      for (const s of secretsSeen)
        assert.ok(!text.includes(s), `an audit entry holds a secret (${s.slice(0, 4)}...)`);
      assert.ok(!text.includes(b64('echo audited-script-body')));

      const first = await audit({ limit: 2 });
      assert.equal(first.entries.length, 2);
      assert.ok((first.entries[0]?.id ?? 0) > (first.entries[1]?.id ?? 0), 'newest first');
      assert.equal(first.next_before_id, first.entries[1]?.id);
      const second = await audit({ limit: 2, before_id: first.next_before_id ?? 0 });
      assert.ok(second.entries.every((e) => e.id < (first.next_before_id ?? 0)));
      const refused = await audit({ outcome: 'refused', limit: 1000 });
      assert.ok(refused.entries.length >= 3 && refused.entries.every((e) => e.outcome === 'refused'));
      const byApp = await audit({ app_code: 'test-app', limit: 1000 });
      assert.ok(byApp.entries.length > 0 && byApp.entries.every((e) => e.app_code === 'test-app'));
      const bad = await admin(fleet.server.url, fleet.server.adminToken, 'GET', '/audit?limit=0');
      assert.equal(bad.code, ERROR_CATALOGUE.BAD_REQUEST.code);
    });

    test('jobfleet admin audit prints the entries', async () => {
      const page = await adminCli<Page>(
        fleet.server,
        'audit',
        '--action',
        'fast_execute_script',
        '--outcome',
        'ok',
        '--since',
        new Date(Date.now() - 3600_000).toISOString(),
      );
      assert.ok(page.entries.length >= 1);
      assert.ok(page.entries.every((e) => e.action === 'fast_execute_script' && e.outcome === 'ok'));
    });

    test('retention removes entries and rule hits past the window and keeps the rest', async () => {
      const databaseUrl = await freshDatabase(engine);
      const store = await Store.open({ databaseUrl, dataDir: tempDir('audit-retention') });
      try {
        const day = 24 * 3600_000;
        const now = Date.now();
        const entry = { actorKind: 'admin' as const, action: 'admin POST /biz', outcome: 'ok' as const };
        await store.audit.record(entry, now - 40 * day);
        await store.audit.record(entry, now - 20 * day);
        await store.audit.record(entry, now);
        await store.rules.recordHits([40, 35, 31, 30, 20, 0].map((d) => ruleHit('2', now - d * day)));
        const hitTimes = async () =>
          (await store.rules.listHits({ scopeType: 'biz', scopeId: '2', start: 0, length: 10 })).hits.map(
            (h) => Number(h.create_time),
          );
        assert.deepEqual(
          await pruneAudit(store, 0, now),
          { entries: 0, ruleHits: 0 },
          '0 keeps both forever',
        );
        assert.equal((await hitTimes()).length, 6);
        // Pages of one row: the loop, not one statement, removes the three old hits.
        assert.deepEqual(await pruneAudit(store, 30, now, 1), { entries: 1, ruleHits: 3 });
        const left = await store.audit.list({ limit: 10 });
        assert.deepEqual(
          left.map((e) => Number(e.at)),
          [now, now - 20 * day],
        );
        assert.deepEqual(
          await hitTimes(),
          [now, now - 20 * day, now - 30 * day],
          'a hit exactly 30 days old stays',
        );
      } finally {
        await store.close();
      }
    });

    test("a job's operation entries are found by their target alone, none of a neighbour's", async () => {
      const databaseUrl = await freshDatabase(engine);
      const store = await Store.open({ databaseUrl, dataDir: tempDir('audit-target') });
      try {
        const now = Date.now();
        const scope = { scopeType: 'biz', scopeId: '2' };
        const entry = (target: string, at = now, where = scope) => ({
          actorKind: 'app' as const,
          action: 'operate_job_instance',
          outcome: 'ok' as const,
          target,
          ...where,
          at,
        });
        const ours = [
          'job_instance:12',
          'job_instance:12 step_instance:34',
          'job_instance:12 step_instance:35',
        ] as const;
        await store.audit.recordMany([
          entry(ours[0]),
          entry('job_instance:12 early', now - 1000),
          entry('job_instance:1'),
          entry('job_instance:123'),
          entry('job_instance:123 step_instance:34'),
          entry('job_instance:12step_instance:34'),
          entry('job_instance:12\tstep_instance:34'),
          // `_` in a LIKE pattern matches any character: these name another target.
          entry('jobXinstance:12 step_instance:34'),
          entry('job_instanceX12'),
          entry(ours[1]),
          entry(ours[0], now, { scopeType: 'biz', scopeId: '3' }),
          entry(ours[2]),
        ]);
        const found = await store.audit.listForTarget('job_instance:12', { type: 'biz', id: '2' }, now, 100);
        assert.deepEqual(
          found.map((e) => e.target),
          ours,
        );
        const first = await store.audit.listForTarget('job_instance:12', { type: 'biz', id: '2' }, now, 2);
        assert.deepEqual(
          first.map((e) => e.target),
          ours.slice(0, 2),
          'oldest first, up to the limit',
        );
      } finally {
        await store.close();
      }
    });

    test('an entry once stored survives SIGKILL of the server', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo kept'),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      const target = `job_instance:${r.data.job_instance_id} step_instance:${r.data.step_instance_id}`;
      assert.equal((await newest('fast_execute_script'))?.target, target);
      await fleet.server.kill('SIGKILL');
      fleet.server = await fleet.server.restart();
      const kept = await newest('fast_execute_script');
      assert.equal(kept?.target, target);
      assert.equal(kept?.outcome, 'ok');
    });
  });
}
