/**
 * Cluster mode: three servers on one PostgreSQL, agents held by different servers. Runs only
 * where PostgreSQL is given (JOBFLEET_TEST_PG_URL); the acceptance numbers refer to the cluster
 * design notes (§7).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, get } from './helpers/api-client.js';
import { checkInvariants, clusterScript, sessionsOf, startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import type { JobStatus } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

describe('cluster: three servers, agents spread over them', { skip: !withPg }, () => {
  let c: Cluster;
  before(async () => {
    // 127.0.0.2 on S2, 127.0.0.3 on S3, 127.0.0.4 on S2.
    c = await startCluster({ servers: 3, agents: 3, placement: (n) => (n === 1 ? 2 : 1) });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });

  test('1: every server is healthy and answers with the same data', async () => {
    for (const s of c.servers) {
      const res = await fetch(`${s.url}/healthz`);
      assert.equal(res.status, 200);
    }
    const view = await admin<{ cluster: boolean; servers: { state: string; agents_held: number }[] }>(
      c.servers[0]?.url ?? '',
      c.servers[0]?.adminToken ?? '',
      'GET',
      '/cluster',
    );
    assert.equal(view.data.cluster, true);
    assert.deepEqual(
      view.data.servers.map((s) => s.state),
      ['alive', 'alive', 'alive'],
    );
    assert.deepEqual(view.data.servers.map((s) => s.agents_held).sort(), [0, 1, 2]);
    const job = await clusterScript(c, 0, ['127.0.0.2'], { sleep: 0 });
    await checkInvariants(c, [job]);
    const answers = await Promise.all(
      c.servers.map(async (_s, i) => {
        const f = c.via(i);
        const r = await get<JobStatus>(
          f.server.url,
          'get_job_instance_status',
          { ...f.scope, job_instance_id: job.jobId, return_ip_result: true },
          f.creds,
        );
        return r.data;
      }),
    );
    for (const a of answers.slice(1)) assert.deepEqual(a, answers[0]);
  });

  test('3: a job accepted by S1 runs on hosts held by S2 and S3; logs byte-exact', async () => {
    const sessions = await sessionsOf(c);
    assert.equal(sessions.size, 3);
    const job = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3', '127.0.0.4'], { lines: 200 });
    const failing = await clusterScript(c, 0, ['127.0.0.2', '127.0.0.3'], { failOn: '127.0.0.3' });
    await checkInvariants(c, [job, failing]);
  });
});
