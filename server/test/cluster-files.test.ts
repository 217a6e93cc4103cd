/**
 * Two servers on one PostgreSQL database, started at once with no secrets configured: they end
 * up with the same secrets (shared through the database, never stored readable), an upload
 * received by one is served by the other to agents connected there, and a file-offer token
 * minted with one server's key is accepted by the other.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { offerToken, serverServeId } from '../src/engine/file-tokens.js';
import { admin, post } from './helpers/api-client.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { CLUSTER_TEST_ENV } from './helpers/cluster.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { BIZ, hostIdsByIp, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { startAgent, startServer, stopAll, tempDir } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

interface Secrets {
  appSecret: string;
  adminToken: string;
  agentBootstrapToken: string;
  serverKey: string;
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

function secretsOf(s: ServerProcess): Secrets {
  return JSON.parse(fs.readFileSync(path.join(s.dataDir, 'secrets.json'), 'utf8')) as Secrets;
}

/** Cluster mode, and no secret from the environment: each server would generate its own. */
const ENV = {
  ...CLUSTER_TEST_ENV,
  JOBFLEET_CLUSTER_DEAD_AFTER_MS: '4000',
  JOBFLEET_CLUSTER_SELF_FENCE_MS: '2500',
  JOBFLEET_SERVER_KEY: '',
  JOBFLEET_APP_SECRET: '',
  JOBFLEET_ADMIN_TOKEN: '',
  JOBFLEET_AGENT_BOOTSTRAP_TOKEN: '',
};

describe(
  'servers sharing PostgreSQL: secrets and stored files',
  { skip: !process.env.JOBFLEET_TEST_PG_URL },
  () => {
    let s1: ServerProcess;
    let s2: ServerProcess;
    let databaseUrl: string;
    let secrets: Secrets;
    let fleet: Fleet;
    /** The upload of the second test, as its file step offers it to agents. */
    let offered: { serveId: string; token: string; data: Buffer } | undefined;
    const root = tempDir('root-127.0.0.2');

    before(async () => {
      databaseUrl = (await freshDatabase('postgres')) as string;
      [s1, s2] = await Promise.all([
        startServer({ databaseUrl, env: ENV, readyTimeoutMs: 60_000 }),
        startServer({ databaseUrl, env: ENV, readyTimeoutMs: 60_000 }),
      ]);
      secrets = secretsOf(s1);
    });

    after(async () => {
      await stopAll();
      await dropFreshDatabases();
      fs.rmSync(root, { recursive: true, force: true });
    });

    test('secrets are identical on both servers after the first start and stored sealed', async () => {
      assert.deepEqual(secretsOf(s2), secrets);
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        const rows = (
          await client.query<{ name: string; value: string }>('select name, value from cluster_secret')
        ).rows;
        assert.deepEqual(rows.map((r) => r.name).sort(), [
          'admin_token',
          'agent_bootstrap_token',
          'app_secret',
          'server_key',
          'server_key_id',
        ]);
        const plain = [secrets.appSecret, secrets.adminToken, secrets.agentBootstrapToken, secrets.serverKey];
        const keyHex = Buffer.from(secrets.serverKey, 'base64').toString('hex');
        for (const r of rows)
          for (const p of [...plain, keyHex])
            assert.ok(!r.value.includes(p), `${r.name} holds a secret readable`);
      } finally {
        await client.end();
      }
      // A third server started later adopts them too, and the admin token of one works on the other.
      const s3 = await startServer({ databaseUrl, env: ENV, readyTimeoutMs: 60_000 });
      assert.deepEqual(secretsOf(s3), secrets);
      await s3.kill();
      const created = await admin(s2.url, secrets.adminToken, 'POST', '/biz', { id: BIZ, name: 'cluster' });
      assert.equal(created.result, true, created.message);
      const account = os.userInfo().username;
      await admin(s1.url, secrets.adminToken, 'POST', '/accounts', {
        bk_biz_id: BIZ,
        alias: account,
        os_user: account,
      });
      const agent = await startAgent({
        server: { url: s2.url, bootstrapToken: secrets.agentBootstrapToken },
        ip: '127.0.0.2',
        biz: BIZ,
        env: { JOBFLEET_AGENT_FILE_ROOT: root },
      });
      fleet = {
        server: s2,
        agents: [agent],
        hostIds: await hostIdsByIp(s1.url, secrets.adminToken),
        creds: { appCode: s1.appCode, appSecret: secrets.appSecret, username: 'tester' },
        account,
        scope: { bk_scope_type: 'biz', bk_scope_id: String(BIZ) },
        fileRoots: new Map([['127.0.0.2', root]]),
        databaseUrl,
      };
    });

    test('an upload received by one server is served by the other; offer tokens verify on both', async () => {
      // 3 MiB and a bit: four chunks, the last one short.
      const data = crypto.randomBytes(3 * 1024 * 1024 + 12_345);
      const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
        s1.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['bundle.bin'] },
        fleet.creds,
      );
      assert.equal(urls.result, true, urls.message);
      const entry = urls.data.url_map['bundle.bin'];
      assert.ok(entry);
      assert.equal(new URL(entry.upload_url).port, String(s1.port));
      const up = (await (await fetch(entry.upload_url, { method: 'PUT', body: data })).json()) as {
        result: boolean;
        data: { size: number; sha256: string };
      };
      assert.equal(up.result, true);
      assert.equal(up.data.sha256, sha(data));
      assert.ok(!fs.existsSync(path.join(s1.dataDir, 'files')), 'the bytes are in the database, not on S1');

      // Submitted to S1, which runs the job; S2 holds the agent, which downloads the file from
      // S2 with the offer token S1 minted.
      const r = await post<{ job_instance_id: number; step_instance_id: number }>(
        s1.url,
        'fast_transfer_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_source_list: [{ file_type: 2, file_list: [entry.path] }],
          file_target_path: '/inbox/',
          target_server: { host_id_list: [fleet.hostIds.get('127.0.0.2')] },
        },
        fleet.creds,
      );
      assert.equal(r.result, true, r.message);
      const st = await waitFinished({ ...fleet, server: s1 }, r.data.job_instance_id, 30_000);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list));
      assert.equal(sha(fs.readFileSync(path.join(root, 'inbox', 'bundle.bin'))), sha(data));

      // An offer token keyed by the bootstrap token (every agent host holds it) is refused; one
      // keyed by the server key, once the step has ended, finds no offer.
      const serveId = serverServeId(r.data.step_instance_id, 0);
      const fetchWith = (s: ServerProcess, token: string) =>
        fetch(`${s.url}/agent/v1/files/${serveId}/bundle.bin`, {
          headers: { authorization: `Bearer ${token}` },
        });
      const token = offerToken(secrets.serverKey, serveId);
      const agentKeyed = crypto
        .createHmac('sha256', secrets.agentBootstrapToken)
        .update(`file-offer:${serveId}`)
        .digest('base64url');
      assert.equal((await fetchWith(s2, agentKeyed)).status, 401);
      assert.equal((await fetchWith(s2, token)).status, 404, 'the step has ended');
      // While the step runs (as the store has it), the token minted by S1 is accepted by both
      // servers, from any offset.
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query('update step_instance set status = 2 where id = $1', [r.data.step_instance_id]);
      await client.end();
      offered = { serveId, token, data };
      for (const s of [s1, s2]) {
        const start = 2 * 1024 * 1024 - 7;
        const res = await fetch(`${s.url}/agent/v1/files/${serveId}/bundle.bin`, {
          headers: { authorization: `Bearer ${token}`, range: `bytes=${start}-` },
        });
        assert.equal(res.status, 206);
        assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(data.subarray(start)));
        const other = await fetch(`${s.url}/agent/v1/files/${serveId}/other.bin`, {
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(other.status, 404, 'a name the step was not given');
      }
      const forged = await fetch(`${s2.url}/agent/v1/files/${serveId}/bundle.bin`, {
        headers: {
          authorization: `Bearer ${offerToken(crypto.randomBytes(32).toString('base64'), serveId)}`,
        },
      });
      assert.equal(forged.status, 401);
    });

    test('a server cut off from PostgreSQL answers an agent 503 for a file, never a 200 without it', async () => {
      // Agents take a 200 as the file: the API's error envelope (HTTP 200) would end up in it.
      assert.ok(offered, 'the previous test offered an upload');
      const { serveId, token, data } = offered;
      const relay = await startFaultProxy(databaseUrl);
      const viaRelay = new URL(databaseUrl);
      viaRelay.port = String(relay.port);
      const s3 = await startServer({ databaseUrl: viaRelay.toString(), env: ENV, readyTimeoutMs: 60_000 });
      try {
        const get = () =>
          fetch(`${s3.url}/agent/v1/files/${serveId}/bundle.bin`, {
            headers: { authorization: `Bearer ${token}` },
          });
        relay.cut(1_500);
        const refused = await get();
        assert.equal(refused.status, 503, await refused.text());
        assert.equal(refused.headers.get('retry-after'), '1');
        await new Promise((r) => setTimeout(r, 1_600));
        const served = await get();
        assert.equal(served.status, 200);
        assert.equal(sha(Buffer.from(await served.arrayBuffer())), sha(data));
      } finally {
        await s3.kill();
        await relay.close();
      }
    });
  },
);
