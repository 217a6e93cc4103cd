/**
 * get_job_instance_status with per-host results on jobs that are still running: the host list
 * is kept serialized between polls and brought up to date by version, so every poll shows
 * each host as the store has it — also when another server of a cluster recorded the change.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { admin, get } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { b64, hostIdsByIp, hostStatuses, runScript, startFleet, waitFinished, BIZ } from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { startAgent, startServer, stopAll, tempDir } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const RUNNING = 7;
const SUCCESS = 9;
const FAILED = 104;

/** Hosts whose TEST_AGENT_IP has a file `<dir>/<ip>.wait` wait until it is gone, then exit with its content. */
const script = (dir: string) =>
  b64(`f="${dir}/$TEST_AGENT_IP.wait"
while [ -e "$f" ] && [ "$(cat "$f")" = wait ]; do sleep 0.05; done
[ -e "$f" ] && exit "$(cat "$f")"
exit 0`);

async function poll(url: string, fleet: Pick<Fleet, 'scope' | 'creds'>, jobId: number): Promise<JobStatus> {
  const r = await get<JobStatus>(
    url,
    'get_job_instance_status',
    { ...fleet.scope, job_instance_id: jobId, return_ip_result: true },
    fleet.creds,
  );
  assert.ok(r.result, r.message);
  return r.data;
}

/** Polls until `check` holds for the statuses by host id; returns the reply that showed it. */
async function until(
  url: string,
  fleet: Pick<Fleet, 'scope' | 'creds'>,
  jobId: number,
  check: (s: Map<number, number>) => boolean,
): Promise<JobStatus> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const st = await poll(url, fleet, jobId);
    if (check(hostStatuses(st))) return st;
    if (Date.now() > deadline) {
      // Which ip each host id is, and the reply's whole host list, for a failure seen once.
      const hosts = st.step_instance_list[0]?.step_ip_result_list;
      throw new Error(
        `statuses stuck at ${JSON.stringify([...hostStatuses(st)])}; hosts ${JSON.stringify(hosts)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 30));
  }
}

for (const engine of engines()) {
  describe(`status of running jobs on ${engine}`, () => {
    let fleet: Fleet;
    let ids: number[];
    let dir: string;

    before(async () => {
      fleet = await startFleet(engine, IPS.length);
      ids = IPS.map((ip) => fleet.hostIds.get(ip) ?? 0);
      dir = tempDir('running-status');
    });
    after(stopAll);

    test('every poll shows each host as it is now, however often the unchanged list is served', async () => {
      const [a, b, c] = ids as [number, number, number];
      fs.writeFileSync(path.join(dir, '127.0.0.3.wait'), 'wait');
      fs.writeFileSync(path.join(dir, '127.0.0.4.wait'), 'wait');
      const job = await runScript(fleet, {
        script_content: script(dir),
        target_server: { host_id_list: ids },
      });
      assert.ok(job.result, job.message);
      const jobId = job.data.job_instance_id;
      await until(
        fleet.server.url,
        fleet,
        jobId,
        (s) => s.get(a) === SUCCESS && s.get(b) === RUNNING && s.get(c) === RUNNING,
      );
      const first = await poll(fleet.server.url, fleet, jobId);
      for (let i = 0; i < 5; i++) assert.deepEqual(await poll(fleet.server.url, fleet, jobId), first);
      assert.deepEqual(
        [...hostStatuses(first)],
        [
          [a, SUCCESS],
          [b, RUNNING],
          [c, RUNNING],
        ].sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0)),
      );

      fs.writeFileSync(path.join(dir, '127.0.0.3.wait'), '3');
      const second = await until(fleet.server.url, fleet, jobId, (s) => s.get(b) === FAILED);
      const hostB = second.step_instance_list[0]?.step_ip_result_list?.find((h) => h.bk_host_id === b);
      assert.equal(hostB?.exit_code, 3);
      assert.equal(hostStatuses(second).get(c), RUNNING);

      fs.rmSync(path.join(dir, '127.0.0.4.wait'));
      const done = await waitFinished(fleet, jobId);
      assert.deepEqual(
        [...hostStatuses(done)].sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0)),
        [
          [a, SUCCESS],
          [b, FAILED],
          [c, SUCCESS],
        ].sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0)),
      );
    });
  });
}

if (engines().includes('postgres')) {
  describe('status of running jobs across two servers on one PostgreSQL database', () => {
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('a server serving the list sees results another server recorded', async () => {
      const databaseUrl = await freshDatabase('postgres');
      assert.ok(databaseUrl);
      // Servers of a cluster share their key: secrets sealed by one are opened by the other.
      const env = { JOBFLEET_SERVER_KEY: crypto.randomBytes(32).toString('hex') };
      const one = await startServer({ databaseUrl, env });
      const two = await startServer({ databaseUrl, env });
      await admin(one.url, one.adminToken, 'POST', '/biz', { id: BIZ, name: 'cluster' });
      const account = os.userInfo().username;
      await admin(one.url, one.adminToken, 'POST', '/accounts', {
        bk_biz_id: BIZ,
        alias: account,
        os_user: account,
      });
      // Both agents report to server two; the status is read from server one.
      await Promise.all(
        ['127.0.0.2', '127.0.0.3'].map((ip) =>
          startAgent({ server: two, ip, biz: BIZ, env: { TEST_AGENT_IP: ip } }),
        ),
      );
      const idOf = await hostIdsByIp(one.url, one.adminToken);
      const a = idOf.get('127.0.0.2') ?? 0;
      const b = idOf.get('127.0.0.3') ?? 0;
      const dir = tempDir('cluster-status');
      fs.writeFileSync(path.join(dir, '127.0.0.3.wait'), 'wait');
      const ctx = {
        scope: { bk_scope_type: 'biz' as const, bk_scope_id: String(BIZ) },
        creds: { appCode: one.appCode, appSecret: one.appSecret, username: 'tester' },
      };
      const fleetOnTwo = { server: two, scope: ctx.scope, creds: ctx.creds, account } as Fleet;
      const job = await runScript(fleetOnTwo, {
        script_content: script(dir),
        target_server: { host_id_list: [a, b] },
      });
      assert.ok(job.result, job.message);
      const jobId = job.data.job_instance_id;
      await until(one.url, ctx, jobId, (s) => s.get(a) === SUCCESS && s.get(b) === RUNNING);
      await poll(one.url, ctx, jobId); // served from what server one holds
      fs.rmSync(path.join(dir, '127.0.0.3.wait'));
      const st = await until(one.url, ctx, jobId, (s) => s.get(b) === SUCCESS);
      assert.equal(hostStatuses(st).get(a), SUCCESS);
    });
  });
}
