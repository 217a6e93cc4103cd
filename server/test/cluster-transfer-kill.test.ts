/**
 * Cluster acceptance test 14 (design notes §7): a file step whose sources are an upload received
 * by S1 and a file on an agent held by S1, with targets held by S2 or S3. The server holding the
 * targets serves them the upload (from the database); it is killed (SIGKILL) while the upload is
 * half downloaded, seen in the file logs. The targets move to the servers left, resume the
 * download from one of them, and the step ends in success with byte-exact files everywhere.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { post } from './helpers/api-client.js';
import {
  agentFileRoots,
  serverErrors,
  serverIdOf,
  sessionsOf,
  startCluster,
  waitJobFinished,
} from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { hostStatuses } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;
const SOURCE = '127.0.0.2';
const TARGETS = ['127.0.0.3', '127.0.0.4'];
const IPS = [SOURCE, ...TARGETS];

describe('cluster: the server serving a file step is killed mid-transfer', { skip: !withPg }, () => {
  let c: Cluster;
  const roots = agentFileRoots(IPS);
  const file = roots.file;
  const id = (ip: string) => c.hostIds.get(ip) ?? 0;

  before(async () => {
    // The source on S1 only; the targets on S2 or S3, each with the other to move to.
    c = await startCluster({
      servers: 3,
      agents: 3,
      placement: (n) => [[0], [1, 2], [2, 1]][n] ?? 0,
      agentEnv: roots.agentEnv,
    });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
    roots.remove();
  });

  test('14: kill the server serving the targets mid-transfer; the step completes with matching checksums', async () => {
    const f = c.via(0);
    // The upload, received by S1 (the bytes go to the database in chunks).
    const upload = crypto.randomBytes(24 * MiB + 4321);
    const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
      f.server.url,
      'generate_local_file_upload_url',
      { ...f.scope, file_name_list: ['bundle.bin'] },
      f.creds,
    );
    assert.equal(urls.result, true, urls.message);
    const entry = urls.data.url_map['bundle.bin'];
    assert.ok(entry);
    const up = (await (await fetch(entry.upload_url, { method: 'PUT', body: upload })).json()) as {
      result: boolean;
      data: { sha256: string };
    };
    assert.equal(up.result, true);
    assert.equal(up.data.sha256, sha(upload));
    // The agent-held source, fetched first (from the source agent itself, no server in the way).
    const local = crypto.randomBytes(MiB + 77);
    fs.mkdirSync(path.dirname(file(SOURCE, '/data/app.bin')), { recursive: true });
    fs.writeFileSync(file(SOURCE, '/data/app.bin'), local);

    const s1 = serverIdOf(c.servers[0] ?? (undefined as never));
    const before = await sessionsOf(c);
    assert.equal(before.get(id(SOURCE))?.server_id, s1);

    // 4 MiB/s per target: the upload takes about 6 s to download, the kill lands inside it.
    const r = await post<{ job_instance_id: number; step_instance_id: number }>(
      f.server.url,
      'fast_transfer_file',
      {
        ...f.scope,
        account_alias: f.account,
        file_source_list: [
          {
            file_list: ['/data/app.bin'],
            server: { host_id_list: [id(SOURCE)] },
            account: { alias: c.account },
          },
          { file_type: 2, file_list: [entry.path] },
        ],
        file_target_path: '/inbox/',
        download_speed_limit: 4,
        target_server: { host_id_list: TARGETS.map(id) },
      },
      f.creds,
    );
    assert.equal(r.result, true, r.message);
    const stepId = r.data.step_instance_id;

    // Mid-transfer: a target's download log of the upload shows some bytes, not all.
    let victimHost = 0;
    const deadline = Date.now() + 60_000;
    while (victimHost === 0) {
      if (Date.now() > deadline) throw new Error(`no upload seen mid-transfer\n${serverErrors(c)}`);
      const rows = await c.db<{ host_id: string }>(
        `select host_id from file_log where step_instance_id = $1 and mode = 1 and src_label = 'server'
         and bytes > 0 and bytes < size`,
        [stepId],
      );
      victimHost = Number(rows[0]?.host_id ?? 0);
      if (victimHost === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const sessions = await sessionsOf(c);
    const holderId = sessions.get(victimHost)?.server_id;
    const holder = c.servers.findIndex((s) => serverIdOf(s) === holderId);
    assert.ok(holder === 1 || holder === 2, `the target downloading is held by S${holder + 1}`);
    const killed = c.servers[holder] ?? (undefined as never);
    await killed.kill('SIGKILL');

    const st = await waitJobFinished(c, r.data.job_instance_id, 90_000);
    assert.equal(
      st.job_instance.status,
      3,
      `${JSON.stringify(st.step_instance_list)}\n${serverErrors(c)}\n${c.agents.map((a) => a.output().split('\n').slice(-8).join('\n')).join('\n')}`,
    );
    assert.deepEqual([...hostStatuses(st).values()], [9, 9]);
    for (const ip of TARGETS) {
      assert.equal(sha(fs.readFileSync(file(ip, '/inbox/bundle.bin'))), sha(upload), `upload on ${ip}`);
      assert.equal(sha(fs.readFileSync(file(ip, '/inbox/app.bin'))), sha(local), `agent file on ${ip}`);
      const left = fs.readdirSync(file(ip, '/inbox')).filter((n) => n.endsWith('.jobfleet-part'));
      assert.deepEqual(left, [], `no part file left on ${ip}`);
    }
    // The targets left the killed server; each ran its task once (one row each, one execution).
    const after = await sessionsOf(c);
    for (const ip of TARGETS) assert.notEqual(after.get(id(ip))?.server_id, holderId);
    const tasks = await c.db<{ host_id: string; execute_count: number; status: number }>(
      'select host_id, execute_count, status from host_task where step_instance_id = $1 order by host_id',
      [stepId],
    );
    assert.deepEqual(
      tasks.map((t) => [Number(t.host_id), Number(t.execute_count), Number(t.status)]),
      TARGETS.map((ip) => [id(ip), 0, 9]).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
    );
    // File logs: per target, one download log per file, finished with every byte.
    const logs = await c.db<{
      host_id: string;
      src_path: string;
      status: number;
      bytes: string;
      size: string;
    }>(
      `select host_id, src_path, status, bytes, size from file_log
       where step_instance_id = $1 and mode = 1 order by host_id, src_path`,
      [stepId],
    );
    assert.equal(logs.length, 4, JSON.stringify(logs));
    for (const l of logs) {
      assert.equal(Number(l.status), 4, JSON.stringify(l));
      assert.equal(Number(l.bytes), Number(l.size), JSON.stringify(l));
    }
    assert.deepEqual(
      logs.map((l) => Number(l.size)).sort((a, b) => a - b),
      [local.length, local.length, upload.length, upload.length],
    );
  });
});
