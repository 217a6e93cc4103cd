/**
 * The BK-JOB wire contract, end to end against a real server process on every engine: URL
 * forms, credential carriers, app scopes and grants, `bk_biz_id` compatibility, and the
 * envelope answered to every class of bad input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { admin, apiUrl, eventually, post } from './helpers/api-client.js';
import type { ApiCreds, Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { startAgent, startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const BODY_LIMIT = 16_384;

interface Reply {
  status: number;
  contentType: string;
  env: Envelope<unknown>;
}

async function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const res = await fetch(url, {
    method: init.method ?? 'POST',
    headers: init.headers ?? {},
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await res.text();
  let env: Envelope<unknown>;
  try {
    env = JSON.parse(text) as Envelope<unknown>;
  } catch {
    throw new Error(`HTTP ${res.status} answered something that is not JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', env };
}

/** A failure as BK-JOB answers it: HTTP 200, JSON, result false, the code, both request ids. */
function assertFailure(r: Reply, name: ErrorName, ...inMessage: string[]): void {
  assert.equal(r.status, ERROR_CATALOGUE[name].http, JSON.stringify(r.env));
  assert.match(r.contentType, /^application\/json/);
  assert.equal(r.env.result, false);
  assert.equal(r.env.code, ERROR_CATALOGUE[name].code, r.env.message);
  assert.equal(r.env.data, null);
  assert.match(r.env.request_id, /^[0-9a-f]{32}$/);
  assert.equal(r.env.job_request_id, r.env.request_id);
  for (const text of inMessage) assert.ok(r.env.message.includes(text), `"${r.env.message}" lacks "${text}"`);
}

function assertEnvFailure(env: Envelope<unknown>, name: ErrorName, ...inMessage: string[]): void {
  assertFailure({ status: 200, contentType: 'application/json', env }, name, ...inMessage);
}

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

for (const engine of engines()) {
  describe(`API contract on ${engine}`, () => {
    let server: ServerProcess;
    let creds: ApiCreds;
    let agentHostId: number;
    let manualHostId: number;
    let biz3HostId: number;
    const scopedApp: ApiCreds = { appCode: 'only-biz-2', appSecret: 'only-biz-2-secret' };
    const setApp: ApiCreds = { appCode: 'biz-set-app', appSecret: 'biz-set-app-secret' };

    const sys = (path = 'query_agent_info') => apiUrl(server.url, path, 'system');
    const headerAuth = (c: ApiCreds = creds) => ({
      'content-type': 'application/json',
      'x-bkapi-authorization': JSON.stringify({
        bk_app_code: c.appCode,
        bk_app_secret: c.appSecret,
        bk_username: 'tester',
      }),
    });
    const agentInfo = (body: Record<string, unknown>, c: ApiCreds = creds) =>
      post<{ agent_info_list: { bk_host_id: number; status: number; version: string }[] }>(
        server.url,
        'query_agent_info',
        body,
        c,
        { form: 'system' },
      );

    before(async () => {
      server = await startServer({
        databaseUrl: await freshDatabase(engine),
        args: ['--body-limit-bytes', String(BODY_LIMIT)],
      });
      creds = { appCode: server.appCode, appSecret: server.appSecret };
      const adm = (path: string, body: unknown) =>
        admin(server.url, server.adminToken, 'POST', path, body).then((env) => {
          assert.equal(env.result, true, `${path}: ${env.message}`);
          return env.data as Record<string, unknown>;
        });
      await adm('/biz', { id: 2, name: 'two' });
      await adm('/biz', { id: 3, name: 'three' });
      await adm('/biz', { id: 4, name: 'four' });
      await adm('/biz_set', { id: 8_000_001, name: 'two and three', biz_ids: [2, 3] });
      await adm('/apps', {
        app_code: scopedApp.appCode,
        app_secret: scopedApp.appSecret,
        scopes: [{ type: 'biz', id: 2 }],
      });
      await adm('/apps', {
        app_code: setApp.appCode,
        app_secret: setApp.appSecret,
        scopes: [{ type: 'biz_set', id: 8_000_001 }],
      });
      manualHostId = (await adm('/hosts', { ip: '10.9.0.1', bk_biz_id: 2 })).bk_host_id as number;
      const agent = await startAgent({ server, ip: '127.0.0.2', biz: 2 });
      const agent3 = await startAgent({ server, ip: '127.0.0.3', biz: 3 });
      void agent;
      void agent3;
      const hosts = (await admin(server.url, server.adminToken, 'GET', '/hosts')).data as {
        hosts: { bk_host_id: number; ip: string }[];
      };
      agentHostId = hosts.hosts.find((h) => h.ip === '127.0.0.2')?.bk_host_id ?? -1;
      biz3HostId = hosts.hosts.find((h) => h.ip === '127.0.0.3')?.bk_host_id ?? -1;
    });

    it('answers query_agent_info on /api/v3/system/ with the hosts of the scope', async () => {
      const env = await agentInfo({
        bk_scope_type: 'biz',
        bk_scope_id: '2',
        host_id_list: [agentHostId, manualHostId, biz3HostId, agentHostId, 987_654],
      });
      assert.equal(env.result, true, env.message);
      assert.equal(env.code, 0);
      assert.match(env.request_id, /^[0-9a-f]{32}$/);
      assert.equal(env.job_request_id, env.request_id);
      assert.deepEqual(env.data.agent_info_list, [{ bk_host_id: agentHostId, status: 1, version: '0.1.0' }]);
    });

    it('collapses duplicates: 5000 copies of one id give one item; 5001 entries are refused', async () => {
      const ok = await agentInfo({
        bk_scope_type: 'biz',
        bk_scope_id: 2,
        host_id_list: Array.from({ length: 5000 }, () => agentHostId),
      });
      assert.equal(ok.data.agent_info_list.length, 1);
      const r = await send(sys(), {
        headers: headerAuth(),
        body: JSON.stringify({
          bk_scope_type: 'biz',
          bk_scope_id: 2,
          host_id_list: Array.from({ length: 5001 }, () => 1),
        }),
      });
      assertFailure(r, 'BAD_REQUEST', 'host_id_list', '5000');
    });

    it('serves a system-only API under /api/v3/system/ alone, with a clear error elsewhere', async () => {
      const body = JSON.stringify({ bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] });
      for (const url of [
        `${server.url}/api/c/compapi/v2/jobv3/query_agent_info/`,
        `${server.url}/api/c/compapi/v2/jobv3/query_agent_info`,
        `${server.url}/api/v3/query_agent_info`,
        `${server.url}/api/v3/query_agent_info/`,
      ]) {
        assertFailure(
          await send(url, { headers: headerAuth(), body }),
          'BAD_REQUEST',
          '/api/v3/system/query_agent_info',
        );
      }
      const withSlash = await send(`${sys()}/`, { headers: headerAuth(), body });
      assert.equal(withSlash.env.result, true, withSlash.env.message);
    });

    it('accepts credentials in the header, the body and the query string', async () => {
      const scope = { bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] };
      const inHeader = await agentInfo(scope);
      assert.equal(inHeader.result, true, inHeader.message);
      const inBody = await post(server.url, 'query_agent_info', scope, creds, {
        form: 'system',
        inBody: true,
      });
      assert.equal(inBody.result, true, inBody.message);
      const q = new URLSearchParams({
        bk_app_code: creds.appCode,
        bk_app_secret: creds.appSecret,
        bk_username: 'u',
      });
      const inQuery = await send(`${sys()}?${q}`, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(scope),
      });
      assert.equal(inQuery.env.result, true, inQuery.env.message);
      assert.deepEqual(inQuery.env.data, inHeader.data);
    });

    it('refuses a wrong secret or an unknown app (1247403) and missing credentials (1247004)', async () => {
      const scope = { bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] };
      assertEnvFailure(await agentInfo(scope, { ...creds, appSecret: 'wrong-secret' }), 'APP_AUTH_FAILED');
      assertEnvFailure(
        await agentInfo(scope, { appCode: 'nobody', appSecret: 'whatever-secret' }),
        'APP_AUTH_FAILED',
      );
      assertEnvFailure(
        await agentInfo(scope, { ...scopedApp, appSecret: creds.appSecret }),
        'APP_AUTH_FAILED',
        'bk_app_secret',
      );
      const none = await send(sys(), {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(scope),
      });
      assertFailure(none, 'MISSING_APP_CODE', 'bk_app_code');
      const codeOnly = await send(sys(), {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...scope, bk_app_code: creds.appCode }),
      });
      assertFailure(codeOnly, 'MISSING_APP_CODE');
      const badHeader = await send(sys(), {
        headers: { 'content-type': 'application/json', 'x-bkapi-authorization': '{not json' },
        body: JSON.stringify(scope),
      });
      assertFailure(badHeader, 'MISSING_APP_CODE');
    });

    it('holds an app to its granted business (9900403 with a permission object)', async () => {
      const allowed = await agentInfo(
        { bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] },
        scopedApp,
      );
      assert.equal(allowed.result, true, allowed.message);
      assert.equal(allowed.data.agent_info_list.length, 1);

      const denied = await agentInfo(
        { bk_scope_type: 'biz', bk_scope_id: '3', host_id_list: [biz3HostId] },
        scopedApp,
      );
      assertEnvFailure(denied, 'BK_PERMISSION_DENIED', scopedApp.appCode, 'biz 3');
      const permission = denied.permission as {
        system_id: string;
        actions: {
          id: string;
          related_resource_types: { type: string; instances: { id: string; name: string }[][] }[];
        }[];
      };
      assert.equal(permission.system_id, 'bk_job');
      assert.equal(permission.actions[0]?.id, 'access_business');
      assert.equal(permission.actions[0]?.related_resource_types[0]?.type, 'biz');
      assert.deepEqual(
        permission.actions[0]?.related_resource_types[0]?.instances[0]?.map((i) => [i.id, i.name]),
        [['3', 'three']],
      );
      assertEnvFailure(
        await agentInfo(
          { bk_scope_type: 'biz_set', bk_scope_id: '8000001', host_id_list: [agentHostId] },
          scopedApp,
        ),
        'BK_PERMISSION_DENIED',
        'biz_set 8000001',
      );
      const okEnv = await agentInfo(
        { bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] },
        scopedApp,
      );
      assert.equal(okEnv.permission, undefined, 'permission appears on 9900403 only');
    });

    it('lets a business-set grant reach the set and each member business, nothing else', async () => {
      for (const [type, id, host] of [
        ['biz_set', '8000001', agentHostId],
        ['biz', '2', agentHostId],
        ['biz', '3', biz3HostId],
      ] as const) {
        const env = await agentInfo({ bk_scope_type: type, bk_scope_id: id, host_id_list: [host] }, setApp);
        assert.equal(env.result, true, `${type} ${id}: ${env.message}`);
        assert.deepEqual(
          env.data.agent_info_list.map((a) => a.bk_host_id),
          [host],
        );
      }
      const set = await agentInfo(
        { bk_scope_type: 'biz_set', bk_scope_id: '8000001', host_id_list: [agentHostId, biz3HostId] },
        setApp,
      );
      assert.deepEqual(
        set.data.agent_info_list.map((a) => a.bk_host_id).sort((a, b) => a - b),
        [agentHostId, biz3HostId].sort((a, b) => a - b),
      );
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'biz', bk_scope_id: '4', host_id_list: [agentHostId] }, setApp),
        'BK_PERMISSION_DENIED',
        'biz 4',
      );
    });

    it('reads bk_biz_id as a business, or as a business set from 8000000 to 9999999', async () => {
      const asBiz = await agentInfo({ bk_biz_id: 2, host_id_list: [agentHostId, biz3HostId] });
      assert.deepEqual(
        asBiz.data.agent_info_list.map((a) => a.bk_host_id),
        [agentHostId],
      );
      const asText = await agentInfo({ bk_biz_id: '3', host_id_list: [agentHostId, biz3HostId] });
      assert.deepEqual(
        asText.data.agent_info_list.map((a) => a.bk_host_id),
        [biz3HostId],
      );
      const asSet = await agentInfo({ bk_biz_id: 8_000_001, host_id_list: [agentHostId, biz3HostId] });
      assert.equal(asSet.data.agent_info_list.length, 2);
      assertEnvFailure(
        await agentInfo({ bk_biz_id: 8_000_099, host_id_list: [1] }),
        'APP_NOT_EXIST',
        'biz_set:8000099',
      );
      assertEnvFailure(
        await agentInfo({ bk_biz_id: 3, host_id_list: [1] }, scopedApp),
        'BK_PERMISSION_DENIED',
      );
    });

    it('answers 1243049 for an unknown scope and names scope fields that are missing or wrong', async () => {
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'biz', bk_scope_id: '999', host_id_list: [1] }),
        'APP_NOT_EXIST',
        'biz:999',
      );
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'biz_set', bk_scope_id: '8000002', host_id_list: [1] }),
        'APP_NOT_EXIST',
        'biz_set:8000002',
      );
      assertEnvFailure(
        await agentInfo({ host_id_list: [1] }),
        'MISSING_PARAM_WITH_PARAM_NAME',
        'bk_scope_type',
      );
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'biz', host_id_list: [1] }),
        'MISSING_PARAM_WITH_PARAM_NAME',
        'bk_scope_id',
      );
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'galaxy', bk_scope_id: '2', host_id_list: [1] }),
        'BAD_REQUEST',
        'bk_scope_type',
      );
      assertEnvFailure(
        await agentInfo({ bk_scope_type: 'biz', bk_scope_id: 'two', host_id_list: [1] }),
        'BAD_REQUEST',
        'bk_scope_id',
      );
      assertEnvFailure(await agentInfo({ bk_biz_id: 0, host_id_list: [1] }), 'BAD_REQUEST', 'bk_biz_id');
      assertEnvFailure(await agentInfo({ bk_biz_id: 'x', host_id_list: [1] }), 'BAD_REQUEST', 'bk_biz_id');
    });

    it('answers every class of bad input with an envelope naming the problem', async () => {
      const scope = { bk_scope_type: 'biz', bk_scope_id: '2' };
      const raw = (body: string, headers: Record<string, string> = headerAuth()) =>
        send(sys(), { headers, body });

      assertFailure(await raw('{"bk_scope_type": "biz", '), 'BAD_REQUEST', 'not valid JSON');
      assertFailure(
        await raw('host_id_list=1', { ...headerAuth(), 'content-type': 'application/x-www-form-urlencoded' }),
        'BAD_REQUEST',
        'JSON',
      );
      for (const body of ['[1, 2]', '"text"', '42', 'true', 'null']) {
        assertFailure(await raw(body), 'BAD_REQUEST', 'JSON object');
      }
      const typed = (fields: Record<string, unknown>) => raw(JSON.stringify({ ...scope, ...fields }));
      assertFailure(await typed({ host_id_list: 'abc' }), 'BAD_REQUEST', 'host_id_list');
      assertFailure(await typed({ host_id_list: [agentHostId, 'x'] }), 'BAD_REQUEST', 'host_id_list[1]');
      assertFailure(await typed({ host_id_list: [{ id: 1 }] }), 'BAD_REQUEST', 'host_id_list[0]');
      assertFailure(await typed({ host_id_list: [1.5] }), 'BAD_REQUEST', 'host_id_list[0]');
      assertFailure(await typed({ host_id_list: [2 ** 60] }), 'BAD_REQUEST', 'host_id_list[0]');
      assertFailure(
        await typed({ host_id_list: ['99999999999999999999'] }),
        'BAD_REQUEST',
        'host_id_list[0]',
      );
      assertFailure(await typed({}), 'MISSING_PARAM_WITH_PARAM_NAME', 'host_id_list');
      // null is an absent field, as in BK-JOB's JSON binding.
      assertFailure(await typed({ host_id_list: null }), 'MISSING_PARAM_WITH_PARAM_NAME', 'host_id_list');

      const big = JSON.stringify({ ...scope, host_id_list: Array.from({ length: BODY_LIMIT }, () => 1) });
      assertFailure(await raw(big), 'BAD_REQUEST', `limit of ${BODY_LIMIT} bytes`);

      const extra = await typed({
        host_id_list: [agentHostId],
        unknown_field: { deep: [1, 2] },
        another: 'x',
      });
      assert.equal(extra.env.result, true, 'unknown fields are ignored');

      const plain = await raw(JSON.stringify({ ...scope, host_id_list: [agentHostId] }), {
        ...headerAuth(),
        'content-type': 'text/plain',
      });
      assert.equal(plain.env.result, true, 'a JSON body is read whatever its content type');

      const get = await send(`${sys()}?bk_scope_type=biz&bk_scope_id=2&host_id_list=1`, {
        method: 'GET',
        headers: headerAuth(),
      });
      assertFailure(get, 'BAD_REQUEST', 'POST only');
      for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const r = await send(sys(), { method, headers: headerAuth(), body: '{}' });
        assertFailure(r, 'BAD_REQUEST', method);
      }
      assertFailure(
        await send(apiUrl(server.url, 'no_such_api'), { headers: headerAuth(), body: '{}' }),
        'BAD_REQUEST',
        'no_such_api',
      );
      assertFailure(
        await send(apiUrl(server.url, 'no_such_api', 'esb'), { headers: headerAuth(), body: '{}' }),
        'BAD_REQUEST',
        'no_such_api',
      );
    });

    it('answers unknown paths with a JSON envelope, never a page', async () => {
      // Other GETs belong to the web console (console/test covers them).
      for (const [method, path] of [
        ['POST', '/'],
        ['POST', '/nope'],
        ['POST', '/api/v3/a/b/c'],
        ['GET', '/api/admin/nothing-here'],
        ['GET', '/api/nope'],
        ['GET', '/agent/nope'],
        ['GET', '/metrics/nope'],
      ] as const) {
        const r = await send(`${server.url}${path}`, { method });
        assertFailure(r, 'NOT_FOUND', `${method} ${path}`);
      }
    });

    it('answers GET /healthz with 200', async () => {
      const res = await fetch(`${server.url}/healthz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: 'ok' });
    });

    it('logs each request under the id it answers with', async () => {
      const ok = await agentInfo({ bk_scope_type: 'biz', bk_scope_id: '2', host_id_list: [agentHostId] });
      const bad = await send(sys(), { headers: headerAuth(), body: '{oops' });
      // The log line may reach us through the pipe a moment after the reply.
      for (const id of [ok.request_id, bad.env.request_id]) {
        await eventually(
          async () => (server.output().includes(id) ? true : undefined),
          10_000,
          `request id ${id} in the server log`,
        );
      }
    });
  });
}
