/**
 * A file step's source agent restarts while targets still wait for its file, and comes back at
 * a server other than the one running the step: that server learns of the new session from the
 * database, asks the source again, and sends the waiting targets to its new address.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, post } from './helpers/api-client.js';
import { agentFileRoots, startCluster, waitJobFinished } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { hostStatuses, jobStatus } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const SOURCE = '127.0.0.2';
const TARGETS = ['127.0.0.3', '127.0.0.4'];
const IPS = [SOURCE, ...TARGETS];

describe('cluster: a file source restarted mid-step at another server', { skip: !withPg }, () => {
  let c: Cluster;
  const roots = agentFileRoots(IPS);
  const id = (ip: string) => c.hostIds.get(ip) ?? 0;

  before(async () => {
    // The source on S2; the step runs on S1, where it is submitted.
    c = await startCluster({
      servers: 2,
      agents: 3,
      placement: (n) => (n === 0 ? 1 : 0),
      agentEnv: roots.agentEnv,
      env: { JOBFLEET_FILE_FANOUT: '1' },
    });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
    roots.remove();
  });

  test('the targets that waited get the file from the source in its new session', async () => {
    const data = crypto.randomBytes(9 * 1024 * 1024);
    fs.mkdirSync(path.dirname(roots.file(SOURCE, '/data/big.bin')), { recursive: true });
    fs.writeFileSync(roots.file(SOURCE, '/data/big.bin'), data);
    const f = c.via(0);
    const targets = TARGETS.map(id);
    const r = await post<{ job_instance_id: number; step_instance_id: number }>(
      f.server.url,
      'fast_transfer_file',
      {
        ...f.scope,
        account_alias: f.account,
        file_source_list: [
          {
            file_list: ['/data/big.bin'],
            server: { host_id_list: [id(SOURCE)] },
            account: { alias: c.account },
          },
        ],
        file_target_path: '/inbox/',
        download_speed_limit: 4,
        target_server: { host_id_list: targets },
      },
      f.creds,
    );
    assert.equal(r.result, true, r.message);
    // One download at a time from the source: one target runs, the other waits.
    const running = await eventually(async () => {
      const statuses = hostStatuses(await jobStatus(f, r.data.job_instance_id));
      const started = targets.filter((t) => statuses.get(t) === 7);
      return started.length === 1 ? started[0] : undefined;
    });
    const source = c.agents[0];
    assert.ok(source);
    await source.kill('SIGKILL');
    c.agents[0] = await source.restart();
    const st = await waitJobFinished(c, r.data.job_instance_id, 60_000);
    const statuses = hostStatuses(st);
    for (const t of targets.filter((t) => t !== running))
      assert.equal(statuses.get(t), 9, JSON.stringify(st));
    for (const ip of TARGETS)
      if (statuses.get(id(ip)) === 9)
        assert.equal(sha(fs.readFileSync(roots.file(ip, '/inbox/big.bin'))), sha(data));
  });
});
