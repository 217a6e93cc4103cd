/**
 * A job acknowledged to the caller is never lost: the server is killed with SIGKILL while
 * hosts run, restarted, and the job still reaches its true final status with complete logs.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { eventually, get } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import {
  b64,
  hostLog,
  runScript,
  startFleet,
  waitCallbackDelivered,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV } from './helpers/processes.js';
import type { AgentProcess, ServerProcess } from './helpers/processes.js';

/**
 * Holds the store's writes (reads go on) until the returned function is called: SQLite's write
 * lock from another connection, or PostgreSQL's lock on the host results table.
 */
async function holdWrites(server: ServerProcess): Promise<() => Promise<void>> {
  if (!server.databaseUrl) {
    const db = new SQLite(path.join(server.dataDir, 'jobfleet.db'));
    db.exec('BEGIN IMMEDIATE');
    return async () => {
      db.exec('ROLLBACK');
      db.close();
    };
  }
  const client = new pg.Client({ connectionString: server.databaseUrl });
  await client.connect();
  await client.query('begin');
  await client.query('lock table host_task in exclusive mode');
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

for (const engine of engines()) {
  describe(`crash recovery on ${engine}`, () => {
    after(stopFleets);

    test('SIGKILL of the server mid-job loses nothing', async () => {
      const fleet = await startFleet(engine, 3, { env: RESTART_HEARTBEAT_ENV });
      const ids = ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((ip) => fleet.hostIds.get(ip) ?? 0);
      // Host .2 finishes while the server is down; .3 is still running when it comes back; .4 fails.
      const script = [
        'echo "begin $TEST_AGENT_IP"',
        'case "$TEST_AGENT_IP" in',
        '  127.0.0.2) sleep 1 ;;',
        '  127.0.0.3) sleep 5 ;;',
        '  127.0.0.4) sleep 1; echo failing; exit 4 ;;',
        'esac',
        'echo "end $TEST_AGENT_IP"',
      ].join('\n');
      const r = await runScript(fleet, { script_content: b64(script), target_server: { host_id_list: ids } });
      assert.equal(r.result, true, r.message);
      const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
      // Every host has started (its first line is stored) before the crash.
      for (const id of ids) {
        await eventually(async () =>
          (await hostLog(fleet, jobId, stepId, id))?.startsWith('begin') ? true : undefined,
        );
      }
      await fleet.server.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 2500)); // .2 and .4 finish while no server runs
      fleet.server = await fleet.server.restart();
      for (const a of fleet.agents) await a.waitReady(2);

      const st = await waitFinished(fleet, jobId, 30_000);
      const status = new Map(st.step_instance_list[0]?.step_ip_result_list?.map((h) => [h.bk_host_id, h]));
      assert.equal(status.get(ids[0] ?? 0)?.status, 9);
      assert.equal(status.get(ids[1] ?? 0)?.status, 9);
      assert.equal(status.get(ids[2] ?? 0)?.status, 104);
      assert.equal(status.get(ids[2] ?? 0)?.exit_code, 4);
      assert.equal(st.job_instance.status, 4);
      // Logs are complete and hold each line once, although agents resent after reconnecting.
      assert.equal(await hostLog(fleet, jobId, stepId, ids[0] ?? 0), 'begin 127.0.0.2\nend 127.0.0.2\n');
      assert.equal(await hostLog(fleet, jobId, stepId, ids[1] ?? 0), 'begin 127.0.0.3\nend 127.0.0.3\n');
      assert.equal(await hostLog(fleet, jobId, stepId, ids[2] ?? 0), 'begin 127.0.0.4\nfailing\n');
    });

    test('a result resent before its commit is confirmed only by the commit: a crash then loses nothing', async () => {
      const fleet = await startFleet(engine, 1, { env: RESTART_HEARTBEAT_ENV });
      const id = fleet.hostIds.get('127.0.0.2') ?? 0;
      const r = await runScript(fleet, {
        script_content: b64('echo begin; sleep 2; echo end'),
        target_server: { host_id_list: [id] },
      });
      assert.equal(r.result, true, r.message);
      const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
      await eventually(async () =>
        (await hostLog(fleet, jobId, stepId, id))?.startsWith('begin') ? true : undefined,
      );
      // The store takes no write while the script ends: its result is counted, not committed.
      const release = await holdWrites(fleet.server);
      try {
        await new Promise((resolve) => setTimeout(resolve, 3000));
        // The agent restarts and says it holds the result: it must not be told to forget it.
        const [agent] = fleet.agents as [AgentProcess];
        await agent.kill('SIGKILL');
        fleet.agents[0] = await agent.restart();
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await fleet.server.kill('SIGKILL');
      } finally {
        await release();
      }
      fleet.server = await fleet.server.restart();
      for (const a of fleet.agents) await a.waitReady(2);
      const st = await waitFinished(fleet, jobId, 30_000);
      const host = st.step_instance_list[0]?.step_ip_result_list?.[0];
      assert.equal(host?.status, 9, JSON.stringify(st.step_instance_list[0]));
      assert.equal(host?.exit_code, 0);
      assert.equal(st.job_instance.status, 3);
      assert.equal(await hostLog(fleet, jobId, stepId, id), 'begin\nend\n');
    });

    test('a callback that fails is retried after a server restart until delivered', async () => {
      const fleet = await startFleet(engine, 1, {
        env: { ...RESTART_HEARTBEAT_ENV, JOBFLEET_CALLBACK_BACKOFF_BASE_MS: '1500' },
      });
      const hits: number[] = [];
      const receiver = http.createServer((req, res) => {
        req.resume();
        hits.push(Date.now());
        res.statusCode = hits.length <= 2 ? 503 : 200;
        res.end();
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      try {
        const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
        const r = await runScript(fleet, {
          script_content: b64('true'),
          callback_url: url,
          target_server: { host_id_list: [fleet.hostIds.get('127.0.0.2')] },
        });
        await waitFinished(fleet, r.data.job_instance_id);
        // Kill only once the first attempt is recorded: killed before that, the server rightly
        // sends it again after the restart, and the attempts would not be the three counted below.
        await eventually(async () => {
          const list = await get<{ callback_list: { attempts: number }[] }>(
            fleet.server.url,
            'get_job_instance_callback_list',
            { ...fleet.scope, job_instance_id: r.data.job_instance_id },
            fleet.creds,
          );
          return (list.data.callback_list[0]?.attempts ?? 0) >= 1 ? true : undefined;
        });
        await fleet.server.kill('SIGKILL'); // the second attempt is due while no server runs
        fleet.server = await fleet.server.restart();
        const cb = await waitCallbackDelivered(fleet, r.data.job_instance_id, 20_000);
        assert.equal(cb.attempts, 3);
        assert.deepEqual(
          cb.attempt_list.map((a) => a.http_status),
          [503, 503, 200],
        );
        assert.equal(hits.length, 3);
      } finally {
        receiver.close();
      }
    });
  });
}
