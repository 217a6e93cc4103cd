/**
 * How request parameters reach an endpoint, in-process through the HTTP app factory with two
 * echo endpoints: GET query strings (every value a string) and POST bodies (JSON types) must
 * give a handler the same typed input, on every URL form; bad values are named.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { EventStreams } from '../src/streams/event-streams.js';
import { Metrics } from '../src/metrics/metrics.js';
import { z } from 'zod';
import { AgentHub } from '../src/agent-link/agent-hub.js';
import { Authenticator } from '../src/api/auth.js';
import { defineEndpoint } from '../src/api/endpoint.js';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { buildHttpApp } from '../src/api/http-app.js';
import { ApiRateLimits } from '../src/api/rate-limits.js';
import { AuditTrail } from '../src/audit/audit-trail.js';
import { zBool, zInt, zLong } from '../src/api/input-types.js';
import { loadConfig } from '../src/config.js';
import { openSecretBox, resolveSecrets } from '../src/secrets.js';
import type { Services } from '../src/services.js';
import { appSecretPurpose } from '../src/store/app-store.js';
import { operatorAuthFor } from '../src/operators/operator-setup.js';
import { Store } from '../src/store/store.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const Input = z.object({
  count: zInt,
  flag: zBool,
  big: zLong.optional(),
  ids: z.array(zLong).optional(),
  name: z.string().optional(),
});

const echoParams = defineEndpoint({
  name: 'echo_params',
  kind: 'read',
  permission: 'read',
  input: Input,
  async handle(ctx, input) {
    return { input, scope: ctx.scope, caller: { app: ctx.caller.appCode, user: ctx.caller.username } };
  },
});

let writes = 0;
const echoWrite = defineEndpoint({
  name: 'echo_write',
  kind: 'write',
  permission: 'read',
  scoped: false,
  input: z.object({ count: zInt }),
  async handle(_ctx, input) {
    writes++;
    return input;
  },
});

interface EchoData {
  input: z.output<typeof Input>;
  scope: { type: string; id: number; bizIds: number[] };
  caller: { app: string; user: string };
}

const APP_SECRET = 'in-process-secret';

after(dropFreshDatabases);

for (const engine of engines()) {
  describe(`request parameters on ${engine}`, () => {
    let app: FastifyInstance;
    let store: Store;
    let auth: string;

    before(async () => {
      const dataDir = tempDir('params');
      const databaseUrl = await freshDatabase(engine);
      const config = loadConfig({
        flags: {
          dataDir,
          databaseUrl,
          appSecret: APP_SECRET,
          adminToken: 'in-process-admin',
          agentBootstrapToken: 'in-process-bootstrap',
          logLevel: 'silent',
        },
      });
      store = await Store.open({ databaseUrl, dataDir });
      const secrets = resolveSecrets(config);
      const secretBox = openSecretBox(config, secrets);
      await store.apps.upsertApp({
        appCode: config.appCode,
        secretSealed: secretBox.seal(APP_SECRET, appSecretPurpose(config.appCode)),
        scopes: 'all',
      });
      await store.inventory.createBiz(2, 'two');
      await store.inventory.createBizSet(8_000_001, 'set', [2]);
      const services = {
        config,
        processId: 'in-process',
        secrets,
        secretBox,
        store,
        auth: new Authenticator(store.apps, secretBox, store.nonces),
        log: pino({ level: 'silent' }),
        operators: operatorAuthFor(config, secrets, store),
        limits: new ApiRateLimits(config),
        auditTrail: new AuditTrail(store.audit, pino({ level: 'silent' })),
        streams: new EventStreams(store.executions.events, config.streamPollMs),
      } as Omit<Services, 'hub' | 'engine' | 'metrics' | 'outputs'> as Services;
      services.hub = new AgentHub(services);
      services.metrics = new Metrics(services);
      app = buildHttpApp(services, [echoParams, echoWrite]);
      await app.ready();
      auth = JSON.stringify({ bk_app_code: config.appCode, bk_app_secret: APP_SECRET, bk_username: 'alice' });
    });
    after(async () => {
      await app?.close();
      await store?.close();
    });

    const get = async (
      path: string,
      query: Record<string, string | string[]>,
      headers: Record<string, string> = {},
    ) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) for (const one of [v].flat()) q.append(k, one);
      const res = await app.inject({
        method: 'GET',
        url: `${path}?${q}`,
        headers: { 'x-bkapi-authorization': auth, ...headers },
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<Envelope<EchoData>>();
    };
    const postTo = async (path: string, body: unknown, query = '') => {
      const res = await app.inject({
        method: 'POST',
        url: `${path}${query}`,
        headers: { 'x-bkapi-authorization': auth, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<Envelope<EchoData>>();
    };
    const fails = (env: Envelope<unknown>, name: ErrorName, ...inMessage: string[]) => {
      assert.equal(env.result, false, JSON.stringify(env));
      assert.equal(env.code, ERROR_CATALOGUE[name].code, env.message);
      assert.ok(env.request_id && env.job_request_id === env.request_id);
      for (const t of inMessage) assert.ok(env.message.includes(t), `"${env.message}" lacks "${t}"`);
    };
    const scope = { bk_scope_type: 'biz', bk_scope_id: '2' };

    it('reads numbers and booleans sent as strings in a GET query, on every URL form', async () => {
      const expected = { count: 10, flag: true, big: Number.MAX_SAFE_INTEGER, name: 'x' };
      const query = { ...scope, count: '10', flag: 'true', big: String(Number.MAX_SAFE_INTEGER), name: 'x' };
      for (const path of [
        '/api/v3/echo_params',
        '/api/v3/echo_params/',
        '/api/v3/system/echo_params',
        '/api/c/compapi/v2/jobv3/echo_params/',
        '/api/c/compapi/v2/jobv3/echo_params',
      ]) {
        const env = await get(path, query);
        assert.equal(env.result, true, `${path}: ${env.message}`);
        assert.deepEqual(env.data.input, expected, path);
        assert.deepEqual(env.data.scope.bizIds, [2]);
      }
      // Spring's string-to-boolean conversion, including Python's str(True) and str(False).
      for (const [text, value] of [
        ['false', false],
        ['1', true],
        ['0', false],
        ['True', true],
        ['False', false],
        ['TRUE', true],
        [' yes ', true],
        ['No', false],
        ['on', true],
        ['OFF', false],
      ] as const) {
        const env = await get('/api/v3/echo_params', { ...scope, count: '-3', flag: text });
        assert.equal(env.data.input.flag, value, text);
        assert.equal(env.data.input.count, -3);
      }
      const list = await get('/api/v3/echo_params', { ...scope, count: '1', flag: 'true', ids: ['4', '5'] });
      assert.deepEqual(list.data.input.ids, [4, 5]);
      const signed = await get('/api/v3/echo_params', { ...scope, count: ' +5 ', flag: 'True', big: '+7' });
      assert.deepEqual(signed.data.input, { count: 5, flag: true, big: 7 });
    });

    it('takes an empty query value as absent, so the default applies', async () => {
      const env = await get('/api/v3/echo_params', { ...scope, count: '2', flag: 'on', big: '', name: '' });
      assert.equal(env.result, true, env.message);
      assert.deepEqual(env.data.input, { count: 2, flag: true });
      fails(
        await get('/api/v3/echo_params', { ...scope, count: '2', flag: '' }),
        'MISSING_PARAM_WITH_PARAM_NAME',
        '[flag]',
      );
    });

    it('reads the same input from a POST body, with JSON types or strings', async () => {
      const asJson = await postTo('/api/v3/echo_params', { ...scope, count: 10, flag: true, ids: [4, '5'] });
      assert.deepEqual(asJson.data.input, { count: 10, flag: true, ids: [4, 5] });
      const asText = await postTo('/api/v3/echo_params', { ...scope, count: '10', flag: 'false' });
      assert.deepEqual(asText.data.input, { count: 10, flag: false });
      // Jackson takes a boolean written as text, as Python clients that str() every value send it.
      for (const [flag, value] of [
        ['True', true],
        ['1', true],
        ['FALSE', false],
      ] as const) {
        const env = await postTo('/api/v3/echo_params', { ...scope, count: 1, flag });
        assert.equal(env.data.input.flag, value, flag);
      }
      // Query values fill what the body lacks; the body wins where both have a value.
      const mixed = await postTo(
        '/api/v3/echo_params',
        { count: 7, flag: true },
        '?bk_biz_id=8000001&count=99',
      );
      assert.equal(mixed.result, true, mixed.message);
      assert.equal(mixed.data.input.count, 7);
      assert.equal(mixed.data.scope.type, 'biz_set');
    });

    it('names the field of a bad or missing value', async () => {
      const base = { ...scope, count: '1', flag: 'true' };
      fails(await get('/api/v3/echo_params', { ...base, count: 'abc' }), 'BAD_REQUEST', 'count');
      fails(await get('/api/v3/echo_params', { ...base, count: '1.5' }), 'BAD_REQUEST', 'count');
      fails(await get('/api/v3/echo_params', { ...base, count: '2147483648' }), 'BAD_REQUEST', 'count');
      fails(await get('/api/v3/echo_params', { ...base, flag: 'maybe' }), 'BAD_REQUEST', 'flag');
      fails(await get('/api/v3/echo_params', { ...base, big: '9007199254740992' }), 'BAD_REQUEST', 'big');
      fails(await get('/api/v3/echo_params', { ...base, ids: ['1', 'x'] }), 'BAD_REQUEST', 'ids[1]');
      fails(
        await get('/api/v3/echo_params', { ...scope, flag: 'true' }),
        'MISSING_PARAM_WITH_PARAM_NAME',
        '[count]',
      );
      fails(
        await postTo('/api/v3/echo_params', { ...scope, count: true, flag: true }),
        'BAD_REQUEST',
        'count',
      );
      fails(
        await postTo('/api/v3/echo_params', { ...scope, count: 1, flag: 'maybe' }),
        'BAD_REQUEST',
        'flag',
      );
      fails(await postTo('/api/v3/echo_params', { ...scope, count: 1, flag: 2 }), 'BAD_REQUEST', 'flag');
      fails(
        await postTo('/api/v3/echo_params', { ...scope, count: 1, flag: true, name: 5 }),
        'BAD_REQUEST',
        'name',
      );
    });

    it('takes the user from X-Bk-Username, the credentials, or else the app code', async () => {
      const base = { ...scope, count: '1', flag: 'true' };
      assert.equal((await get('/api/v3/echo_params', base)).data.caller.user, 'alice');
      const overridden = await get('/api/v3/system/echo_params', base, { 'x-bk-username': 'bob' });
      assert.equal(overridden.data.caller.user, 'bob');
      // A name is stored with every job and audit entry: 128 characters at most.
      const long = await get('/api/v3/echo_params', base, { 'x-bk-username': 'u'.repeat(129) });
      fails(long, 'BAD_REQUEST', 'bk_username is longer than 128');
      const res = await app.inject({
        method: 'GET',
        url: `/api/v3/echo_params?${new URLSearchParams({ ...base, bk_app_code: 'jobfleet', bk_app_secret: APP_SECRET })}`,
      });
      assert.equal(res.json<Envelope<EchoData>>().data.caller.user, 'jobfleet');
    });

    it('takes null or empty scope fields as absent, as BK-JOB does', async () => {
      for (const body of [
        { bk_scope_type: null, bk_scope_id: null, bk_biz_id: 2 },
        { bk_scope_type: 'biz', bk_scope_id: '2', bk_biz_id: null },
        { bk_scope_type: '', bk_scope_id: '', bk_biz_id: 2 },
      ]) {
        const env = await postTo('/api/v3/echo_params', { ...body, count: 1, flag: true });
        assert.equal(env.result, true, `${JSON.stringify(body)}: ${env.message}`);
        assert.deepEqual(env.data.scope.bizIds, [2]);
      }
    });

    it('refuses a body too large or too deep to parse before anything else, and skips a BOM', async () => {
      const raw = async (payload: string, headers: Record<string, string> = {}) =>
        (await app.inject({ method: 'POST', url: '/api/v3/echo_params', headers, payload })).json<
          Envelope<EchoData>
        >();
      // No credentials: refused for its shape, before authentication would refuse it.
      fails(await raw(`[${'{},'.repeat(1_100_000)}{}]`), 'BAD_REQUEST', 'more than 1000000 values');
      fails(
        await raw(`{"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, { 'x-bkapi-authorization': auth }),
        'BAD_REQUEST',
        'deeper than 64',
      );
      // Brackets and commas inside strings are text.
      const texts = await raw(JSON.stringify({ ...scope, count: 1, flag: true, name: '[[[,,,'.repeat(30) }), {
        'x-bkapi-authorization': auth,
      });
      assert.equal(texts.result, true, texts.message);
      const bom = await raw(`\uFEFF${JSON.stringify({ ...scope, count: 1, flag: true })}`, {
        'x-bkapi-authorization': auth,
      });
      assert.equal(bom.result, true, bom.message);
    });

    it('answers GET on a POST-only API with 1240003, and serves unscoped APIs without a scope', async () => {
      fails(await get('/api/v3/echo_write', { count: '1' }), 'BAD_REQUEST', 'POST only');
      const before = writes;
      const head = await app.inject({
        method: 'HEAD',
        url: '/api/v3/echo_write?count=1',
        headers: { 'x-bkapi-authorization': auth },
      });
      assert.equal(head.statusCode, 200);
      assert.equal(head.body, '');
      assert.equal(writes, before, 'a HEAD runs no write');
      const ok = await postTo('/api/v3/echo_write', { count: 3 });
      assert.equal(ok.result, true, ok.message);
      assert.deepEqual(ok.data, { count: 3 });
      assert.equal(writes, before + 1);
    });

    it('answers HEAD as the GET it stands for: its status and length, no body', async () => {
      const url = `/api/v3/echo_params?${new URLSearchParams({ ...scope, count: '7', flag: 'True' })}`;
      const headers = { 'x-bkapi-authorization': auth };
      const got = await app.inject({ method: 'GET', url, headers });
      assert.equal(got.json<Envelope<EchoData>>().data.input.count, 7);
      const head = await app.inject({ method: 'HEAD', url, headers });
      assert.equal(head.statusCode, 200);
      assert.equal(head.body, '');
      assert.match(String(head.headers['content-type']), /^application\/json/);
      assert.equal(head.headers['content-length'], String(Buffer.byteLength(got.body)));
    });
  });
}
