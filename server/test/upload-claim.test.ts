/**
 * An upload URL whose upload was cut short by the death of its server (SIGKILL mid-body) takes
 * the next upload, on one server (SQLite, restarted) and in a cluster (another server, once the
 * dead one is declared dead), while a claim whose upload may still be running is never taken.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { eventually, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { agentFileRoots, serverIdOf, startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { waitFinished } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const MiB = 1024 * 1024;
const URL_INVALID = 1243016;
const TOO_LARGE = 1243015;
const TARGET = '127.0.0.2';

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

type Uploaded = Envelope<{ path: string; size: number; sha256: string } | null>;

async function put(url: string, body: Buffer): Promise<Uploaded> {
  return (await (await fetch(url, { method: 'PUT', body })).json()) as Uploaded;
}

/**
 * A PUT that sends the first bytes of its body and then nothing more, as a client on a slow
 * link: its upload holds the URL's claim for as long as its server lives.
 */
function stalledPut(url: string, sent: Buffer, total: number): { abandon(): void } {
  const req = http.request(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) },
  });
  // Its server is killed under it.
  req.on('error', () => undefined);
  req.on('response', (res) => res.resume());
  req.write(sent);
  return { abandon: () => req.destroy() };
}

/** One upload URL from `server`, and the same URL on `other` (a cluster's servers take each other's). */
async function uploadUrl(
  c: Cluster,
  server: number,
  name: string,
): Promise<{ url: string; path: string; on(other: ServerProcess): string }> {
  const fleet = c.via(server);
  const r = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
    fleet.server.url,
    'generate_local_file_upload_url',
    { ...fleet.scope, file_name_list: [name] },
    fleet.creds,
  );
  assert.equal(r.result, true, r.message);
  const entry = r.data.url_map[name];
  assert.ok(entry);
  return {
    url: entry.upload_url,
    path: entry.path,
    on: (s) => `${s.url}${new URL(entry.upload_url).pathname}`,
  };
}

/** Waits until the stalled upload of `path` holds its URL (and, in a cluster, wrote a chunk). */
async function stalledUploadStarted(c: Cluster, path: string): Promise<void> {
  await eventually(
    async () => {
      const rows = await c.db<{ upload_token_hash: string | null }>(
        'select upload_token_hash from stored_file where path = $1',
        [path],
      );
      if (!rows[0]?.upload_token_hash?.startsWith('claimed:')) return undefined;
      if (c.databaseUrl === undefined) return true;
      const chunks = await c.db<{ n: number }>(
        'select count(*)::int as n from stored_file_chunk where path = $1',
        [path],
      );
      return (chunks[0]?.n ?? 0) > 0 ? true : undefined;
    },
    15_000,
    'the stalled upload to claim its URL',
  );
}

/** The uploaded file, sent to the target by a file step through server `via`, arrives whole. */
async function reachesTarget(
  c: Cluster,
  via: number,
  path: string,
  data: Buffer,
  file: (ip: string, hostPath: string) => string,
): Promise<void> {
  const fleet = c.via(via);
  const r = await post<{ job_instance_id: number }>(
    fleet.server.url,
    'fast_transfer_file',
    {
      ...fleet.scope,
      account_alias: fleet.account,
      file_source_list: [{ file_type: 2, file_list: [path] }],
      file_target_path: '/inbox/',
      target_server: { host_id_list: [c.hostIds.get(TARGET)] },
    },
    fleet.creds,
  );
  assert.equal(r.result, true, r.message);
  const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
  assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list));
  const name = path.slice(path.lastIndexOf('/') + 1);
  assert.equal(sha(fs.readFileSync(file(TARGET, `/inbox/${name}`))), sha(data));
}

describe('an upload cut short by a server killed mid-body', () => {
  const roots = agentFileRoots([TARGET]);
  after(async () => {
    await stopAll();
    await dropFreshDatabases();
    roots.remove();
  });

  test('one server on SQLite: the URL takes the next upload after a restart', async () => {
    const c = await startCluster({
      servers: 1,
      store: 'sqlite',
      agents: 1,
      agentEnv: roots.agentEnv,
      env: { JOBFLEET_UPLOAD_MAX_BYTES: String(4 * MiB) },
    });
    try {
      const server = c.servers[0] as ServerProcess;
      const target = c.agents[0];
      assert.ok(target);
      const upload = await uploadUrl(c, 0, 'after-crash.bin');
      const stalled = stalledPut(upload.url, crypto.randomBytes(256 * 1024), 3 * MiB);
      await stalledUploadStarted(c, upload.path);
      const second = await put(upload.url, crypto.randomBytes(1000));
      assert.equal(second.code, URL_INVALID, 'a second upload while the first one runs is refused');

      await server.kill('SIGKILL');
      stalled.abandon();
      c.servers[0] = await server.restart();
      await target.waitReady(2, 30_000);

      // A failed try (too large) releases the URL as before; the next one completes.
      const tooLarge = await put(upload.url, Buffer.alloc(5 * MiB));
      assert.equal(tooLarge.code, TOO_LARGE, tooLarge.message);
      const data = crypto.randomBytes(2 * MiB + 123);
      const done = await put(upload.url, data);
      assert.equal(done.result, true, `the URL whose upload was cut short takes a new one: ${done.message}`);
      assert.equal(done.data?.sha256, sha(data));
      const rows = await c.db<{ size: number; sha256: string; upload_token_hash: string | null }>(
        'select size, sha256, upload_token_hash from stored_file where path = $1',
        [upload.path],
      );
      assert.deepEqual(rows, [{ size: data.length, sha256: sha(data), upload_token_hash: null }]);
      assert.equal((await put(upload.url, data)).code, URL_INVALID, 'a completed upload closes its URL');
      await reachesTarget(c, 0, upload.path, data, roots.file);
    } finally {
      await stopAll();
      await c.close();
    }
  });

  test(
    'a cluster: a live server keeps its claim; once it is declared dead another server takes it',
    { skip: !process.env.JOBFLEET_TEST_PG_URL },
    async () => {
      const c = await startCluster({ servers: 2, agents: 1, placement: () => 1, agentEnv: roots.agentEnv });
      try {
        const [s1, s2] = c.servers as [ServerProcess, ServerProcess];
        const s1Id = serverIdOf(s1);
        const upload = await uploadUrl(c, 0, 'after-failover.bin');
        // Past one chunk: the dead server leaves bytes behind in the database.
        const stalled = stalledPut(upload.url, crypto.randomBytes(MiB + 4096), 3 * MiB);
        await stalledUploadStarted(c, upload.path);
        const data = crypto.randomBytes(2 * MiB + 321);
        const refused = await put(upload.on(s2), data);
        assert.equal(refused.code, URL_INVALID, "a live server's upload keeps its claim");

        await s1.kill('SIGKILL');
        stalled.abandon();
        await eventually(
          async () => {
            const rows = await c.db<{ state: string }>('select state from server_node where id = $1', [s1Id]);
            return rows[0]?.state === 'dead' ? true : undefined;
          },
          30_000,
          'the killed server declared dead',
        );
        const done = await put(upload.on(s2), data);
        assert.equal(done.result, true, `the dead server's claim is taken over: ${done.message}`);
        assert.equal(done.data?.sha256, sha(data));
        const rows = await c.db<{ size: string; sha256: string; upload_token_hash: string | null }>(
          'select size, sha256, upload_token_hash from stored_file where path = $1',
          [upload.path],
        );
        assert.deepEqual(rows, [{ size: String(data.length), sha256: sha(data), upload_token_hash: null }]);
        assert.equal((await put(upload.on(s2), data)).code, URL_INVALID, 'a completed upload closes its URL');
        await reachesTarget(c, 1, upload.path, data, roots.file);
      } finally {
        await stopAll();
        await c.close();
      }
    },
  );
});
