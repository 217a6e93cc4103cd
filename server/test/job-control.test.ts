/**
 * Job control through real agents and scripts: terminate, start, retry, ignore error, rolling
 * batches in each mode, the failure budget, idempotent submission, and refused operations.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { admin, eventually, get, post } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import {
  b64,
  hostLog,
  hostStatuses,
  runScript,
  startFleet,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { tempDir } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const engine of engines()) {
  describe(`job control on ${engine}`, () => {
    let fleet: Fleet;
    let ids: number[];
    let dir: string;

    before(async () => {
      fleet = await startFleet(engine, IPS.length);
      ids = IPS.map((ip) => fleet.hostIds.get(ip) ?? 0);
      dir = tempDir('job-control');
    });
    after(stopFleets);

    const status = (jobId: number) =>
      get<JobStatus>(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: jobId, return_ip_result: true },
        fleet.creds,
      ).then((r) => r.data);
    const operateJob = (jobId: number, code: number) =>
      post(
        fleet.server.url,
        'operate_job_instance',
        { ...fleet.scope, job_instance_id: jobId, operation_code: code },
        fleet.creds,
      );
    const operateStep = (jobId: number, stepId: number, code: number) =>
      post(
        fleet.server.url,
        'operate_step_instance',
        { ...fleet.scope, job_instance_id: jobId, step_instance_id: stepId, operation_code: code },
        fleet.creds,
      );

    test('terminate kills every running host, process group and all, and the job goes 10 -> 11', async () => {
      const script = `sleep 120 & echo $! > ${dir}/child-$TEST_AGENT_IP; echo running; wait`;
      const r = await runScript(fleet, {
        script_content: b64(script),
        target_server: { host_id_list: ids.slice(0, 3) },
      });
      const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
      for (const id of ids.slice(0, 3))
        await eventually(async () =>
          (await hostLog(fleet, jobId, stepId, id)) === 'running\n' ? true : undefined,
        );
      const pids = IPS.slice(0, 3).map((ip) => Number(fs.readFileSync(`${dir}/child-${ip}`, 'utf8')));
      assert.ok(pids.every(alive));
      const t = await operateJob(jobId, 1);
      assert.equal(t.result, true, t.message);
      assert.deepEqual(t.data, { job_instance_id: jobId });
      const st = await waitFinished(fleet, jobId);
      assert.equal(st.job_instance.status, 11);
      assert.equal(st.step_instance_list[0]?.status, 11);
      assert.deepEqual([...hostStatuses(st).values()], [403, 403, 403]);
      await eventually(
        async () => (pids.every((p) => !alive(p)) ? true : undefined),
        5000,
        'children killed',
      );
      // Refusals change nothing.
      assert.equal((await operateJob(jobId, 1)).code, 1241003);
      assert.equal((await operateJob(jobId, 2)).code, 1241015);
      assert.equal((await operateJob(jobId, 3)).code, 1241002);
      assert.equal((await operateJob(987654, 1)).code, 1244006);
      assert.equal((await status(jobId)).job_instance.status, 11);
      // The terminated step can be passed over: next step (11) ends the job successfully.
      assert.equal((await operateStep(jobId, stepId, 11)).result, true);
      const after11 = await waitFinished(fleet, jobId);
      assert.equal(after11.step_instance_list[0]?.status, 5);
      assert.equal(after11.job_instance.status, 3);
    });

    test('a file step of more than 100,000 tasks is refused (1244021), however it is submitted', async () => {
      // 25,001 files to 4 hosts: 100,004 tasks.
      const n = 25_001;
      const transfer = await post(
        fleet.server.url,
        'fast_transfer_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/tmp/jf-limit',
          file_source_list: [
            {
              file_list: Array.from({ length: n }, (_, i) => `/tmp/f${i}`),
              account: { alias: fleet.account },
              server: { host_id_list: [ids[0]] },
            },
          ],
          target_server: { host_id_list: ids },
        },
        fleet.creds,
      );
      assert.equal(transfer.code, 1244021, transfer.message);
      const push = await post(
        fleet.server.url,
        'push_config_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/tmp/jf-limit',
          file_list: Array.from({ length: n }, (_, i) => ({ file_name: `c${i}.conf`, content: b64('x') })),
          target_server: { host_id_list: ids },
        },
        fleet.creds,
      );
      assert.equal(push.code, 1244021, push.message);
    });

    test('uploaded files past what one statement binds are looked up in parts', async () => {
      // SQLite binds at most 32,766 values a statement: 33,000 paths were one statement.
      const transfer = (n: number) =>
        post(
          fleet.server.url,
          'fast_transfer_file',
          {
            ...fleet.scope,
            account_alias: fleet.account,
            file_target_path: '/tmp/jf-uploads',
            file_source_list: [
              { file_type: 2, file_list: Array.from({ length: n }, (_, i) => `/nowhere/u${i}`) },
            ],
            target_server: { host_id_list: [ids[0]] },
          },
          fleet.creds,
        );
      const one = await transfer(1);
      const many = await transfer(33_000);
      assert.equal(one.result, false);
      assert.equal(many.code, one.code, many.message);
      assert.match(many.message, /no uploaded file at "\/nowhere\/u0"/);
    });

    test('a job created with start_task=false starts exactly once', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo ok'),
        start_task: false,
        target_server: { host_id_list: [ids[0]] },
      });
      const pending = await status(r.data.job_instance_id);
      assert.equal(pending.job_instance.status, 1);
      assert.equal(pending.finished, false);
      assert.equal((await operateJob(r.data.job_instance_id, 2)).result, true);
      assert.equal((await operateJob(r.data.job_instance_id, 2)).code, 1241015);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
    });

    test('retry failed hosts after fixing the cause; succeeded hosts keep "last success"; every attempt stays readable', async () => {
      for (const ip of IPS.slice(0, 2)) fs.writeFileSync(`${dir}/ok-${ip}`, '');
      const script = `if [ -f ${dir}/ok-$TEST_AGENT_IP ]; then echo "fine $TEST_AGENT_IP"; else echo missing; exit 1; fi`;
      const r = await runScript(fleet, {
        script_content: b64(script),
        target_server: { host_id_list: ids.slice(0, 3) },
      });
      const { job_instance_id: jobId, step_instance_id: stepId } = r.data;
      const first = await waitFinished(fleet, jobId);
      assert.equal(first.job_instance.status, 4);
      assert.equal(hostStatuses(first).get(ids[2] ?? 0), 104);
      // Refused while failed: next step, force skip, rolling continue, confirmations, unknown codes and steps.
      assert.equal((await operateStep(jobId, stepId, 11)).code, 1241003);
      assert.equal((await operateStep(jobId, stepId, 12)).code, 1241003);
      assert.equal((await operateStep(jobId, stepId, 13)).code, 1241003);
      assert.equal((await operateStep(jobId, stepId, 6)).code, 1241003);
      assert.equal((await operateStep(jobId, stepId, 99)).code, 1241002);
      assert.equal((await operateStep(jobId, 987654, 2)).code, 1244007);
      // The code is checked before the step is looked up, as BK-JOB does.
      assert.equal((await operateStep(jobId, 987654, 99)).code, 1241002);

      fs.writeFileSync(`${dir}/ok-${IPS[2]}`, '');
      const retry = await operateStep(jobId, stepId, 2);
      assert.equal(retry.result, true, retry.message);
      const second = await waitFinished(fleet, jobId);
      assert.equal(second.job_instance.status, 3);
      assert.equal(second.step_instance_list[0]?.execute_count, 1);
      // The step keeps its first start (BK-JOB's resetStepExecuteInfoForRetry clears only the end).
      assert.equal(second.step_instance_list[0]?.start_time, first.step_instance_list[0]?.start_time);
      assert.deepEqual(
        ids.slice(0, 3).map((id) => hostStatuses(second).get(id)),
        [3, 3, 9],
      );
      assert.equal(await hostLog(fleet, jobId, stepId, ids[2] ?? 0), `fine ${IPS[2]}\n`);
      assert.equal(
        await hostLog(fleet, jobId, stepId, ids[0] ?? 0),
        `fine ${IPS[0]}\n`,
        'last-success host shows the run that ran it',
      );
      const attempt0 = await get<{ log_content: string }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: jobId,
          step_instance_id: stepId,
          bk_host_id: ids[2] ?? 0,
          execute_count: 0,
        },
        fleet.creds,
      );
      assert.equal(attempt0.data.log_content, 'missing\n');
      // The keyword filter reads each host's output where it ran: the kept hosts' included.
      const withKeyword = async (keyword: string, executeCount?: number) => {
        const r = await get<{ step_result_group_list?: { host_result_list: { bk_host_id: number }[] }[] }>(
          fleet.server.url,
          'get_step_instance_status',
          {
            ...fleet.scope,
            job_instance_id: jobId,
            step_instance_id: stepId,
            keyword,
            ...(executeCount === undefined ? {} : { execute_count: executeCount }),
          },
          fleet.creds,
        );
        assert.equal(r.result, true, r.message);
        return (r.data.step_result_group_list ?? [])
          .flatMap((g) => g.host_result_list.map((h) => h.bk_host_id))
          .sort((a, b) => a - b);
      };
      const byId = (a: number, b: number) => a - b;
      assert.deepEqual(await withKeyword('fine'), ids.slice(0, 3).sort(byId));
      // Each host in its own attempt, in one query: a kept host in the first, the retried one in
      // the second, whose first output no longer counts.
      assert.deepEqual(await withKeyword(`fine ${IPS[0]}`), [ids[0]]);
      assert.deepEqual(await withKeyword(`fine ${IPS[2]}`), [ids[2]]);
      assert.deepEqual(await withKeyword('missing'), []);
      assert.deepEqual(await withKeyword('missing', 0), [ids[2]]);
      assert.deepEqual(await withKeyword(`fine ${IPS[2]}`, 0), []);
      // A successful step cannot be retried; ...
      assert.equal((await operateStep(jobId, stepId, 2)).code, 1241003);
      const st = await status(jobId);
      assert.equal(st.step_instance_list[0]?.execute_count, 1);
    });

    test('retry all runs every host again', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo once; exit 3'),
        target_server: { host_id_list: ids.slice(0, 2) },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 8)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.step_instance_list[0]?.execute_count, 1);
      assert.deepEqual([...hostStatuses(st).values()], [104, 104]);
    });

    test('ignore error lets a failed job finish successfully', async () => {
      const r = await runScript(fleet, {
        script_content: b64('exit 5'),
        target_server: { host_id_list: [ids[0]] },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 3)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.step_instance_list[0]?.status, 6);
      assert.equal(st.job_instance.status, 3);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 3)).code, 1241003);
    });

    const failOn3 = b64('echo "batch host $TEST_AGENT_IP"; [ "$TEST_AGENT_IP" != 127.0.0.3 ]');

    test('rolling mode 1 pauses at the first failed batch', async () => {
      const r = await runScript(fleet, {
        script_content: failOn3,
        target_server: { host_id_list: ids },
        rolling_config: { mode: 1, expression: '1' },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 4);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 104, 5, 5],
      );
      const groups = await get<{ step_result_group_list: { result_type: number; host_size: number }[] }>(
        fleet.server.url,
        'get_step_instance_status',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          batch: 0,
        },
        fleet.creds,
      );
      assert.deepEqual(
        groups.data.step_result_group_list.map((g) => [g.result_type, g.host_size]).sort(),
        [
          [104, 1],
          [5, 2],
          [9, 1],
        ].sort(),
      );
    });

    test('ignoring a failed rolling batch runs the batches after it (BK-JOB refreshJob)', async () => {
      const r = await runScript(fleet, {
        script_content: failOn3,
        target_server: { host_id_list: ids },
        rolling_config: { mode: 1, expression: '1' },
      });
      const failed = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(failed.job_instance.status, 4);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 3)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 104, 9, 9],
      );
      // The failure stays ignored at the step's end: 6, and the job succeeds.
      assert.equal(st.step_instance_list[0]?.status, 6);
      assert.equal(st.job_instance.status, 3);
    });

    test('in mode 3 an ignored failed batch waits for a person before the next batch', async () => {
      const r = await runScript(fleet, {
        script_content: failOn3,
        target_server: { host_id_list: ids },
        rolling_config: { mode: 3, expression: '2' },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 3)).result, true);
      const waiting = await status(r.data.job_instance_id);
      assert.equal(waiting.job_instance.status, 7);
      assert.equal(waiting.step_instance_list[0]?.status, 7);
      assert.deepEqual(
        ids.map((id) => hostStatuses(waiting).get(id)),
        [9, 104, 5, 5],
      );
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 13)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 104, 9, 9],
      );
      assert.equal(st.step_instance_list[0]?.status, 6);
      assert.equal(st.job_instance.status, 3);
    });

    test('rolling mode 2 goes on past failures: the step ends 6 and the job succeeds', async () => {
      const r = await runScript(fleet, {
        script_content: failOn3,
        target_server: { host_id_list: ids },
        rolling_config: { mode: 2, expression: '1 +1' },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 104, 9, 9],
      );
      // BK-JOB's onFail: mode 2 (IGNORE_ERROR) sets the step to 6 and the job goes on.
      assert.equal(st.step_instance_list[0]?.status, 6);
      assert.equal(st.job_instance.status, 3);
    });

    test('retrying all hosts of a rolling step runs its failed batch again, not the batches before', async () => {
      const flag = `${dir}/rolling-fixed`;
      const r = await runScript(fleet, {
        script_content: b64(`[ "$TEST_AGENT_IP" != 127.0.0.3 ] || [ -f ${flag} ]`),
        target_server: { host_id_list: ids },
        rolling_config: { mode: 1, expression: '1' },
      });
      const failed = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        ids.map((id) => hostStatuses(failed).get(id)),
        [9, 104, 5, 5],
      );
      fs.writeFileSync(flag, '');
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 8)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      // The first batch's host keeps its success (3, "last success") instead of running again.
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [3, 9, 9, 9],
      );
    });

    test('rolling mode 3 fails the step at a failed batch instead of waiting', async () => {
      const r = await runScript(fleet, {
        script_content: failOn3,
        target_server: { host_id_list: ids },
        rolling_config: { mode: 3, expression: '2' },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.step_instance_list[0]?.status, 4);
      assert.equal(st.job_instance.status, 4);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 104, 5, 5],
      );
    });

    test('rolling mode 3 waits for a person between batches', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo hi'),
        target_server: { host_id_list: ids },
        rolling_config: { mode: 3, expression: '50%' },
      });
      const waiting = await eventually(async () => {
        const s = await status(r.data.job_instance_id);
        return s.job_instance.status === 7 ? s : undefined;
      });
      assert.equal(waiting.finished, false);
      assert.equal(waiting.step_instance_list[0]?.status, 7);
      assert.deepEqual(
        ids.map((id) => hostStatuses(waiting).get(id)),
        [9, 9, 5, 5],
      );
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 13)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 9, 9, 9],
      );
    });

    test('terminating a job that waits between rolling batches stops it at once; next step runs the rest', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo hi'),
        target_server: { host_id_list: ids },
        rolling_config: { mode: 3, expression: '2' },
      });
      const waitsAgain = () =>
        eventually(async () => {
          const s = await status(r.data.job_instance_id);
          return s.job_instance.status === 7 ? s : undefined;
        });
      await waitsAgain();
      assert.equal((await operateJob(r.data.job_instance_id, 1)).result, true);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 11);
      assert.equal(st.step_instance_list[0]?.status, 11);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [9, 9, 5, 5],
      );
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 13)).code, 1241003);
      // Next step (11) goes on with the step's next batch, after a person's word in mode 3.
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 11)).result, true);
      assert.equal((await waitsAgain()).step_instance_list[0]?.status, 7);
      assert.equal((await operateStep(r.data.job_instance_id, r.data.step_instance_id, 13)).result, true);
      const done = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(done.job_instance.status, 3);
      assert.deepEqual(
        ids.map((id) => hostStatuses(done).get(id)),
        [9, 9, 9, 9],
      );
    });

    test('the failure budget stops the step as soon as it is spent, killing hosts still running', async () => {
      const script = b64('case "$TEST_AGENT_IP" in 127.0.0.2|127.0.0.3) exit 1 ;; *) sleep 60 ;; esac');
      const r = await runScript(fleet, {
        script_content: script,
        target_server: { host_id_list: ids },
        rolling_config: { expression: '100%', max_failed_hosts: 1 },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id, 15_000);
      assert.equal(st.job_instance.status, 4);
      assert.deepEqual(
        ids.map((id) => hostStatuses(st).get(id)),
        [104, 104, 403, 403],
      );
    });

    test('bad rolling configurations are refused and start nothing', async () => {
      for (const [cfg, code] of [
        [{ expression: 'abc' }, 1244026],
        [{ expression: '+0' }, 1244026],
        [{ expression: '1 *0' }, 1244026],
        [{ expression: '101%' }, 1244026],
        [{ expression: '1', mode: 4 }, 1240003],
        [{ expression: '1', execution_mode: 2 }, 1240003],
        [{ expression: '1', max_failed_hosts: '120%' }, 1240003],
      ] as const) {
        const r = await runScript(fleet, {
          script_content: b64('true'),
          target_server: { host_id_list: ids },
          rolling_config: cfg,
        });
        assert.equal(r.code, code, `${JSON.stringify(cfg)}: ${r.message}`);
      }
    });

    test('a repeated client_request_id returns the first job', async () => {
      const body = {
        script_content: b64('echo idem'),
        target_server: { host_id_list: [ids[0]] },
        client_request_id: `req-${engine}-1`,
      };
      const a = await runScript(fleet, body);
      const b = await runScript(fleet, body);
      const c = await runScript(fleet, { ...body, client_request_id: `req-${engine}-2` });
      assert.equal(a.data.job_instance_id, b.data.job_instance_id);
      assert.equal(a.data.step_instance_id, b.data.step_instance_id);
      assert.notEqual(a.data.job_instance_id, c.data.job_instance_id);
      // Retries sent while the first is still being handled: one job for all of them.
      const burst = await Promise.all(
        Array.from({ length: 8 }, () => runScript(fleet, { ...body, client_request_id: `req-${engine}-3` })),
      );
      assert.deepEqual(new Set(burst.map((r) => r.data.job_instance_id)).size, 1);
      // The same id for another scope is no retry of that job: it is not answered with it.
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', { id: 77, name: 'elsewhere' });
      const elsewhere = await runScript(fleet, { ...body, bk_scope_id: '77' });
      assert.notEqual(elsewhere.data?.job_instance_id, a.data.job_instance_id, elsewhere.message);
      assert.equal(elsewhere.result, false, 'its host is not in that business');
    });
  });
}
