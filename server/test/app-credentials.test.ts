/**
 * App credentials at the store and authenticator level: the signature algorithm against values
 * computed by the ESB SDK's own code, apps whose secret an earlier version kept only as a hash
 * (through the real migration), and the nonce table that refuses replays.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { computeSignature, signatureBase, signedRequestOf } from '../src/api/app-signature.js';
import type { SignedRequest } from '../src/api/app-signature.js';
import { Authenticator, hashSecret } from '../src/api/auth.js';
import { ApiError, ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { SecretBox } from '../src/secret-box.js';
import { openEngine } from '../src/store/engines.js';
import { migrateTo } from '../src/store/migrations.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

after(dropFreshDatabases);

const SECRET = 's3cret-é';

describe('ESB signature algorithm', () => {
  // Computed with the SDK's get_signature (blueking/component/utils.py) in Python 3.
  it('matches the SDK for a GET: Python str() values, sorted keys, decoded query', () => {
    const url =
      '/api/c/compapi/v2/jobv3/get_job_instance_status/?bk_app_code=sdk-app&bk_username=admin&bk_biz_id=2' +
      '&job_instance_id=7&return_ip_result=True&bk_timestamp=1700000000&bk_nonce=123456' +
      '&bk_signature=84OfypgXYP1XpocMZu3ehwWm0i4%3D';
    const req = signedRequestOf('GET', url, undefined);
    assert.ok(req);
    assert.equal(
      signatureBase(req),
      'GET/api/c/compapi/v2/jobv3/get_job_instance_status/?bk_app_code=sdk-app&bk_biz_id=2&bk_nonce=123456' +
        '&bk_timestamp=1700000000&bk_username=admin&job_instance_id=7&return_ip_result=True',
    );
    assert.equal(computeSignature(SECRET, signatureBase(req)), '84OfypgXYP1XpocMZu3ehwWm0i4=');
  });

  it('matches the SDK for a POST: the raw body as data=, signature fields alone in the query', () => {
    const body =
      '{"bk_app_code": "sdk-app", "bk_username": "admin", "bk_biz_id": 2, "script_content": "ZWNobyBoaQ==", "name": "\\u00fcn\\u00ef"}';
    const req = signedRequestOf(
      'post',
      '/api/c/compapi/v2/jobv3/fast_execute_script/?bk_timestamp=1700000000&bk_nonce=42&bk_signature=x',
      body,
    );
    assert.ok(req);
    assert.equal(computeSignature(SECRET, signatureBase(req)), 'f0yd3UG1a1RDFvRyyHKGh/lBC1s=');
  });

  it('leaves requests without signature fields to the plain secret', () => {
    assert.equal(signedRequestOf('GET', '/api/v3/x?bk_app_code=a&bk_app_secret=b', undefined), undefined);
    assert.equal(signedRequestOf('POST', '/api/v3/x', '{}'), undefined);
  });
});

function refusedWith(name: ErrorName, ...inMessage: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, ERROR_CATALOGUE[name].code, err.message);
    for (const t of inMessage) assert.ok(err.message.includes(t), `"${err.message}" lacks "${t}"`);
    return true;
  };
}

/** A request signed as the SDK signs it, `at` seconds since the epoch. */
function signed(appCode: string, secret: string, nonce: string, at: number, extra = ''): SignedRequest {
  const path = '/api/v3/get_latest_service_version';
  const unsigned = `${path}?bk_app_code=${appCode}&bk_timestamp=${at}&bk_nonce=${nonce}${extra}`;
  const req = signedRequestOf('GET', unsigned, undefined);
  assert.ok(req);
  const signature = computeSignature(secret, signatureBase(req));
  const full = signedRequestOf('GET', `${unsigned}&bk_signature=${encodeURIComponent(signature)}`, undefined);
  assert.ok(full);
  return full;
}

for (const engine of engines()) {
  describe(`app credentials on ${engine}`, () => {
    it('migrates hash-only apps: plain secret works and seals it; signatures wait until then', async () => {
      const databaseUrl = await freshDatabase(engine);
      const dataDir = tempDir(`app-credentials-${engine}`);
      // A database as the previous version left it, with an app whose secret is only hashed.
      const opened = openEngine({ databaseUrl, dataDir });
      const db = opened.db as unknown as Kysely<unknown>;
      await migrateTo(db, opened.caps, '0006_audit_log');
      await opened.db
        .insertInto('app')
        .values({ app_code: 'legacy', secret_hash: hashSecret('old-secret'), scopes: '"all"', created_at: 1 })
        .execute();
      await opened.db.destroy();

      const store = await Store.open({ databaseUrl, dataDir });
      try {
        const before = await store.apps.getApp('legacy');
        assert.equal(before?.secretSealed, '');
        assert.match(before?.secretHash ?? '', /^sha256:/);

        const box = new SecretBox(crypto.randomBytes(32));
        const auth = new Authenticator(store.apps, box, store.nonces, 0);
        const now = Math.floor(Date.now() / 1000);
        await assert.rejects(
          auth.authenticate({
            appCode: 'legacy',
            appSecret: undefined,
            username: undefined,
            signed: signed('legacy', 'old-secret', '1', now),
          }),
          refusedWith('APP_SECRET_NOT_SEALED', 'legacy', 'Re-set the secret'),
        );
        const plain = { appCode: 'legacy', username: 'ann' };
        await assert.rejects(
          auth.authenticate({ ...plain, appSecret: 'wrong' }),
          refusedWith('APP_AUTH_FAILED'),
        );
        const caller = await auth.authenticate({ ...plain, appSecret: 'old-secret' });
        assert.deepEqual(caller, { appCode: 'legacy', username: 'ann', scopes: 'all' });

        const after = await store.apps.getApp('legacy');
        assert.equal(after?.secretHash, '', 'the hash is gone once the secret is sealed');
        assert.ok(SecretBox.isSealed(after?.secretSealed ?? ''));
        assert.ok(!after?.secretSealed.includes('old-secret'));
        assert.equal(box.open(after?.secretSealed ?? '', 'app:legacy'), 'old-secret');

        await auth.authenticate({ ...plain, appSecret: 'old-secret' });
        await assert.rejects(
          auth.authenticate({ ...plain, appSecret: 'wrong' }),
          refusedWith('APP_AUTH_FAILED'),
        );
        const bySignature = await auth.authenticate({
          appCode: 'legacy',
          appSecret: undefined,
          username: undefined,
          signed: signed('legacy', 'old-secret', '2', now),
        });
        assert.equal(bySignature.username, 'legacy');
      } finally {
        await store.close();
      }
    });

    it('moves a secret sealed under a rotated-out key to the current key on first use', async () => {
      const databaseUrl = await freshDatabase(engine);
      const store = await Store.open({ databaseUrl, dataDir: tempDir(`rotation-${engine}`) });
      try {
        const oldKey = crypto.randomBytes(32);
        const newKey = crypto.randomBytes(32);
        const old = new SecretBox(oldKey);
        await store.apps.upsertApp({
          appCode: 'rot',
          secretSealed: old.seal('rot-secret', 'app:rot'),
          scopes: 'all',
        });
        const auth = new Authenticator(store.apps, new SecretBox(newKey, [oldKey]), store.nonces);
        await auth.authenticate({ appCode: 'rot', appSecret: 'rot-secret', username: undefined });
        const sealed = (await store.apps.getApp('rot'))?.secretSealed ?? '';
        assert.equal(
          new SecretBox(newKey).open(sealed, 'app:rot'),
          'rot-secret',
          'opens without the old key',
        );
        await assert.rejects(
          auth.authenticate({ appCode: 'rot', appSecret: 'wrong', username: undefined }),
          refusedWith('APP_AUTH_FAILED'),
        );
      } finally {
        await store.close();
      }
    });

    it('refuses a nonce again while its timestamp is acceptable, per app, across store handles', async () => {
      const databaseUrl = await freshDatabase(engine);
      const dataDir = tempDir(`nonces-${engine}`);
      const one = await Store.open({ databaseUrl, dataDir });
      const two = await Store.open({ databaseUrl, dataDir });
      try {
        const t = 1_700_000_000_000;
        assert.equal(await one.nonces.remember('a', '17', t + 300_000, t), true);
        assert.equal(
          await two.nonces.remember('a', '17', t + 300_000, t + 1000),
          false,
          'replay on another handle',
        );
        assert.equal(await two.nonces.remember('b', '17', t + 300_000, t), true, 'another app');
        assert.equal(await one.nonces.remember('a', '17', t + 900_000, t + 299_000), false);
        // Past its expiry the first use no longer counts (its signed timestamp is stale anyway).
        assert.equal(await one.nonces.remember('a', '17', t + 900_000, t + 301_000), true);
        assert.equal(await two.nonces.remember('a', '17', t + 900_000, t + 302_000), false);
        assert.equal(await one.nonces.prune(t + 400_000), 1, 'b:17 expired');
        assert.equal(await one.nonces.remember('b', '17', t + 700_000, t + 400_000), true);
        // Nonces skip waiting for the disk; every other write still waits for it.
        const setting =
          engine === 'sqlite'
            ? sql`pragma synchronous`
            : sql`select current_setting('synchronous_commit') as s`;
        const rows = (await setting.execute(one.db)).rows as Record<string, unknown>[];
        assert.deepEqual(Object.values(rows[0] ?? {}), [engine === 'sqlite' ? 2 : 'on']);
      } finally {
        await one.close();
        await two.close();
      }
    });

    it('names what is wrong with a signed request, and changes nothing when refusing', async () => {
      const databaseUrl = await freshDatabase(engine);
      const store = await Store.open({ databaseUrl, dataDir: tempDir(`signed-${engine}`) });
      try {
        const box = new SecretBox(crypto.randomBytes(32));
        await store.apps.upsertApp({
          appCode: 'sig',
          secretSealed: box.seal('sig-secret', 'app:sig'),
          scopes: 'all',
        });
        const auth = new Authenticator(store.apps, box, store.nonces);
        const now = Math.floor(Date.now() / 1000);
        const call = (req: SignedRequest, appCode = 'sig') =>
          auth.authenticate({ appCode, appSecret: undefined, username: undefined, signed: req });

        await assert.rejects(
          call(signed('sig', 'not-the-secret', '5', now)),
          refusedWith('APP_SIGNATURE_INVALID'),
        );
        await assert.rejects(
          call(signed('nobody', 'sig-secret', '5', now), 'nobody'),
          refusedWith('APP_SIGNATURE_INVALID'),
        );
        const tampered = signed('sig', 'sig-secret', '5', now);
        tampered.pairs.push(['bk_biz_id', '3']);
        await assert.rejects(call(tampered), refusedWith('APP_SIGNATURE_INVALID'));
        await assert.rejects(
          call(signed('sig', 'sig-secret', '5', now - 301)),
          refusedWith('APP_SIGNATURE_EXPIRED', 'bk_timestamp', 'at most 300 s'),
        );
        await assert.rejects(
          call(signed('sig', 'sig-secret', '5', now + 400)),
          refusedWith('APP_SIGNATURE_EXPIRED'),
        );
        // Stale by a fraction of a second past the window: refused (its nonce is no longer kept).
        while (Date.now() % 1000 < 200 || Date.now() % 1000 > 400)
          await new Promise((resolve) => setTimeout(resolve, 20));
        await assert.rejects(
          call(signed('sig', 'sig-secret', '6', Math.floor(Date.now() / 1000) - 300)),
          refusedWith('APP_SIGNATURE_EXPIRED'),
        );
        const unsigned = signedRequestOf(
          'GET',
          `/api/v3/x?bk_app_code=sig&bk_timestamp=${now}&bk_nonce=5`,
          undefined,
        );
        assert.ok(unsigned);
        await assert.rejects(call(unsigned), refusedWith('APP_SIGNATURE_MISSING', 'bk_signature'));
        // A nonce the store could not key (a NUL, past PostgreSQL's index row limit): refused.
        for (const nonce of ['%00abc', 'n'.repeat(5000), ''])
          await assert.rejects(
            call(signed('sig', 'sig-secret', nonce, now)),
            refusedWith('APP_SIGNATURE_MISSING', 'bk_nonce'),
          );
        // None of the refusals above used up nonce 5.
        const good = signed('sig', 'sig-secret', '5', now - 290);
        assert.equal((await call(good)).appCode, 'sig');
        await assert.rejects(call(good), refusedWith('APP_SIGNATURE_REPLAYED', 'bk_nonce 5', 'sig'));

        // A hand-written URL that leaves the signature's `+` unencoded (it arrives as a space).
        for (let nonce = 100; ; nonce++) {
          const target = `/api/v3/x?bk_app_code=sig&bk_timestamp=${now}&bk_nonce=${nonce}`;
          const unsignedReq = signedRequestOf('GET', target, undefined);
          assert.ok(unsignedReq);
          const signature = computeSignature('sig-secret', signatureBase(unsignedReq));
          if (!signature.includes('+')) continue;
          const raw = signedRequestOf('GET', `${target}&bk_signature=${signature}`, undefined);
          assert.ok(raw);
          assert.equal((await call(raw)).appCode, 'sig');
          break;
        }
      } finally {
        await store.close();
      }
    });
  });
}
