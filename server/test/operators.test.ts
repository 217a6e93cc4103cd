/**
 * People on a real server process, on every engine: sign-in and its rate limits, console
 * sessions (cookie flags, CSRF, idle and absolute expiry, logout), personal API tokens (shown
 * once, stored hashed, limited, revoked at once), roles enforced per endpoint class and scope,
 * the admin API for users (and `jobfleet admin user ...`), and the audit entries of each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { ENDPOINTS } from '../src/api/endpoints/index.js';
import { Store } from '../src/store/store.js';
import { admin, eventually } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { b64, BIZ, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { adminCli, startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const OTHER_BIZ = 3;
const SET_OF_OTHER = 8_000_001;

interface Session {
  cookie: string;
  csrf: string;
  setCookie: string;
}

/** A call as a person: with a bearer token, or a session cookie (and its CSRF token unless `csrf: false`). */
interface As {
  token?: string;
  session?: Session;
  csrf?: boolean;
}

async function call<T = Record<string, unknown>>(
  base: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  as: As,
  body?: unknown,
): Promise<Envelope<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (as.token) headers.authorization = `Bearer ${as.token}`;
  if (as.session) {
    headers.cookie = as.session.cookie;
    if (as.csrf !== false) headers['x-csrf-token'] = as.session.csrf;
  }
  const aborter = new AbortController();
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    signal: aborter.signal,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  assert.equal(res.status, 200, `${method} ${path}`);
  // An event stream that was let through never ends: its opening is the answer.
  if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
    aborter.abort();
    return { result: true, code: 0, message: 'stream opened' } as Envelope<T>;
  }
  return (await res.json()) as Envelope<T>;
}

async function login(base: string, username: string, password: string): Promise<Session> {
  const res = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const env = (await res.json()) as Envelope<{ csrf_token: string }>;
  assert.equal(env.result, true, env.message);
  const setCookie = res.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0] ?? '', csrf: env.data.csrf_token, setCookie };
}

function fails(env: Envelope<unknown>, name: ErrorName, ...inMessage: string[]): void {
  assert.equal(env.result, false, `expected ${name}, got success`);
  assert.equal(env.code, ERROR_CATALOGUE[name].code, env.message);
  for (const t of inMessage) assert.ok(env.message.includes(t), `"${env.message}" lacks "${t}"`);
}

function succeeds<T>(env: Envelope<T>): T {
  assert.equal(env.result, true, `${env.code} ${env.message}`);
  return env.data;
}

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

for (const [index, engine] of engines().entries()) {
  describe(`operators on ${engine}`, () => {
    let fleet: Fleet;
    let server: ServerProcess;
    let store: Store;
    const v3 = (name: string) => `/api/v3/${name}`;
    const adminApi = <T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown) =>
      admin<T>(server.url, server.adminToken, method, path, body);
    const tokens: Record<string, string> = {};
    const script = {
      bk_scope_type: 'biz',
      bk_scope_id: String(BIZ),
      script_language: 1,
      script_content: b64('echo hi'),
      account_alias: '',
      target_server: { ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.2' }] },
    };
    const auditOf = async (action: string) =>
      (await store.audit.list({ action, limit: 100 })).map((e) => ({
        user: e.username,
        kind: e.actor_kind,
        outcome: e.outcome,
        target: e.target,
        detail: JSON.parse(e.detail) as Record<string, unknown>,
      }));

    before(async () => {
      fleet = await startFleet(engine, 1, {
        env: { JOBFLEET_LOGIN_MAX_FAILURES_PER_USER: '3', JOBFLEET_LOGIN_MAX_FAILURES_PER_ADDRESS: '1000' },
      });
      server = fleet.server;
      script.account_alias = fleet.account;
      store = await Store.open({ databaseUrl: server.databaseUrl, dataDir: server.dataDir });
      succeeds(await adminApi('POST', '/biz', { id: OTHER_BIZ, name: 'other' }));
      succeeds(await adminApi('POST', '/biz_set', { id: SET_OF_OTHER, name: 'set', biz_ids: [OTHER_BIZ] }));
      const users: [string, boolean, { scope_type: string; scope_id: number; role: string }[]][] = [
        ['viewer', false, [{ scope_type: 'biz', scope_id: BIZ, role: 'viewer' }]],
        ['oper', false, [{ scope_type: 'biz', scope_id: BIZ, role: 'operator' }]],
        ['bizadmin', false, [{ scope_type: 'biz', scope_id: BIZ, role: 'admin' }]],
        ['setviewer', false, [{ scope_type: 'biz_set', scope_id: SET_OF_OTHER, role: 'viewer' }]],
        ['root', true, []],
        ['norole', false, []],
      ];
      for (const [name, platformAdmin, roles] of users) {
        succeeds(
          await adminApi('POST', '/users', {
            name,
            password: `${name}-password`,
            platform_admin: platformAdmin,
          }),
        );
        if (roles.length > 0) succeeds(await adminApi('POST', `/users/${name}/roles`, { roles }));
        const session = await login(server.url, name, `${name}-password`);
        const t = succeeds(
          await call<{ token: string }>(
            server.url,
            'POST',
            '/api/auth/tokens',
            { session },
            { name: 'test' },
          ),
        );
        tokens[name] = t.token;
      }
    });
    after(async () => store?.close());

    it('stores passwords as salted scrypt and tokens only as hashes', async () => {
      const rows = await store.db.selectFrom('user_account').select(['name', 'password_hash']).execute();
      const hashes = rows.map((r) => r.password_hash);
      for (const h of hashes) assert.match(h, /^scrypt\$32768\$8\$3\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      assert.equal(new Set(hashes.map((h) => h.split('$')[4])).size, hashes.length, 'every salt differs');
      const tokenRows = await store.db.selectFrom('api_token').selectAll().execute();
      const dump = JSON.stringify(tokenRows);
      for (const value of Object.values(tokens)) {
        assert.ok(!dump.includes(value), 'a token value is stored');
        assert.ok(!dump.includes(value.slice(10)), 'part of a token value is stored');
      }
      const listed = await call<{ tokens: Record<string, unknown>[] }>(
        server.url,
        'GET',
        '/api/auth/tokens',
        {
          token: tokens.oper,
        },
      );
      assert.equal(listed.data.tokens.length, 1);
      assert.ok(!('token' in (listed.data.tokens[0] ?? {})), 'a listed token shows its value');
    });

    it('refuses wrong passwords alike for unknown users, and rate-limits failures per user', async () => {
      succeeds(await adminApi('POST', '/users', { name: 'limited', password: 'limited-password' }));
      const attempt = (username: string, password: string) =>
        call(server.url, 'POST', '/api/auth/login', {}, { username, password });
      fails(await attempt('nobody-here', 'whatever1'), 'LOGIN_FAILED');
      for (let i = 0; i < 3; i++) fails(await attempt('limited', 'wrong-password'), 'LOGIN_FAILED');
      // Blocked now, even with the right password; other users are not affected.
      fails(await attempt('limited', 'limited-password'), 'LOGIN_RATE_LIMITED', 'user');
      // Refused again and again: one audit entry for the window, not one per attempt.
      for (let i = 0; i < 5; i++)
        fails(await attempt('limited', 'limited-password'), 'LOGIN_RATE_LIMITED', 'user');
      await login(server.url, 'viewer', 'viewer-password');
      const entries = (await auditOf('user.login')).filter(
        (e) => e.user === 'limited' || e.user === 'nobody-here',
      );
      assert.deepEqual(entries.map((e) => [e.user, e.outcome, e.detail.reason]).reverse(), [
        ['nobody-here', 'refused', 'unknown user'],
        ['limited', 'refused', 'wrong password'],
        ['limited', 'refused', 'wrong password'],
        ['limited', 'refused', 'wrong password'],
        ['limited', 'refused', 'rate limited'],
      ]);
      assert.ok((await auditOf('user.login')).some((e) => e.user === 'viewer' && e.outcome === 'ok'));

      // Attempts sent together count as they arrive: at most the limit get their password checked.
      succeeds(await adminApi('POST', '/users', { name: 'burst', password: 'burst-password' }));
      const burst = await Promise.all(Array.from({ length: 20 }, () => attempt('burst', 'wrong-password')));
      const checked = burst.filter((r) => r.code === ERROR_CATALOGUE.LOGIN_FAILED.code).length;
      assert.equal(checked, 3, burst.map((r) => r.code).join(','));

      // Changing the password is held to the same limits: a token must not be a way to guess it.
      succeeds(await adminApi('POST', '/users', { name: 'changer', password: 'changer-password' }));
      const changer = await login(server.url, 'changer', 'changer-password');
      const change = (current: string) =>
        call(
          server.url,
          'POST',
          '/api/auth/password',
          { session: changer },
          { current_password: current, new_password: 'changed-password' },
        );
      for (let i = 0; i < 3; i++) fails(await change('wrong-password'), 'LOGIN_FAILED');
      fails(await change('changer-password'), 'LOGIN_RATE_LIMITED', 'user');

      // A sign-in whose password changed while it was checked starts no session.
      const user = await store.operators.getUserByName('changer');
      assert.ok(user);
      const session = {
        user_id: user.id,
        created_at: 1,
        last_seen_at: 1,
        expires_at: Date.now() + 60_000,
        source_ip: '',
      };
      assert.equal(
        await store.operators.createSession({ ...session, token_hash: 'a' }, user.passwordHash),
        true,
      );
      await store.operators.setPassword(user.id, 'scrypt$changed');
      assert.equal(
        await store.operators.createSession({ ...session, token_hash: 'b' }, user.passwordHash),
        false,
      );
      assert.equal(await store.operators.getSession('b'), undefined);
    });

    it('gives an HttpOnly SameSite=Lax cookie and needs the CSRF token on writes', async () => {
      const session = await login(server.url, 'oper', 'oper-password');
      assert.match(session.setCookie, /^jobfleet_session=[A-Za-z0-9_-]{40,};/);
      assert.match(session.setCookie, /; HttpOnly/);
      assert.match(session.setCookie, /; SameSite=Lax/);
      assert.match(session.setCookie, /; Path=\//);
      const me = succeeds(
        await call<{ user: { name: string }; csrf_token: string; auth: string }>(
          server.url,
          'GET',
          '/api/auth/me',
          { session, csrf: false },
        ),
      );
      assert.equal(me.user.name, 'oper');
      assert.equal(me.auth, 'session');
      assert.equal(me.csrf_token, session.csrf);
      // Reads need no CSRF token; writes with the cookie do, and a wrong one is as bad as none.
      succeeds(
        await call(
          server.url,
          'GET',
          `${v3('get_job_instance_list')}?bk_scope_type=biz&bk_scope_id=${BIZ}&create_time_start=${Date.now() - 3_600_000}&create_time_end=${Date.now() + 60_000}`,
          { session, csrf: false },
        ),
      );
      fails(
        await call(server.url, 'POST', v3('fast_execute_script'), { session, csrf: false }, script),
        'CSRF_CHECK_FAILED',
      );
      fails(
        await call(
          server.url,
          'POST',
          v3('fast_execute_script'),
          { session: { ...session, csrf: 'x'.repeat(43) } },
          script,
        ),
        'CSRF_CHECK_FAILED',
      );
      fails(
        await call(server.url, 'POST', '/api/auth/tokens', { session, csrf: false }, { name: 'x' }),
        'CSRF_CHECK_FAILED',
      );
      const run = succeeds(
        await call<{ job_instance_id: number }>(
          server.url,
          'POST',
          v3('fast_execute_script'),
          { session },
          script,
        ),
      );
      assert.ok(run.job_instance_id > 0);
      const job = await store.db
        .selectFrom('job_instance')
        .selectAll()
        .where('id', '=', run.job_instance_id)
        .executeTakeFirstOrThrow();
      assert.equal(job.operator, 'oper', 'the job is started by the user');
    });

    it('ends the session on the server at logout', async () => {
      const session = await login(server.url, 'viewer', 'viewer-password');
      succeeds(await call(server.url, 'GET', '/api/auth/me', { session }));
      fails(
        await call(server.url, 'POST', '/api/auth/logout', { session, csrf: false }),
        'CSRF_CHECK_FAILED',
      );
      succeeds(await call(server.url, 'POST', '/api/auth/logout', { session }));
      // The same cookie, replayed, is worthless: the session is gone from the store.
      fails(await call(server.url, 'GET', '/api/auth/me', { session }), 'USER_AUTH_FAILED', 'ended');
      fails(
        await call(server.url, 'GET', `${v3('get_dangerous_rule_list')}`, { session }),
        'USER_AUTH_FAILED',
      );
      assert.ok((await auditOf('user.logout')).some((e) => e.user === 'viewer'));
    });

    it('lets a viewer read but not run, in its own scope only', async () => {
      const listQuery = (biz: number) =>
        `${v3('get_job_instance_list')}?bk_scope_type=biz&bk_scope_id=${biz}&create_time_start=${Date.now() - 3_600_000}&create_time_end=${Date.now() + 60_000}`;
      succeeds(await call(server.url, 'GET', listQuery(BIZ), { token: tokens.viewer }));
      fails(
        await call(server.url, 'POST', v3('fast_execute_script'), { token: tokens.viewer }, script),
        'USER_PERMISSION_DENIED',
        'viewer',
        'run',
        'operator',
      );
      fails(
        await call(server.url, 'GET', listQuery(OTHER_BIZ), { token: tokens.viewer }),
        'USER_PERMISSION_DENIED',
        `biz ${OTHER_BIZ}`,
      );
      // A role on a business set reaches its member businesses, and nothing else.
      succeeds(await call(server.url, 'GET', listQuery(OTHER_BIZ), { token: tokens.setviewer }));
      fails(
        await call(server.url, 'GET', listQuery(BIZ), { token: tokens.setviewer }),
        'USER_PERMISSION_DENIED',
      );
      // Unscoped reads are open to any signed-in user.
      succeeds(await call(server.url, 'GET', v3('get_dangerous_rule_list'), { token: tokens.viewer }));
    });

    it('lets an operator run and operate but not manage rules or reach another scope', async () => {
      const run = succeeds(
        await call<{ job_instance_id: number }>(
          server.url,
          'POST',
          v3('fast_execute_script'),
          { token: tokens.oper },
          script,
        ),
      );
      const status = await eventually(async () => {
        const s = await call<{ finished: boolean; job_instance: { status: number } }>(
          server.url,
          'GET',
          `${v3('get_job_instance_status')}?bk_scope_type=biz&bk_scope_id=${BIZ}&job_instance_id=${run.job_instance_id}`,
          { token: tokens.oper },
        );
        return s.data.finished ? s.data : undefined;
      });
      assert.equal(status.job_instance.status, 3);
      // Operating a job is "run": an operator may, a viewer may not.
      const operate = {
        bk_scope_type: 'biz',
        bk_scope_id: String(BIZ),
        job_instance_id: run.job_instance_id,
        operation_code: 1,
      };
      fails(
        await call(server.url, 'POST', v3('operate_job_instance'), { token: tokens.viewer }, operate),
        'USER_PERMISSION_DENIED',
      );
      const operated = await call(
        server.url,
        'POST',
        v3('operate_job_instance'),
        { token: tokens.oper },
        operate,
      );
      assert.notEqual(operated.code, ERROR_CATALOGUE.USER_PERMISSION_DENIED.code, operated.message);
      const rule = { expression: 'rm -rf /', script_language_list: [1], description: 'x', action: 1 };
      fails(
        await call(server.url, 'POST', v3('create_dangerous_rule'), { token: tokens.oper }, rule),
        'USER_PERMISSION_DENIED',
        'manage',
      );
      // Rules apply to every business: an admin of one business cannot manage them either.
      fails(
        await call(server.url, 'POST', v3('create_dangerous_rule'), { token: tokens.bizadmin }, rule),
        'USER_PERMISSION_DENIED',
        'platform admin',
      );
      succeeds(await call(server.url, 'POST', v3('create_dangerous_rule'), { token: tokens.root }, rule));
      fails(
        await call(
          server.url,
          'POST',
          v3('fast_execute_script'),
          { token: tokens.oper },
          { ...script, bk_scope_id: String(OTHER_BIZ) },
        ),
        'USER_PERMISSION_DENIED',
        `biz ${OTHER_BIZ}`,
      );
      // Another scope's job is not reachable through the user's own scope either.
      fails(
        await call(
          server.url,
          'GET',
          `${v3('get_job_instance_status')}?bk_scope_type=biz&bk_scope_id=${OTHER_BIZ}&job_instance_id=${run.job_instance_id}`,
          { token: tokens.bizadmin },
        ),
        'USER_PERMISSION_DENIED',
      );
    });

    it('enforces the permission class of every endpoint, present and future', async () => {
      const denied = ERROR_CATALOGUE.USER_PERMISSION_DENIED.code;
      const allowedFor: Record<string, string[]> = {
        read: ['viewer', 'oper', 'bizadmin', 'root'],
        run: ['oper', 'bizadmin', 'root'],
        manage: ['bizadmin', 'root'],
      };
      for (const e of ENDPOINTS) {
        const path = e.systemOnly ? `/api/v3/system/${e.name}` : v3(e.name);
        const body = e.scoped ? { bk_scope_type: 'biz', bk_scope_id: String(BIZ) } : {};
        for (const who of ['norole', 'viewer', 'oper', 'bizadmin', 'root']) {
          // Unscoped endpoints: anyone signed in reads; running or managing needs a platform admin.
          const allowed = e.scoped
            ? (allowedFor[e.permission] ?? []).includes(who)
            : e.permission === 'read' || who === 'root';
          const r = await call(server.url, 'POST', path, { token: tokens[who] }, body);
          assert.equal(
            r.code === denied,
            !allowed,
            `${who} on ${e.name} (${e.permission}): ${r.code} ${r.message}`,
          );
        }
      }
    });

    it('keeps app auth unchanged, with bk_username naming the user', async () => {
      const r = await fetch(`${server.url}${v3('fast_execute_script')}`, {
        method: 'POST',
        headers: {
          'x-bkapi-authorization': JSON.stringify({
            bk_app_code: server.appCode,
            bk_app_secret: server.appSecret,
            bk_username: 'someone',
          }),
          // An app call is judged as an app call even when a user credential rides along.
          authorization: `Bearer ${tokens.viewer}`,
        },
        body: JSON.stringify(script),
      });
      const env = (await r.json()) as Envelope<{ job_instance_id: number }>;
      const id = succeeds(env).job_instance_id;
      const job = await store.db
        .selectFrom('job_instance')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      assert.equal(job.operator, 'someone');
    });

    it('limits a token to its scopes and role, and revokes it at once', async () => {
      const session = await login(server.url, 'bizadmin', 'bizadmin-password');
      const limited = succeeds(
        await call<{ id: number; token: string; role: string; prefix: string }>(
          server.url,
          'POST',
          '/api/auth/tokens',
          { session },
          {
            name: 'ci read-only',
            scopes: [{ type: 'biz', id: BIZ }],
            role: 'viewer',
          },
        ),
      );
      assert.match(limited.token, /^jft_/);
      assert.ok(limited.token.startsWith(limited.prefix));
      const listQuery = `${v3('get_job_instance_list')}?bk_scope_type=biz&bk_scope_id=${BIZ}&create_time_start=${Date.now() - 3_600_000}&create_time_end=${Date.now() + 60_000}`;
      succeeds(await call(server.url, 'GET', listQuery, { token: limited.token }));
      fails(
        await call(server.url, 'POST', v3('fast_execute_script'), { token: limited.token }, script),
        'USER_PERMISSION_DENIED',
        'viewer',
      );
      // A limited token cannot mint a broader one.
      fails(
        await call(server.url, 'POST', '/api/auth/tokens', { token: limited.token }, { name: 'wider' }),
        'USER_PERMISSION_DENIED',
      );
      const mine = succeeds(
        await call<{ tokens: { id: number; last_used_at: number | null }[] }>(
          server.url,
          'GET',
          '/api/auth/tokens',
          { session },
        ),
      );
      assert.ok(
        (mine.tokens.find((t) => t.id === limited.id)?.last_used_at ?? 0) > 0,
        'last use is recorded',
      );

      succeeds(await call(server.url, 'DELETE', `/api/auth/tokens/${limited.id}`, { session }));
      fails(
        await call(server.url, 'GET', listQuery, { token: limited.token }),
        'USER_AUTH_FAILED',
        'revoked',
      );
      // Someone else's token cannot be revoked through the self-service API.
      const other = succeeds(
        await call<{ tokens: { id: number }[] }>(server.url, 'GET', '/api/auth/tokens', {
          token: tokens.oper,
        }),
      );
      fails(
        await call(server.url, 'DELETE', `/api/auth/tokens/${other.tokens[0]?.id ?? 0}`, { session }),
        'RESOURCE_NOT_FOUND',
      );
      // An admin can revoke anyone's, also at once.
      const extra = succeeds(
        await call<{ id: number; token: string }>(
          server.url,
          'POST',
          '/api/auth/tokens',
          { token: tokens.oper },
          { name: 'extra' },
        ),
      );
      succeeds(await call(server.url, 'GET', '/api/auth/me', { token: extra.token }));
      succeeds(await admin(server.url, server.adminToken, 'DELETE', `/tokens/${extra.id}`));
      fails(
        await call(server.url, 'GET', '/api/auth/me', { token: extra.token }),
        'USER_AUTH_FAILED',
        'revoked',
      );
      // A token past its expiry (set here in the store rather than waited for) is refused.
      const expiring = succeeds(
        await call<{ id: number; token: string; expires_at: number }>(
          server.url,
          'POST',
          '/api/auth/tokens',
          { token: tokens.oper },
          { name: 'short', expires_in_days: 1 },
        ),
      );
      assert.ok(Math.abs(expiring.expires_at - (Date.now() + 86_400_000)) < 600_000);
      succeeds(await call(server.url, 'GET', '/api/auth/me', { token: expiring.token }));
      await store.db
        .updateTable('api_token')
        .set({ expires_at: Date.now() - 1 })
        .where('id', '=', expiring.id)
        .execute();
      fails(
        await call(server.url, 'GET', '/api/auth/me', { token: expiring.token }),
        'USER_AUTH_FAILED',
        'expired',
      );
      fails(
        await call(server.url, 'GET', '/api/auth/me', { token: 'jft_not-a-token' }),
        'USER_AUTH_FAILED',
        'unknown',
      );

      const created = await auditOf('token.create');
      assert.ok(
        created.some(
          (e) =>
            e.user === 'bizadmin' && e.target === `api_token:${limited.id}` && e.detail.role === 'viewer',
        ),
      );
      const revoked = await auditOf('token.revoke');
      assert.ok(
        revoked.some(
          (e) => e.user === 'bizadmin' && e.kind === 'user' && e.target === `api_token:${limited.id}`,
        ),
      );
      assert.ok(revoked.some((e) => e.kind === 'admin' && e.target === `api_token:${extra.id}`));
    });

    it('lets platform admins use the admin API, and nobody else', async () => {
      succeeds(await call(server.url, 'GET', '/api/admin/users', { token: tokens.root }));
      succeeds(await call(server.url, 'GET', '/api/admin/biz', { token: tokens.root }));
      fails(
        await call(server.url, 'GET', '/api/admin/users', { token: tokens.bizadmin }),
        'USER_PERMISSION_DENIED',
        'platform admin',
      );
      fails(
        await call(server.url, 'GET', '/api/admin/biz', { token: tokens.oper }),
        'USER_PERMISSION_DENIED',
      );
      fails(
        await call(server.url, 'GET', '/api/admin/biz', { token: 'not-the-admin-token' }),
        'ADMIN_AUTH_FAILED',
      );
      const rootSession = await login(server.url, 'root', 'root-password');
      fails(
        await call(
          server.url,
          'POST',
          '/api/admin/biz',
          { session: rootSession, csrf: false },
          { id: 77, name: 'x' },
        ),
        'CSRF_CHECK_FAILED',
      );
      succeeds(
        await call(server.url, 'POST', '/api/admin/biz', { session: rootSession }, { id: 77, name: 'x' }),
      );
      // A person refused the admin API is named as who tried, not taken for the admin token.
      fails(
        await call(server.url, 'POST', '/api/admin/biz', { token: tokens.oper }, { id: 78, name: 'y' }),
        'USER_PERMISSION_DENIED',
      );
      await eventually(async () =>
        (await auditOf('admin POST /biz')).some(
          (e) => e.kind === 'user' && e.user === 'oper' && e.outcome === 'refused',
        )
          ? true
          : undefined,
      );
      // The audit log names the person, for the admin API and for the v3 API alike (entries are
      // written in batches: looked for until they are there).
      await eventually(async () =>
        (await auditOf('admin POST /biz')).some((e) => e.kind === 'user' && e.user === 'root')
          ? true
          : undefined,
      );
      succeeds(await call(server.url, 'POST', v3('fast_execute_script'), { token: tokens.oper }, script));
      await eventually(async () =>
        (await auditOf('fast_execute_script')).some((e) => e.kind === 'user' && e.user === 'oper')
          ? true
          : undefined,
      );
    });

    it("lists the console's scopes with the highest role held in each, a token's limits applied", async () => {
      const SET_OF_BOTH = 8_000_002;
      const FOURTH_BIZ = 4;
      succeeds(await adminApi('POST', '/biz', { id: FOURTH_BIZ, name: 'fourth' }));
      succeeds(
        await adminApi('POST', '/biz_set', { id: SET_OF_BOTH, name: 'both', biz_ids: [BIZ, FOURTH_BIZ] }),
      );
      succeeds(await adminApi('POST', '/users', { name: 'scoper', password: 'scoper-password' }));
      const roles = [
        { scope_type: 'biz', scope_id: BIZ, role: 'admin' },
        { scope_type: 'biz_set', scope_id: SET_OF_BOTH, role: 'operator' },
        { scope_type: 'biz_set', scope_id: SET_OF_OTHER, role: 'viewer' },
      ];
      succeeds(await adminApi('POST', '/users/scoper/roles', { roles }));
      const session = await login(server.url, 'scoper', 'scoper-password');
      type Scopes = { scopes: { scope_type: string; scope_id: number; role: string }[] };
      const listed = async (as: As) =>
        succeeds(await call<Scopes>(server.url, 'GET', '/api/console/scopes', as))
          .scopes.map((s) => `${s.scope_type}:${s.scope_id}=${s.role}`)
          .sort();
      assert.deepEqual(
        await listed({ session }),
        [
          `biz:${BIZ}=admin`,
          `biz:${OTHER_BIZ}=viewer`,
          `biz:${FOURTH_BIZ}=operator`,
          `biz_set:${SET_OF_BOTH}=operator`,
          `biz_set:${SET_OF_OTHER}=viewer`,
        ].sort(),
      );
      const limited = succeeds(
        await call<{ token: string }>(
          server.url,
          'POST',
          '/api/auth/tokens',
          { session },
          { name: 'one set', scopes: [{ type: 'biz_set', id: SET_OF_BOTH }], role: 'viewer' },
        ),
      );
      assert.deepEqual(
        await listed({ token: limited.token }),
        [`biz:${BIZ}=viewer`, `biz:${FOURTH_BIZ}=viewer`, `biz_set:${SET_OF_BOTH}=viewer`].sort(),
      );
    });

    it('records role changes, ends sessions at a password reset, and drops a deleted user at once', async () => {
      succeeds(
        await call(
          server.url,
          'POST',
          '/api/admin/users',
          { token: tokens.root },
          { name: 'dora', password: 'dora-password' },
        ),
      );
      const changed = succeeds(
        await call<{ roles: unknown[] }>(
          server.url,
          'POST',
          '/api/admin/users/dora/roles',
          { token: tokens.root },
          {
            roles: [{ scope_type: 'biz', scope_id: BIZ, role: 'operator' }],
          },
        ),
      );
      assert.deepEqual(changed.roles, [{ scope_type: 'biz', scope_id: BIZ, role: 'operator' }]);
      fails(
        await call(
          server.url,
          'POST',
          '/api/admin/users/dora/roles',
          { token: tokens.root },
          { roles: [{ scope_type: 'biz', scope_id: 999, role: 'viewer' }] },
        ),
        'RESOURCE_NOT_FOUND',
      );
      const roleEntries = (await auditOf('user.roles')).filter((e) => e.target === 'user:dora');
      assert.equal(roleEntries.length, 1);
      assert.equal(roleEntries[0]?.user, 'root');
      assert.deepEqual((roleEntries[0]?.detail.after as { roles: unknown }).roles, changed.roles);

      const session = await login(server.url, 'dora', 'dora-password');
      const token = succeeds(
        await call<{ token: string }>(server.url, 'POST', '/api/auth/tokens', { session }, { name: 't' }),
      ).token;
      const reset = succeeds(await adminApi<{ password: string }>('POST', '/users/dora/password', {}));
      fails(await call(server.url, 'GET', '/api/auth/me', { session }), 'USER_AUTH_FAILED');
      await login(server.url, 'dora', reset.password);
      succeeds(await call(server.url, 'GET', '/api/auth/me', { token }));
      succeeds(await admin(server.url, server.adminToken, 'DELETE', '/users/dora'));
      fails(await call(server.url, 'GET', '/api/auth/me', { token }), 'USER_AUTH_FAILED');
      for (const action of ['user.create', 'user.password_reset', 'user.delete'])
        assert.ok(
          (await auditOf(action)).some((e) => e.target === 'user:dora'),
          action,
        );
    });

    it(
      'manages users with `jobfleet admin user ...`',
      { skip: index > 0 && 'CLI covered on the first engine' },
      async () => {
        const env = { JOBFLEET_SERVER: server.url, JOBFLEET_ADMIN_TOKEN: server.adminToken };
        const created = await adminCli(['user', 'create', 'erin', '--display-name', 'Erin E'], env);
        assert.equal(created.code, 0, created.stderr);
        const password = (JSON.parse(created.stdout) as { password: string }).password;
        assert.ok(password.length >= 16);
        const roles = await adminCli(
          ['user', 'roles', 'erin', `biz:${BIZ}=operator`, `biz_set:${SET_OF_OTHER}=viewer`],
          env,
        );
        assert.equal(roles.code, 0, roles.stderr);
        const bad = await adminCli(['user', 'roles', 'erin', 'biz:2=owner'], env);
        assert.notEqual(bad.code, 0);
        const list = JSON.parse((await adminCli(['user', 'list'], env)).stdout) as {
          users: { name: string; roles: unknown[] }[];
        };
        assert.deepEqual(list.users.find((u) => u.name === 'erin')?.roles, [
          { scope_type: 'biz', scope_id: BIZ, role: 'operator' },
          { scope_type: 'biz_set', scope_id: SET_OF_OTHER, role: 'viewer' },
        ]);
        const session = await login(server.url, 'erin', password);
        const reset = await adminCli(['user', 'reset-password', 'erin'], env);
        assert.equal(reset.code, 0, reset.stderr);
        fails(await call(server.url, 'GET', '/api/auth/me', { session }), 'USER_AUTH_FAILED');
        await login(server.url, 'erin', (JSON.parse(reset.stdout) as { password: string }).password);
        assert.equal((await adminCli(['user', 'delete', 'erin'], env)).code, 0);
        const gone = await adminCli(['user', 'delete', 'erin'], env);
        assert.notEqual(gone.code, 0);
        assert.match(gone.stderr, /user erin does not exist/);
      },
    );
  });

  describe(`session expiry and address limits on ${engine}`, () => {
    let server: ServerProcess;
    before(async () => {
      server = await startServer({
        ...(await freshDatabase(engine).then((databaseUrl) => (databaseUrl ? { databaseUrl } : {}))),
        env: {
          JOBFLEET_SESSION_IDLE_SECONDS: '3',
          JOBFLEET_SESSION_MAX_SECONDS: '6',
          JOBFLEET_LOGIN_MAX_FAILURES_PER_ADDRESS: '4',
          // The test's own address stands for a load balancer in front of the server.
          JOBFLEET_TRUST_PROXY: '127.0.0.1',
        },
      });
      const created = await admin(server.url, server.adminToken, 'POST', '/users', {
        name: 'ivy',
        password: 'ivy-password',
      });
      succeeds(created);
    });

    it('ends an idle session, and an active one at its absolute end', async () => {
      const idle = await login(server.url, 'ivy', 'ivy-password');
      succeeds(await call(server.url, 'GET', '/api/auth/me', { session: idle }));
      await new Promise((r) => setTimeout(r, 3500));
      fails(await call(server.url, 'GET', '/api/auth/me', { session: idle }), 'USER_AUTH_FAILED', 'idle');

      const active = await login(server.url, 'ivy', 'ivy-password');
      const started = Date.now();
      // Used every half second, it outlives the idle timeout, but not the absolute one.
      let lastOk = started;
      for (;;) {
        const env = await call(server.url, 'GET', '/api/auth/me', { session: active });
        if (!env.result) {
          fails(env, 'USER_AUTH_FAILED', 'expired');
          break;
        }
        lastOk = Date.now();
        assert.ok(lastOk - started < 8000, 'the session outlived its absolute expiry');
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(
        lastOk - started > 3500,
        `an active session ended after ${lastOk - started} ms, before its absolute end`,
      );
    });

    it('behind a trusted proxy: the forwarded address is limited, forwarded https gives a Secure cookie', async () => {
      const signIn = (headers: Record<string, string>, password: string, body?: string) =>
        fetch(`${server.url}/api/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: body ?? JSON.stringify({ username: 'ivy', password }),
        });
      const envelope = async (res: Response) => (await res.json()) as Envelope<unknown>;
      const from = (ip: string) => ({ 'x-forwarded-for': ip });
      for (let i = 0; i < 4; i++)
        fails(await envelope(await signIn(from('203.0.113.7'), 'wrong')), 'LOGIN_FAILED');
      fails(
        await envelope(await signIn(from('203.0.113.7'), 'ivy-password')),
        'LOGIN_RATE_LIMITED',
        'address',
      );
      // Another client behind the same balancer is not locked out with it.
      const other = await signIn({ ...from('203.0.113.8'), 'x-forwarded-proto': 'https' }, 'ivy-password');
      succeeds(await envelope(other));
      assert.match(other.headers.get('set-cookie') ?? '', /; Secure/);
      const plain = await signIn(from('203.0.113.9'), 'ivy-password');
      assert.doesNotMatch(plain.headers.get('set-cookie') ?? '', /; Secure/);
      // A form on another site (JSON inside a text/plain body) is refused, by either header a
      // browser sends; curl's form-encoded JSON, with neither, is not.
      const browsers: Record<string, string>[] = [
        { 'sec-fetch-site': 'cross-site' },
        { origin: 'https://elsewhere.example' },
      ];
      for (const headers of browsers) {
        const form = await signIn(
          { ...from('203.0.113.9'), 'content-type': 'text/plain', ...headers },
          '',
          JSON.stringify({ username: 'ivy', password: 'ivy-password' }),
        );
        fails(await envelope(form), 'BAD_REQUEST', 'another site');
        assert.equal(form.headers.get('set-cookie'), null);
      }
      const curl = await signIn({ 'content-type': 'application/x-www-form-urlencoded' }, 'ivy-password');
      succeeds(await envelope(curl));
    });

    it('refuses sign-ins from an address with too many failures', async () => {
      for (let i = 0; i < 4; i++)
        fails(
          await call(
            server.url,
            'POST',
            '/api/auth/login',
            {},
            { username: `guess${i}`, password: 'nope-nope' },
          ),
          'LOGIN_FAILED',
        );
      fails(
        await call(server.url, 'POST', '/api/auth/login', {}, { username: 'ivy', password: 'ivy-password' }),
        'LOGIN_RATE_LIMITED',
        'address',
      );
    });
  });
}
