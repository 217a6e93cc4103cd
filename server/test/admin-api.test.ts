/**
 * The admin API (/api/admin/...) against a real server on every engine, and the
 * `jobfleet admin` CLI as a real process against the same server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { admin, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { adminCli, startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

interface HostView {
  bk_host_id: number;
  bk_cloud_id: number;
  ip: string;
  hostname: string;
  os_type: string;
  bk_agent_id: string;
  agent_status: number;
  bk_biz_id: number | null;
  module_ids: number[];
}

function fails(env: Envelope<unknown>, name: ErrorName, ...inMessage: string[]): void {
  assert.equal(env.result, false, JSON.stringify(env));
  assert.equal(env.code, ERROR_CATALOGUE[name].code, env.message);
  assert.equal(env.data, null);
  assert.ok(env.request_id && env.job_request_id === env.request_id);
  for (const t of inMessage) assert.ok(env.message.includes(t), `"${env.message}" lacks "${t}"`);
}

function succeeds<T>(env: Envelope<T>): T {
  assert.equal(env.result, true, `${env.code} ${env.message}`);
  assert.equal(env.code, 0);
  return env.data;
}

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

for (const [index, engine] of engines().entries()) {
  describe(`admin API on ${engine}`, () => {
    let server: ServerProcess;
    const call = <T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown) =>
      admin<T>(server.url, server.adminToken, method, path, body);
    const ids: Record<string, number> = {};

    before(async () => {
      server = await startServer({ databaseUrl: await freshDatabase(engine) });
    });

    it('refuses a missing or wrong admin token, and changes nothing', async () => {
      const raw = async (headers: Record<string, string>) => {
        const res = await fetch(`${server.url}/api/admin/biz`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ id: 77, name: 'sneaky' }),
        });
        assert.equal(res.status, 200);
        return (await res.json()) as Envelope<unknown>;
      };
      fails(await raw({}), 'ADMIN_AUTH_FAILED');
      fails(await raw({ authorization: 'Bearer wrong-token' }), 'ADMIN_AUTH_FAILED');
      fails(await raw({ authorization: server.adminToken }), 'ADMIN_AUTH_FAILED');
      fails(await raw({ authorization: `Basic ${server.adminToken}` }), 'ADMIN_AUTH_FAILED');
      fails(await admin(server.url, 'wrong-token', 'GET', '/hosts'), 'ADMIN_AUTH_FAILED');
      const list = succeeds(await call<{ biz: { id: number }[] }>('GET', '/biz'));
      assert.deepEqual(list.biz, []);
    });

    it('businesses and business sets', async () => {
      assert.deepEqual(succeeds(await call('POST', '/biz', { id: 2, name: 'two' })), {
        bk_biz_id: 2,
        name: 'two',
      });
      succeeds(await call('POST', '/biz', { id: '3', name: 'three' }));
      fails(await call('POST', '/biz', { id: 2, name: 'again' }), 'CONFLICT', 'business 2');
      fails(await call('POST', '/biz', { id: 0, name: 'zero' }), 'BAD_REQUEST', 'id');
      fails(await call('POST', '/biz', { id: 8_000_000, name: 'too big' }), 'BAD_REQUEST', 'id');
      fails(await call('POST', '/biz', { id: 5 }), 'MISSING_PARAM_WITH_PARAM_NAME', '[name]');
      fails(await call('POST', '/biz', { id: 5, name: '' }), 'BAD_REQUEST', 'name');

      assert.deepEqual(
        succeeds(await call('POST', '/biz_set', { id: 8_000_001, name: 'both', biz_ids: [2, 3] })),
        {
          bk_biz_set_id: 8_000_001,
          name: 'both',
          biz_ids: [2, 3],
        },
      );
      fails(await call('POST', '/biz_set', { id: 8_000_001, name: 'dup', biz_ids: [] }), 'CONFLICT');
      fails(
        await call('POST', '/biz_set', { id: 8_000_002, name: 'bad', biz_ids: [2, 99] }),
        'RESOURCE_NOT_FOUND',
      );
      fails(await call('POST', '/biz_set', { id: 12, name: 'low', biz_ids: [2] }), 'BAD_REQUEST', 'id');
      fails(
        await call('POST', '/biz_set', { id: 8_000_003, name: 'x', biz_ids: 'all' }),
        'BAD_REQUEST',
        'biz_ids',
      );

      const list = succeeds(
        await call<{ biz: unknown[]; biz_sets: { id: number; bizIds: number[] }[] }>('GET', '/biz'),
      );
      assert.deepEqual(list.biz, [
        { id: 2, name: 'two' },
        { id: 3, name: 'three' },
      ]);
      assert.deepEqual(
        list.biz_sets.map((s) => [s.id, [...s.bizIds].sort()]),
        [[8_000_001, [2, 3]]],
        'the failed set left nothing behind',
      );
    });

    it('hosts: manual add, duplicates, assignment, listing by business', async () => {
      const web = succeeds(
        await call<HostView>('POST', '/hosts', { ip: '10.0.0.1', hostname: 'web-1', bk_biz_id: 2 }),
      );
      assert.equal(web.bk_cloud_id, 0);
      assert.equal(web.agent_status, 0);
      assert.equal(web.bk_agent_id, '');
      assert.equal(web.bk_biz_id, 2);
      assert.equal(web.os_type, 'linux');
      ids.web = web.bk_host_id;
      const win = succeeds(
        await call<HostView>('POST', '/hosts', { ip: '10.0.0.2', bk_cloud_id: '1', os_type: 'windows' }),
      );
      assert.equal(win.bk_biz_id, null);
      assert.equal(win.bk_cloud_id, 1);
      ids.win = win.bk_host_id;

      fails(await call('POST', '/hosts', { ip: '10.0.0.1' }), 'CONFLICT', 'host 0:10.0.0.1');
      fails(await call('POST', '/hosts', { ip: 'not-an-ip' }), 'BAD_REQUEST', 'ip');
      fails(await call('POST', '/hosts', { ip: '10.0.0.300' }), 'BAD_REQUEST', 'ip');
      fails(await call('POST', '/hosts', { ip: '10.0.0.9', os_type: 'beos' }), 'BAD_REQUEST', 'os_type');
      fails(await call('POST', '/hosts', { ip: '10.0.0.9', bk_cloud_id: -1 }), 'BAD_REQUEST', 'bk_cloud_id');
      fails(await call('POST', '/hosts', { ip: '10.0.0.9', bk_biz_id: 99 }), 'RESOURCE_NOT_FOUND');

      assert.deepEqual(succeeds(await call('POST', `/hosts/${ids.win}/biz`, { bk_biz_id: 3 })), {
        bk_host_id: ids.win,
        bk_biz_id: 3,
      });
      fails(await call('POST', '/hosts/987654/biz', { bk_biz_id: 3 }), 'RESOURCE_NOT_FOUND', 'host 987654');
      fails(await call('POST', `/hosts/${ids.win}/biz`, { bk_biz_id: 99 }), 'RESOURCE_NOT_FOUND');
      fails(await call('POST', '/hosts/abc/biz', { bk_biz_id: 3 }), 'BAD_REQUEST', 'id');
      fails(await call('POST', `/hosts/${ids.win}/biz`, {}), 'MISSING_PARAM_WITH_PARAM_NAME', 'bk_biz_id');

      const inBiz3 = succeeds(await call<{ hosts: HostView[] }>('GET', '/hosts?bk_biz_id=3'));
      assert.deepEqual(
        inBiz3.hosts.map((h) => h.bk_host_id),
        [ids.win],
      );
      const all = succeeds(await call<{ hosts: HostView[] }>('GET', '/hosts'));
      assert.deepEqual(
        all.hosts.map((h) => h.ip),
        ['10.0.0.1', '10.0.0.2'],
      );
      fails(await call('GET', '/hosts?bk_biz_id=x'), 'BAD_REQUEST', 'bk_biz_id');

      succeeds(await call('POST', `/hosts/${ids.win}/biz`, { bk_biz_id: null }));
      assert.deepEqual(succeeds(await call<{ hosts: HostView[] }>('GET', '/hosts?bk_biz_id=3')).hosts, []);
      succeeds(await call('POST', `/hosts/${ids.win}/biz`, { bk_biz_id: 3 }));
    });

    it('topology: sets, modules and host membership', async () => {
      const set = succeeds(await call<{ id: number }>('POST', '/topology/sets', { bk_biz_id: 2, name: 'A' }));
      ids.setA = set.id;
      fails(await call('POST', '/topology/sets', { bk_biz_id: 2, name: 'A' }), 'CONFLICT', 'set A');
      fails(await call('POST', '/topology/sets', { bk_biz_id: 99, name: 'B' }), 'RESOURCE_NOT_FOUND');
      const setC = succeeds(
        await call<{ id: number }>('POST', '/topology/sets', { bk_biz_id: 3, name: 'C' }),
      );

      const mod = succeeds(
        await call<{ id: number; set_id: number }>('POST', '/topology/modules', {
          bk_biz_id: 2,
          set_id: ids.setA,
          name: 'a1',
        }),
      );
      assert.equal(mod.set_id, ids.setA);
      ids.a1 = mod.id;
      fails(
        await call('POST', '/topology/modules', { bk_biz_id: 2, set_id: ids.setA, name: 'a1' }),
        'CONFLICT',
        'module a1',
      );
      fails(
        await call('POST', '/topology/modules', { bk_biz_id: 2, set_id: setC.id, name: 'x' }),
        'RESOURCE_NOT_FOUND',
        `set ${setC.id} in business 2`,
      );

      assert.deepEqual(
        succeeds(await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [ids.web] })),
        {
          module_id: ids.a1,
          host_ids: [ids.web],
        },
      );
      succeeds(await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [ids.web] }));
      fails(
        await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [ids.win] }),
        'ILLEGAL_PARAM',
        'not in business 2',
      );
      fails(
        await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [987_654] }),
        'RESOURCE_NOT_FOUND',
        '987654',
      );
      fails(
        await call('POST', '/topology/modules/987654/hosts', { host_ids: [ids.web] }),
        'RESOURCE_NOT_FOUND',
      );
      fails(
        await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [] }),
        'BAD_REQUEST',
        'host_ids',
      );

      assert.deepEqual(succeeds(await call('GET', '/topology?bk_biz_id=2')), {
        sets: [{ id: ids.setA, name: 'A' }],
        modules: [{ id: ids.a1, set_id: ids.setA, name: 'a1' }],
      });
      fails(await call('GET', '/topology'), 'MISSING_PARAM_WITH_PARAM_NAME', 'bk_biz_id');
      const hosts = succeeds(await call<{ hosts: HostView[] }>('GET', '/hosts?bk_biz_id=2'));
      assert.deepEqual(hosts.hosts[0]?.module_ids, [ids.a1]);
    });

    it('hosts: listing in pages by id, over the store or one business', async () => {
      type Page = { hosts: HostView[]; next_after_id?: number | null };
      const added: number[] = [];
      for (const [ip, biz] of [
        ['10.0.0.3', 2],
        ['10.0.0.4', 3],
        ['10.0.0.5', 2],
      ] as const)
        added.push(succeeds(await call<HostView>('POST', '/hosts', { ip, bk_biz_id: biz })).bk_host_id);
      const [h3, h4, h5] = added as [number, number, number];
      succeeds(await call('POST', `/topology/modules/${ids.a1}/hosts`, { host_ids: [h5] }));

      // Without limit the reply is what it always was: every host, no paging field.
      const all = succeeds(await call<Page>('GET', '/hosts'));
      assert.deepEqual(Object.keys(all), ['hosts']);
      assert.deepEqual(
        all.hosts.map((h) => h.bk_host_id),
        [ids.web, ids.win, h3, h4, h5],
      );

      const walk = async (query: string) => {
        const pages: Page[] = [];
        let after: number | null | undefined;
        do {
          const page = succeeds(
            await call<Page>('GET', `/hosts?${query}${after === undefined ? '' : `&after_id=${after}`}`),
          );
          assert.notEqual(page.next_after_id, undefined, 'a paged reply carries next_after_id');
          pages.push(page);
          after = page.next_after_id;
          assert.ok(pages.length <= 10, 'paging ends');
        } while (after !== null);
        return pages;
      };
      const pages = await walk('limit=2');
      assert.deepEqual(
        pages.map((p) => [p.hosts.map((h) => h.bk_host_id), p.next_after_id]),
        [
          [[ids.web, ids.win], ids.win],
          [[h3, h4], h4],
          [[h5], null],
        ],
      );
      assert.deepEqual(
        pages.flatMap((p) => p.hosts),
        all.hosts,
        'the pages hold the same hosts, module ids included',
      );

      const inBiz2 = await walk('bk_biz_id=2&limit=2');
      assert.deepEqual(
        inBiz2.map((p) => [p.hosts.map((h) => [h.bk_host_id, h.module_ids]), p.next_after_id]),
        [
          [
            [
              [ids.web, [ids.a1]],
              [h3, []],
            ],
            h3,
          ],
          [[[h5, [ids.a1]]], null],
        ],
      );
      // A page that ends on the last host says so, instead of sending the caller for an empty one.
      assert.deepEqual(
        succeeds(await call<Page>('GET', '/hosts?limit=5')).next_after_id,
        null,
        'five hosts in a page of five',
      );
      assert.deepEqual(succeeds(await call<Page>('GET', `/hosts?limit=2&after_id=${h5}`)), {
        hosts: [],
        next_after_id: null,
      });
      // after_id alone continues the whole listing from there.
      assert.deepEqual(succeeds(await call<Page>('GET', `/hosts?bk_biz_id=3&after_id=${ids.win}`)), {
        hosts: all.hosts.filter((h) => h.bk_host_id === h4),
      });

      for (const limit of ['0', '5001', '-1', '2.5', 'abc', ''])
        fails(await call('GET', `/hosts?limit=${limit}`), 'BAD_REQUEST', 'limit');
      for (const after of ['-1', '1.5', 'abc'])
        fails(await call('GET', `/hosts?limit=2&after_id=${after}`), 'BAD_REQUEST', 'after_id');
    });

    it('dynamic groups', async () => {
      const filter = { ip: ['10.0.0.0/24'], hostname: 'web-*', os_type: 'linux', module_ids: [ids.a1] };
      assert.deepEqual(
        succeeds(await call('POST', '/dynamic_groups', { id: 'web', bk_biz_id: 2, name: 'Web', filter })),
        { id: 'web', bk_biz_id: 2, name: 'Web', filter },
      );
      const generated = succeeds(
        await call<{ id: string }>('POST', '/dynamic_groups', { bk_biz_id: 2, name: 'All', filter: {} }),
      );
      assert.match(generated.id, /^[A-Za-z0-9_-]{1,64}$/);
      fails(
        await call('POST', '/dynamic_groups', { id: 'web', bk_biz_id: 2, name: 'W', filter: {} }),
        'CONFLICT',
      );
      fails(
        await call('POST', '/dynamic_groups', { bk_biz_id: 2, name: 'x', filter: { colour: 'red' } }),
        'BAD_REQUEST',
        'filter',
      );
      fails(
        await call('POST', '/dynamic_groups', { bk_biz_id: 2, name: 'x', filter: { ip: ['10.0.0.0/33x'] } }),
        'BAD_REQUEST',
        'filter.ip[0]',
      );
      // An octet above 255 or a mask above 32 would match other hosts (300 taken as 44).
      for (const ip of ['300.1.0.0/16', '10.0.0.0/40', '10.0.0.256'])
        fails(
          await call('POST', '/dynamic_groups', { bk_biz_id: 2, name: 'x', filter: { ip: [ip] } }),
          'BAD_REQUEST',
          'filter.ip[0]',
        );
      fails(
        await call('POST', '/dynamic_groups', { id: 'bad id!', bk_biz_id: 2, name: 'x', filter: {} }),
        'BAD_REQUEST',
        'id',
      );
      fails(
        await call('POST', '/dynamic_groups', { bk_biz_id: 99, name: 'x', filter: {} }),
        'RESOURCE_NOT_FOUND',
      );
      const list = succeeds(
        await call<{ dynamic_groups: { id: string; filter: unknown }[] }>(
          'GET',
          '/dynamic_groups?bk_biz_id=2',
        ),
      );
      assert.deepEqual(list.dynamic_groups.map((g) => g.id).sort(), [generated.id, 'web'].sort());
      assert.deepEqual(list.dynamic_groups.find((g) => g.id === 'web')?.filter, filter);
    });

    it('accounts: aliases unique within a business', async () => {
      const root = succeeds(
        await call<{ id: number; alias: string; os_user: string; biz_id: number }>('POST', '/accounts', {
          bk_biz_id: 2,
          alias: 'root',
          os_user: 'root',
        }),
      );
      assert.equal(root.alias, 'root');
      assert.equal(root.biz_id, 2);
      fails(
        await call('POST', '/accounts', { bk_biz_id: 2, alias: 'root', os_user: 'admin' }),
        'CONFLICT',
        'root',
      );
      succeeds(await call('POST', '/accounts', { bk_biz_id: 3, alias: 'root', os_user: 'admin' }));
      fails(
        await call('POST', '/accounts', { bk_biz_id: 2, alias: 'x', os_user: 'bad user;' }),
        'BAD_REQUEST',
        'os_user',
      );
      fails(
        await call('POST', '/accounts', { bk_biz_id: 99, alias: 'x', os_user: 'x' }),
        'RESOURCE_NOT_FOUND',
      );
      const list = succeeds(
        await call<{ accounts: { alias: string; os_user: string }[] }>('GET', '/accounts?bk_biz_id=3'),
      );
      assert.deepEqual(
        list.accounts.map((a) => [a.alias, a.os_user]),
        [['root', 'admin']],
      );
    });

    it('apps: grants take effect at once, a new secret replaces the old one, secrets are never listed', async () => {
      const app = { appCode: 'ops-portal', appSecret: 'ops-portal-secret-1' };
      succeeds(
        await call('POST', '/apps', {
          app_code: app.appCode,
          app_secret: app.appSecret,
          scopes: [{ type: 'biz', id: 2 }],
        }),
      );
      const agentInfo = (secret: string, biz: number) =>
        post(
          server.url,
          'query_agent_info',
          { bk_biz_id: biz, host_id_list: [ids.web ?? 0] },
          { ...app, appSecret: secret },
          { form: 'system' },
        );
      assert.equal((await agentInfo(app.appSecret, 2)).result, true);
      fails(await agentInfo(app.appSecret, 3), 'BK_PERMISSION_DENIED');

      succeeds(
        await call('POST', '/apps', {
          app_code: app.appCode,
          app_secret: 'ops-portal-secret-2',
          scopes: 'all',
        }),
      );
      fails(await agentInfo(app.appSecret, 2), 'APP_AUTH_FAILED');
      assert.equal((await agentInfo('ops-portal-secret-2', 3)).result, true);

      fails(
        await call('POST', '/apps', { app_code: 'bad code', app_secret: 'long-enough', scopes: 'all' }),
        'BAD_REQUEST',
        'app_code',
      );
      fails(
        await call('POST', '/apps', { app_code: 'admin', app_secret: 'long-enough', scopes: [] }),
        'BAD_REQUEST',
        "admin token's own code",
      );
      // The configured app's secret comes from the configuration at every start.
      fails(
        await call('POST', '/apps', { app_code: 'test-app', app_secret: 'long-enough', scopes: [] }),
        'BAD_REQUEST',
        'JOBFLEET_APP_SECRET',
      );
      fails(
        await call('POST', '/apps', { app_code: 'short', app_secret: 'short', scopes: 'all' }),
        'BAD_REQUEST',
        'app_secret',
      );
      fails(
        await call('POST', '/apps', {
          app_code: 'x',
          app_secret: 'long-enough',
          scopes: [{ type: 'team', id: 1 }],
        }),
        'BAD_REQUEST',
        'scopes',
      );
      const apps = succeeds(await call<{ apps: Record<string, unknown>[] }>('GET', '/apps'));
      assert.deepEqual(
        apps.apps.find((a) => a.app_code === app.appCode),
        { app_code: app.appCode, scopes: 'all', signature_auth: true, permissions: [] },
      );
      assert.ok(!JSON.stringify(apps).includes('secret'), 'no secret or hash in the listing');
    });

    it('answers malformed admin requests with an envelope', async () => {
      const res = await fetch(`${server.url}/api/admin/biz`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: '{"id": 9,',
      });
      assert.equal(res.status, 200);
      fails((await res.json()) as Envelope<unknown>, 'BAD_REQUEST', 'JSON');
      fails(await call('POST', '/biz', [1, 2]), 'BAD_REQUEST');
    });

    // The CLI talks HTTP only, so one engine is enough for it.
    if (index === 0) {
      it('works through the jobfleet admin CLI', async () => {
        const conn = ['--server', server.url, '--admin-token', server.adminToken];
        const ok = async (...args: string[]) => {
          const r = await adminCli([...conn, ...args]);
          assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
          return JSON.parse(r.stdout) as Record<string, unknown>;
        };
        // Each invocation is a whole node process: a few of them, checked through the HTTP API.
        assert.deepEqual(await ok('biz-create', '5', 'five'), { bk_biz_id: 5, name: 'five' });
        const host = await ok('host-add', '10.5.0.1', '--biz', '5', '--hostname', 'cli-host');
        assert.equal(host.hostname, 'cli-host');
        const set = await ok('set-create', '5', 'cli-set');
        const mod = await ok('module-create', '5', String(set.id), 'cli-mod');
        await ok('module-add-hosts', String(mod.id), String(host.bk_host_id));
        const group = await ok('group-create', '5', 'cli group', '{"hostname":"cli-*"}', '--id', 'cli-group');
        assert.equal(group.id, 'cli-group');
        assert.deepEqual(await ok('app-create', 'cli-app', 'cli-app-secret', 'biz:5,biz_set:8000001'), {
          app_code: 'cli-app',
          scopes: [
            { type: 'biz', id: 5 },
            { type: 'biz_set', id: 8_000_001 },
          ],
          permissions: [],
        });
        const hosts = succeeds(await call<{ hosts: HostView[] }>('GET', '/hosts?bk_biz_id=5'));
        assert.deepEqual(
          hosts.hosts.map((h) => [h.ip, h.module_ids]),
          [['10.5.0.1', [mod.id]]],
        );
        // host-list reads page by page and prints what the unpaged listing answers.
        assert.deepEqual(
          await ok('host-list', '--biz', '2', '--page-size', '2'),
          succeeds(await call('GET', '/hosts?bk_biz_id=2')),
        );

        const [viaEnv, wrong, dup] = await Promise.all([
          // The admin token may come from the environment instead of the flag.
          adminCli(['--server', server.url, 'account-create', '5', 'deploy', 'deploy'], {
            JOBFLEET_ADMIN_TOKEN: server.adminToken,
          }),
          adminCli(['--server', server.url, '--admin-token', 'wrong-token', 'biz-list']),
          adminCli([...conn, 'biz-create', '5', 'again']),
        ]);
        assert.equal(viaEnv.code, 0, viaEnv.stderr);
        const accounts = succeeds(
          await call<{ accounts: { alias: string }[] }>('GET', '/accounts?bk_biz_id=5'),
        );
        assert.deepEqual(
          accounts.accounts.map((a) => a.alias),
          ['deploy'],
        );
        assert.notEqual(wrong.code, 0);
        assert.match(wrong.stderr, /1238001/);
        assert.notEqual(dup.code, 0);
        assert.match(dup.stderr, /already exists \(code 1240005\)/);
      });
    }
  });
}
