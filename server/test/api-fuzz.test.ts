/**
 * Property-based fuzzing of every API endpoint against a real server: generated parameters
 * (each endpoint's own fields, the scope fields and strays, with plausible and hostile values),
 * every URL form, GET and POST, credentials in each place or wrong or missing, and raw bodies
 * that are not JSON. Every answer must be the envelope with HTTP 200 and a consistent
 * result/code pair, never 1240002; a refused write must change nothing in the store.
 *
 * `npm test` runs a short fixed-seed pass; `npm run fuzz` runs long (JOBFLEET_FUZZ_RUNS,
 * JOBFLEET_FUZZ_SEED choose the count and the seed; a failure prints the seed and path to replay).
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { ENDPOINTS } from '../src/api/endpoints/index.js';
import type { Endpoint } from '../src/api/endpoint.js';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import { Store } from '../src/store/store.js';
import { admin, apiUrl, post } from './helpers/api-client.js';
import type { ApiCreds, UrlForm } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { b64 } from './helpers/fleet.js';
import { startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const RUNS = Number(process.env.JOBFLEET_FUZZ_RUNS ?? 400);
const SEED = Number(process.env.JOBFLEET_FUZZ_SEED ?? 20261129);
const ADMIN_RUNS = Math.ceil(RUNS / 3);
const INTERNAL = ERROR_CATALOGUE.INTERNAL_ERROR.code;

/** Values that reach past validation into the handlers (existing ids, the seeded scope, ...). */
const id = fc.oneof(
  fc.constantFrom(1, 2, '1', '2', 0, -1, '', 'x', 1.5, 2 ** 53, '9007199254740993', 8_000_001),
  fc.integer(),
);
const ids = fc.array(id, { maxLength: 4 });
const ip = fc.constantFrom('127.0.0.2', '127.0.0.3', '10.0.0.1', '0.0.0.0', '::1', '256.1.1.1', '1.2.3', '');
const hostRef = fc.record({ bk_cloud_id: fc.constantFrom(0, 1, '0', -1), ip }, { requiredKeys: [] });
const any = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 40 }),
  fc.constantFrom(null, true, 'True', 'false', '1', 0, -1, [], {}),
);

const PLAUSIBLE: Record<string, fc.Arbitrary<unknown>> = {
  bk_scope_type: fc.constantFrom('biz', 'biz_set', 'BIZ', '', 'host'),
  bk_scope_id: fc.constantFrom('2', '8000001', '3', '0', '-1', 'abc', 2),
  bk_biz_id: fc.constantFrom(2, '2', 8_000_001, 0, 'x'),
  job_instance_id: id,
  step_instance_id: id,
  bk_host_id: id,
  id,
  execute_count: id,
  host_id_list: ids,
  ip_list: fc.array(hostRef, { maxLength: 3 }),
  ip,
  script_content: fc.oneof(fc.constant(b64('echo fuzz')), fc.base64String({ maxLength: 40 }), fc.string()),
  content: fc.oneof(fc.constant(b64('rm -rf /tmp/x')), fc.base64String({ maxLength: 40 })),
  script_language: fc.constantFrom(1, 2, 3, 4, 5, 6, 0, 7, '1', 'shell'),
  script_language_list: fc.array(fc.constantFrom(1, 2, 5, 0, 9, '1'), { maxLength: 3 }),
  account_alias: fc.constantFrom(os.userInfo().username, 'root', 'no-such-account', ''),
  account_id: id,
  target_server: fc.oneof(
    fc.constant({ host_id_list: [1] }),
    fc.record({ host_id_list: ids }, { requiredKeys: [] }),
    fc.record({ ip_list: fc.array(hostRef, { maxLength: 3 }) }),
    fc.record({
      topo_node_list: fc.array(
        fc.record({ node_type: fc.constantFrom('biz', 'set', 'module', 'x'), id }, { requiredKeys: [] }),
        { maxLength: 2 },
      ),
    }),
    fc.record({
      dynamic_group_list: fc.array(fc.record({ id: fc.string({ maxLength: 8 }) }), { maxLength: 2 }),
    }),
  ),
  rolling_config: fc.record(
    {
      expression: fc.constantFrom('1', '50%', '1 +1', '*2', '0', 'x', ''),
      mode: fc.constantFrom(1, 2, 3, 4),
      max_failed_hosts: fc.constantFrom(0, 1, '10%', '200%'),
    },
    { requiredKeys: [] },
  ),
  file_source_list: fc.array(
    fc.record(
      {
        file_list: fc.array(fc.constantFrom('/tmp/a', 'relative', '', '/etc/../x'), { maxLength: 2 }),
        server: fc.record({ host_id_list: ids }, { requiredKeys: [] }),
        file_type: fc.constantFrom(1, 2, 3, 0),
        account: fc.record(
          { alias: fc.constantFrom(os.userInfo().username, 'nobody') },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 2 },
  ),
  file_list: fc.array(
    fc.record(
      {
        file_name: fc.constantFrom('a.conf', '', '../x', 'a/b'),
        content: fc.base64String({ maxLength: 20 }),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 2 },
  ),
  file_target_path: fc.constantFrom('/tmp/fuzz', 'relative', '', '/'),
  file_name_list: fc.array(fc.constantFrom('a.txt', '', '../a', 'x'.repeat(300), 'y'.repeat(2000)), {
    maxLength: 3,
  }),
  name: fc.constantFrom('Script Execution', 'a_b%c', '%', 'n'.repeat(600), 'n'.repeat(60_000)),
  task_name: fc.constantFrom('fuzz', '', 't'.repeat(513), 't'.repeat(60_000)),
  operation_code: fc.constantFrom(1, 2, 3, 4, 5, 6, 8, 0, 99, '2'),
  expression: fc.constantFrom('rm -rf', 'echo\\s+fuzz', '[', '', 'a'.repeat(10)),
  action: fc.constantFrom(1, 2, 0, 3, '1'),
  create_time_start: fc.constantFrom(0, Date.now() - 3600_000, -1, 'x'),
  create_time_end: fc.constantFrom(Date.now() + 60_000, 0, 'x'),
  start: fc.constantFrom(0, 1, -1, 10_000),
  length: fc.constantFrom(0, 1, 10, 1000, -1),
  callback_url: fc.constantFrom('http://127.0.0.1:1/cb', 'ftp://x', 'http://u:p@h/', 'not a url'),
  return_ip_result: fc.constantFrom(true, 'True', 'false', 'yes', 1),
  start_task: fc.constantFrom(true, false, 'False', 2),
};

const ME = os.userInfo().username;
const SCOPE = { bk_scope_type: 'biz', bk_scope_id: '2' };
const ON_HOST = { target_server: { host_id_list: [1] }, account_alias: ME };

/** A valid request per endpoint against the seeded state (business 2, host 1, job 1 / step 1, rule 1). */
const VALID: Record<string, Record<string, unknown>> = {
  fast_execute_script: { ...SCOPE, ...ON_HOST, script_language: 1, script_content: b64('echo fuzz') },
  fast_transfer_file: {
    ...SCOPE,
    ...ON_HOST,
    file_target_path: '/tmp/fuzz',
    file_source_list: [{ file_list: ['/tmp/a'], server: { host_id_list: [1] }, account: { alias: ME } }],
  },
  push_config_file: {
    ...SCOPE,
    ...ON_HOST,
    file_target_path: '/tmp/fuzz',
    file_list: [{ file_name: 'a.conf', content: b64('x=1') }],
  },
  generate_local_file_upload_url: { ...SCOPE, file_name_list: ['a.txt'] },
  get_job_instance_status: { ...SCOPE, job_instance_id: 1, return_ip_result: true },
  get_step_instance_status: { ...SCOPE, job_instance_id: 1, step_instance_id: 1 },
  get_step_instance_detail: { ...SCOPE, job_instance_id: 1, step_instance_id: 1 },
  get_job_instance_ip_log: { ...SCOPE, job_instance_id: 1, step_instance_id: 1, bk_host_id: 1 },
  batch_get_job_instance_ip_log: { ...SCOPE, job_instance_id: 1, step_instance_id: 1, host_id_list: [1] },
  get_job_instance_list: {
    ...SCOPE,
    create_time_start: Date.now() - 3600_000,
    create_time_end: Date.now() + 3600_000,
  },
  get_job_instance_callback_list: { ...SCOPE, job_instance_id: 1 },
  operate_job_instance: { ...SCOPE, job_instance_id: 1, operation_code: 1 },
  operate_step_instance: { ...SCOPE, job_instance_id: 1, step_instance_id: 1, operation_code: 2 },
  query_agent_info: { ...SCOPE, host_id_list: [1] },
  create_dangerous_rule: { expression: 'echo fuzz', script_language_list: [1], action: 1 },
  update_dangerous_rule: { id: 1, expression: 'echo fuzz2', script_language_list: [1, 4], action: 2 },
  delete_dangerous_rule: { id: 1 },
  enable_dangerous_rule: { id: 1 },
  disable_dangerous_rule: { id: 1 },
  get_dangerous_rule_list: {},
  check_script: { script_language: 1, content: b64('rm -rf /') },
  get_dangerous_rule_hit_list: { ...SCOPE },
};

const DROP = Symbol('drop');

/** The valid request with a field or two replaced by generated values or left out. */
function nearValid(target: {
  name: string;
  valid?: Record<string, unknown>;
}): fc.Arbitrary<Record<string, unknown>> {
  const valid = target.valid ?? VALID[target.name] ?? {};
  const fields = Object.fromEntries(
    Object.entries(valid).map(([k, v]) => [
      k,
      fc.oneof(
        { weight: 40, arbitrary: fc.constant<unknown>(v) },
        { weight: 2, arbitrary: PLAUSIBLE[k] ?? any },
        { weight: 1, arbitrary: any },
        { weight: 1, arbitrary: fc.constant<unknown>(DROP) },
      ),
    ]),
  );
  return fc
    .record(fields)
    .map(
      (r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== DROP)) as Record<string, unknown>,
    );
}

/** Each endpoint's own fields (from its schema), the scope fields, and a stray one. */
function paramsFor(endpoint: Endpoint): fc.Arbitrary<Record<string, unknown>> {
  const shape = (endpoint.input as { shape?: Record<string, unknown> }).shape ?? {};
  const keys = [...new Set([...Object.keys(shape), 'bk_scope_type', 'bk_scope_id', 'bk_biz_id'])];
  const fields = Object.fromEntries(keys.map((k) => [k, fc.oneof(PLAUSIBLE[k] ?? any, any)]));
  return fc
    .tuple(
      fc.record(fields, { requiredKeys: [] }),
      fc.dictionary(fc.string({ maxLength: 12 }), any, { maxKeys: 2 }),
    )
    .map(([own, stray]) => ({ ...stray, ...own }));
}

type Auth = 'header' | 'body' | 'query' | 'none' | 'wrong';
interface Call {
  endpoint: Endpoint;
  form: UrlForm;
  method: 'GET' | 'POST';
  auth: Auth;
  params: Record<string, unknown>;
  /** A raw body sent instead of the JSON of `params`. */
  rawBody: string | undefined;
}

const callArb: fc.Arbitrary<Call> = fc.constantFrom(...ENDPOINTS).chain((endpoint) =>
  fc.record({
    endpoint: fc.constant(endpoint),
    form: endpoint.systemOnly
      ? fc.constantFrom<UrlForm>('system', 'system', 'system', 'gateway')
      : fc.constantFrom<UrlForm>('esb', 'gateway', 'system'),
    method:
      endpoint.kind === 'write'
        ? fc.constantFrom<'GET' | 'POST'>('POST', 'POST', 'POST', 'POST', 'GET')
        : fc.constantFrom<'GET' | 'POST'>('POST', 'GET'),
    auth: fc.constantFrom<Auth>(
      'header',
      'header',
      'header',
      'header',
      'header',
      'body',
      'query',
      'none',
      'wrong',
    ),
    params: fc.oneof(
      { weight: 3, arbitrary: nearValid(endpoint) },
      { weight: 1, arbitrary: paramsFor(endpoint) },
    ),
    rawBody: fc.oneof(
      { weight: 12, arbitrary: fc.constant(undefined) },
      {
        weight: 1,
        arbitrary: fc.oneof(fc.string(), fc.constantFrom('null', '[]', '42', '{', '"x"', '{"a":')),
      },
    ),
  }),
);

function asQueryValue(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? '');
}

async function send(server: ServerProcess, c: Call): Promise<{ status: number; text: string }> {
  const creds = {
    bk_app_code: server.appCode,
    bk_app_secret: c.auth === 'wrong' ? 'not-the-secret' : server.appSecret,
    bk_username: 'fuzzer',
  };
  const headers: Record<string, string> = {};
  if (c.auth === 'header' || c.auth === 'wrong') headers['x-bkapi-authorization'] = JSON.stringify(creds);
  const params = c.auth === 'body' && c.method === 'POST' ? { ...c.params, ...creds } : c.params;
  const query = new URLSearchParams();
  if (c.auth === 'query' || (c.auth === 'body' && c.method === 'GET'))
    for (const [k, v] of Object.entries(creds)) query.set(k, v);
  if (c.method === 'GET') for (const [k, v] of Object.entries(params)) query.set(k, asQueryValue(v));
  const q = query.toString();
  const res = await fetch(`${apiUrl(server.url, c.endpoint.name, c.form)}${q ? `?${q}` : ''}`, {
    method: c.method,
    headers,
    ...(c.method === 'POST' ? { body: c.rawBody ?? JSON.stringify(params) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

/** Checks the answer is the envelope, HTTP 200, result and code agreeing, not an internal error. */
function envelopeOf({ status, text }: { status: number; text: string }): Record<string, unknown> {
  const env = JSON.parse(text) as Record<string, unknown>;
  // The one documented exception: a path no route serves (an empty id segment) is a 404 envelope.
  assert.equal(status, env.code === ERROR_CATALOGUE.NOT_FOUND.code ? 404 : 200, text);
  assert.equal(typeof env.result, 'boolean', text);
  assert.equal(typeof env.code, 'number', text);
  assert.equal(typeof env.message, 'string', text);
  assert.equal(typeof env.request_id, 'string', text);
  assert.equal(env.job_request_id, env.request_id);
  assert.equal(env.result, env.code === 0, text);
  assert.notEqual(env.code, INTERNAL, text);
  if (!env.result) assert.equal(env.data, null, text);
  return env;
}

/** Admin routes with a valid request each against the seeded state. */
const ADMIN_ROUTES: { method: 'GET' | 'POST'; path: string; valid: Record<string, unknown> }[] = [
  { method: 'POST', path: '/biz', valid: { id: 5, name: 'five' } },
  { method: 'POST', path: '/biz_set', valid: { id: 8_000_002, name: 'set two', biz_ids: [2] } },
  { method: 'POST', path: '/hosts', valid: { ip: '10.1.0.1', bk_biz_id: 2 } },
  { method: 'POST', path: '/hosts/:id/biz', valid: { bk_biz_id: 2 } },
  { method: 'POST', path: '/topology/sets', valid: { bk_biz_id: 2, name: 'set' } },
  { method: 'POST', path: '/topology/modules', valid: { bk_biz_id: 2, set_id: 1, name: 'module' } },
  { method: 'POST', path: '/topology/modules/:id/hosts', valid: { host_ids: [1] } },
  {
    method: 'POST',
    path: '/dynamic_groups',
    valid: { bk_biz_id: 2, name: 'g', filter: { ip: ['10.0.0.0/8'] } },
  },
  { method: 'POST', path: '/accounts', valid: { bk_biz_id: 2, alias: 'fuzz', os_user: 'nobody' } },
  {
    method: 'POST',
    path: '/apps',
    valid: { app_code: 'fuzz-app', app_secret: 'fuzz-app-secret', scopes: [{ type: 'biz', id: 2 }] },
  },
  { method: 'POST', path: '/agents/:id/revoke', valid: {} },
  { method: 'POST', path: '/agents/:id/readmit', valid: {} },
  { method: 'POST', path: '/hosts/:id/identity', valid: { ip: '10.2.0.1' } },
  { method: 'POST', path: '/agents/bootstrap-token', valid: {} },
  { method: 'POST', path: '/scopes/biz/:id/time_zone', valid: { time_zone: 'Asia/Shanghai' } },
  { method: 'GET', path: '/biz', valid: {} },
  { method: 'GET', path: '/hosts', valid: { bk_biz_id: 2 } },
  { method: 'GET', path: '/topology', valid: { bk_biz_id: 2 } },
  { method: 'GET', path: '/dynamic_groups', valid: { bk_biz_id: 2 } },
  { method: 'GET', path: '/accounts', valid: { bk_biz_id: 2 } },
  { method: 'GET', path: '/apps', valid: {} },
  { method: 'GET', path: '/audit', valid: { limit: 5, outcome: 'refused' } },
];

interface AdminCall {
  method: 'GET' | 'POST';
  path: string;
  token: 'right' | 'wrong' | 'none';
  params: Record<string, unknown>;
}

const adminCallArb: fc.Arbitrary<AdminCall> = fc.constantFrom(...ADMIN_ROUTES).chain((route) =>
  fc.record({
    method: fc.constant(route.method),
    path: fc
      .oneof({ weight: 4, arbitrary: id.map(String) }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) })
      .map((v) => route.path.replace(':id', encodeURIComponent(v))),
    token: fc.constantFrom<AdminCall['token']>('right', 'right', 'right', 'right', 'wrong', 'none'),
    params: fc.oneof(
      {
        weight: 3,
        arbitrary: nearValid({ name: '', valid: route.valid }),
      },
      { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 12 }), any, { maxKeys: 4 }) },
    ),
  }),
);

async function sendAdmin(server: ServerProcess, c: AdminCall): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (c.token !== 'none')
    headers.authorization = `Bearer ${c.token === 'right' ? server.adminToken : 'guessed-admin-token'}`;
  const q =
    c.method === 'GET'
      ? `?${new URLSearchParams(Object.entries(c.params).map(([k, v]): [string, string] => [k, asQueryValue(v)]))}`
      : '';
  const res = await fetch(`${server.url}/api/admin${c.path}${q}`, {
    method: c.method,
    headers,
    ...(c.method === 'POST' ? { body: JSON.stringify(c.params) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

/** The inventory, apps and settings an admin write could change. */
async function adminFingerprint(store: Store): Promise<string> {
  const tables = [
    'biz',
    'biz_set',
    'biz_set_member',
    'host',
    'topo_set',
    'topo_module',
    'host_module',
    'dynamic_group',
    'account',
    'app',
    'server_setting',
  ];
  const out: Record<string, string[]> = {};
  for (const t of tables) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(t)}`.execute(store.db);
    out[t] = rows.rows
      .map((r) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
      .sort();
  }
  return JSON.stringify(out);
}

/** What a write could change, read straight from the store (the audit log aside: it records refusals). */
async function fingerprint(store: Store): Promise<string> {
  const counts = await sql<Record<string, unknown>>`select
      (select count(*) from job_instance) as jobs,
      (select count(*) from step_instance) as steps,
      (select count(*) from host_task) as host_tasks,
      (select count(*) from stored_file) as files,
      (select count(*) from callback) as callbacks,
      (select count(*) from script) as scripts,
      (select count(*) from script_version) as script_versions,
      (select count(*) from account) as accounts`.execute(store.db);
  const rules = await store.db.selectFrom('dangerous_rule').selectAll().orderBy('id').execute();
  return JSON.stringify({ counts: counts.rows[0], rules }, (_k, v: unknown) =>
    typeof v === 'bigint' ? String(v) : v,
  );
}

for (const engine of engines()) {
  describe(`API fuzz on ${engine}`, () => {
    let server: ServerProcess;
    let store: Store;

    before(async () => {
      const databaseUrl = await freshDatabase(engine);
      server = await startServer(databaseUrl ? { databaseUrl } : {});
      const call = (path: string, body: unknown) => admin(server.url, server.adminToken, 'POST', path, body);
      await call('/biz', { id: 2, name: 'two' });
      await call('/biz_set', { id: 8_000_001, name: 'set', biz_ids: [2] });
      const me = os.userInfo().username;
      await call('/accounts', { bk_biz_id: 2, alias: me, os_user: me });
      await call('/hosts', { ip: '127.0.0.2', bk_biz_id: 2 });
      const creds: ApiCreds = { appCode: server.appCode, appSecret: server.appSecret };
      const scope = { bk_scope_type: 'biz', bk_scope_id: '2' };
      const job = await post(
        server.url,
        'fast_execute_script',
        {
          ...scope,
          script_language: 1,
          script_content: b64('echo seed'),
          account_alias: me,
          target_server: { host_id_list: [1] },
        },
        creds,
      );
      assert.equal(job.result, true, job.message);
      const rule = await post(
        server.url,
        'create_dangerous_rule',
        { ...scope, expression: 'rm -rf', script_language_list: [1], action: 1 },
        creds,
      );
      assert.equal(rule.result, true, rule.message);
      store = await Store.open({ databaseUrl, dataDir: server.dataDir });
    });
    after(async () => {
      await store?.close();
      await stopAll();
      await dropFreshDatabases();
    });

    test(`${RUNS} generated requests: always the envelope, never an internal error, refusals change nothing`, async (t) => {
      const codes = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(callArb, async (c) => {
          const write = c.endpoint.kind === 'write';
          const beforeState = write ? await fingerprint(store) : '';
          const env = envelopeOf(await send(server, c));
          codes.set(env.code as number, (codes.get(env.code as number) ?? 0) + 1);
          if (!env.result) {
            if (write)
              assert.equal(
                await fingerprint(store),
                beforeState,
                `a refused ${c.endpoint.name} changed the store`,
              );
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      // How far the inputs got: a pass that only ever hits one validation error proves little.
      t.diagnostic(
        `codes answered: ${[...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([c, n]) => `${c}x${n}`)
          .join(' ')}`,
      );
      assert.ok((codes.get(0) ?? 0) > 0, 'some generated requests succeed');
      assert.ok(codes.size >= 8, 'generated requests reach many different checks');
    });

    test(`${ADMIN_RUNS} generated admin API calls: the envelope, no internal error, refusals change nothing`, async (t) => {
      const codes = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(adminCallArb, async (c) => {
          const write = c.method === 'POST';
          const beforeState = write ? await adminFingerprint(store) : '';
          const env = envelopeOf(await sendAdmin(server, c));
          codes.set(env.code as number, (codes.get(env.code as number) ?? 0) + 1);
          if (!env.result && write)
            assert.equal(
              await adminFingerprint(store),
              beforeState,
              `a refused admin POST ${c.path} changed the store`,
            );
        }),
        { numRuns: ADMIN_RUNS, seed: SEED, endOnFailure: true },
      );
      t.diagnostic(`codes answered: ${[...codes].map(([c, n]) => `${c}x${n}`).join(' ')}`);
      assert.ok((codes.get(0) ?? 0) > 0, 'some generated calls succeed');
    });
  });
}
