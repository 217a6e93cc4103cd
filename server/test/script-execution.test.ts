/**
 * fast_execute_script and the status and log APIs, end to end: a real server, real agents on
 * 127.0.0.2-4, real scripts. Every field of every reply is checked against the spec.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { admin, eventually, get, post } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import {
  BIZ,
  b64,
  hostLog,
  runScript,
  startFleet,
  waitCallbackDelivered,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';

const HOST_RESULT_KEYS = [
  'bk_cloud_id',
  'bk_host_id',
  'end_time',
  'error_code',
  'exit_code',
  'ip',
  'start_time',
  'status',
  'tag',
  'total_time',
];
const STEP_KEYS = [
  'create_time',
  'end_time',
  'execute_count',
  'name',
  'start_time',
  'status',
  'step_instance_id',
  'step_ip_result_list',
  'total_time',
  'type',
];

for (const engine of engines()) {
  describe(`script execution on ${engine}`, () => {
    let fleet: Fleet;
    let ids: number[];
    const callbacks: { body: string; contentType: string }[] = [];
    let receiver: http.Server;
    let receiverUrl = '';

    before(async () => {
      fleet = await startFleet(engine, 3, {
        env: { JOBFLEET_CALLBACK_BACKOFF_BASE_MS: '50', JOBFLEET_LOG_CAP_BYTES: '4096' },
      });
      ids = ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((ip) => fleet.hostIds.get(ip) ?? 0);
      // A callback receiver that fails twice, then accepts.
      receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          callbacks.push({ body, contentType: req.headers['content-type'] ?? '' });
          res.statusCode = callbacks.length <= 2 ? 500 : 200;
          res.end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    });

    after(async () => {
      await stopFleets();
      receiver.close();
    });

    test('runs on every target and reports each field as specified', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo "out $1 $2"; printf \'%s\\n\' "$3" | tr \'\\r\' R; echo "err" >&2; exit 0'),
        // Each \n is a space, a \r before it is kept (BK-JOB replaces \n alone).
        script_param: b64("'a b' c\nd\r\ne"),
        target_server: { host_id_list: ids },
        task_name: 'field check',
      });
      assert.equal(r.result, true, r.message);
      assert.equal(r.code, 0);
      assert.deepEqual(Object.keys(r.data).sort(), [
        'job_instance_id',
        'job_instance_name',
        'step_instance_id',
      ]);
      assert.equal(r.data.job_instance_name, 'field check');
      const st = await waitFinished(fleet, r.data.job_instance_id);
      const job = st.job_instance;
      assert.equal(job.status, 3);
      assert.equal(job.job_instance_id, r.data.job_instance_id);
      assert.equal(job.bk_scope_type, 'biz');
      assert.equal(job.bk_scope_id, String(BIZ));
      assert.equal(job.name, 'field check');
      for (const k of ['create_time', 'start_time', 'end_time', 'total_time'])
        assert.equal(typeof job[k], 'number', k);
      assert.equal(job.total_time, (job.end_time as number) - (job.start_time as number));
      assert.equal(st.step_instance_list.length, 1);
      const step = st.step_instance_list[0];
      assert.ok(step);
      assert.deepEqual(Object.keys(step).sort(), STEP_KEYS);
      assert.equal(step.step_instance_id, r.data.step_instance_id);
      assert.equal(step.type, 1);
      assert.equal(step.status, 3);
      assert.equal(step.execute_count, 0);
      const hosts = step.step_ip_result_list ?? [];
      assert.deepEqual(hosts.map((h) => h.bk_host_id).sort(), [...ids].sort());
      for (const h of hosts) {
        assert.deepEqual(Object.keys(h).sort(), HOST_RESULT_KEYS);
        assert.equal(h.status, 9);
        assert.equal(h.exit_code, 0);
        assert.equal(h.error_code, 0);
        assert.equal(h.bk_cloud_id, 0);
        assert.equal(h.total_time, (h.end_time as number) - (h.start_time as number));
        const log = await hostLog(fleet, job.job_instance_id, step.step_instance_id, h.bk_host_id);
        assert.match(log ?? '', /out a b c\n/);
        assert.match(log ?? '', /^dR$/m);
        assert.match(log ?? '', /err\n/);
      }
      // A finished job's reply is served from a cache afterwards: the same data, its own request id.
      const first = await get<JobStatus>(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: job.job_instance_id, return_ip_result: true },
        fleet.creds,
      );
      const second = await get<JobStatus>(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: job.job_instance_id, return_ip_result: true },
        fleet.creds,
      );
      assert.deepEqual(second.data, st);
      assert.deepEqual(first.data, second.data);
      assert.notEqual(first.request_id, second.request_id);
      assert.equal(second.request_id, second.job_request_id);
      assert.equal(second.message, 'success');
      // Without return_ip_result the host list is null.
      const plain = await get<{ step_instance_list: { step_ip_result_list: unknown }[] }>(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: job.job_instance_id },
        fleet.creds,
      );
      assert.equal(plain.data.step_instance_list[0]?.step_ip_result_list, null);
      // POST body form answers the same.
      const viaPost = await post<{ finished: boolean }>(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: job.job_instance_id },
        fleet.creds,
        { form: 'esb', inBody: true },
      );
      assert.equal(viaPost.data.finished, true);

      // Logs by cloud + ip, and in batch by host ids and by ips.
      const byIp = await get<{ bk_host_id: number; log_content: string }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: job.job_instance_id,
          step_instance_id: step.step_instance_id,
          bk_cloud_id: 0,
          ip: '127.0.0.3',
        },
        fleet.creds,
      );
      assert.equal(byIp.data.bk_host_id, fleet.hostIds.get('127.0.0.3'));
      assert.match(byIp.data.log_content, /out a b c/);
      const batch = await post<{
        log_type: number;
        script_task_logs: { bk_host_id: number; host_id: number; ip: string; log_content: string }[];
      }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: job.job_instance_id,
          step_instance_id: step.step_instance_id,
          host_id_list: ids,
        },
        fleet.creds,
      );
      assert.equal(batch.data.log_type, 1);
      assert.equal(batch.data.script_task_logs.length, 3);
      assert.deepEqual(
        batch.data.script_task_logs.map((l) => l.host_id),
        ids,
        'in the order asked',
      );
      for (const l of batch.data.script_task_logs) {
        assert.equal(l.host_id, l.bk_host_id);
        const one = await hostLog(fleet, job.job_instance_id, step.step_instance_id, l.host_id);
        assert.equal(l.log_content, one, 'a batch holds the logs one by one reads');
      }
      const batchIp = await post<{ script_task_logs: unknown[] }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: job.job_instance_id,
          step_instance_id: step.step_instance_id,
          ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.2' }],
        },
        fleet.creds,
      );
      assert.equal(batchIp.data.script_task_logs.length, 1);
    });

    test('non-zero exit fails the host (104) and the step and job (4)', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo bad; exit 7'),
        target_server: { host_id_list: [ids[0]] },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 4);
      const h = st.step_instance_list[0]?.step_ip_result_list?.[0];
      assert.equal(h?.status, 104);
      assert.equal(h?.exit_code, 7);
      assert.equal(st.step_instance_list[0]?.status, 4);
    });

    test('one failing host fails the step while the others succeed', async () => {
      const r = await runScript(fleet, {
        script_content: b64('[ "$(hostname)" = x ] ; if [ -f /nonexistent ]; then exit 0; fi; exit 0'),
        target_server: { host_id_list: ids },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
    });

    test('timeout kills the script (102)', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo start; sleep 30; echo never'),
        timeout: 1,
        target_server: { host_id_list: [ids[1]] },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      const h = st.step_instance_list[0]?.step_ip_result_list?.[0];
      assert.equal(h?.status, 102);
      assert.equal(st.job_instance.status, 4);
      const log = await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, ids[1] ?? 0);
      assert.equal(log, 'start\n');
    });

    test('a host without an agent is never submitted (18) and fails the step', async () => {
      const added = await admin<{ bk_host_id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/hosts',
        { ip: '127.0.0.200', bk_biz_id: BIZ },
      );
      assert.equal(added.result, true, added.message);
      const r = await runScript(fleet, {
        script_content: b64('true'),
        target_server: { host_id_list: [added.data.bk_host_id, ids[0]] },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      const byHost = new Map(
        st.step_instance_list[0]?.step_ip_result_list?.map((h) => [h.bk_host_id, h.status]),
      );
      assert.equal(byHost.get(added.data.bk_host_id), 18);
      assert.equal(byHost.get(ids[0] ?? 0), 9);
      assert.equal(st.job_instance.status, 4);
    });

    test('sensitive params are masked in replies and never reach the server log', async () => {
      const secret = 'hunter2-top-secret';
      const r = await runScript(fleet, {
        script_content: b64('test "$1" = hunter2-top-secret'),
        script_param: b64(secret),
        is_param_sensitive: 1,
        target_server: { host_id_list: [ids[2]] },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, 'the script saw the real parameter');
      const detail = await get<{ type: number; script_info: Record<string, unknown>; file_info: unknown }>(
        fleet.server.url,
        'get_step_instance_detail',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
        },
        fleet.creds,
      );
      assert.equal(detail.result, true, detail.message);
      assert.equal(detail.data.type, 1);
      assert.equal(detail.data.file_info, null);
      assert.equal(detail.data.script_info.script_param, '******');
      assert.equal(detail.data.script_info.is_param_sensitive, 1);
      assert.equal(detail.data.script_info.script_content, 'test "$1" = hunter2-top-secret');
      assert.ok(!fleet.server.output().includes(secret));
    });

    test('get_step_instance_status groups hosts by status', async () => {
      const r = await runScript(fleet, {
        script_content: b64('[ "$(cat /proc/self/cmdline | wc -c)" -gt 0 ] && exit 0'),
        target_server: { host_id_list: ids },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      const s = await get<{
        type: number;
        execute_count: number;
        step_result_group_list: {
          result_type: number;
          host_size: number;
          host_result_list: { bk_agent_id: string }[];
        }[];
      }>(
        fleet.server.url,
        'get_step_instance_status',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
        },
        fleet.creds,
      );
      assert.equal(s.data.type, 1);
      assert.equal(s.data.execute_count, 0);
      assert.equal(s.data.step_result_group_list.length, 1);
      assert.equal(s.data.step_result_group_list[0]?.result_type, 9);
      assert.equal(s.data.step_result_group_list[0]?.host_size, 3);
      assert.ok(s.data.step_result_group_list[0]?.host_result_list.every((h) => h.bk_agent_id.length > 0));
    });

    test('every target kind resolves', async () => {
      const set = await admin<{ id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/topology/sets',
        { bk_biz_id: BIZ, name: 'web' },
      );
      const mod = await admin<{ id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/topology/modules',
        { bk_biz_id: BIZ, set_id: set.data.id, name: 'nginx' },
      );
      await admin(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        `/topology/modules/${mod.data.id}/hosts`,
        { host_ids: [ids[0]] },
      );
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/dynamic_groups', {
        id: 'g34',
        bk_biz_id: BIZ,
        name: 'two',
        filter: { ip: ['127.0.0.3', '127.0.0.4/32'] },
      });
      const r = await runScript(fleet, {
        script_content: b64('true'),
        target_server: {
          ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.2' }],
          topo_node_list: [{ id: mod.data.id, node_type: 'module' }],
          dynamic_group_list: [{ id: 'g34' }],
        },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        st.step_instance_list[0]?.step_ip_result_list?.map((h) => h.bk_host_id).sort(),
        [...ids].sort(),
      );
    });

    test('output beyond the cap keeps head and tail and says what was dropped', async () => {
      const r = await runScript(fleet, {
        script_content: b64(
          'echo HEAD; i=0; while [ $i -lt 2000 ]; do echo "line $i of filler text"; i=$((i+1)); done; echo TAIL',
        ),
        target_server: { host_id_list: [ids[0]] },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      const log = (await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, ids[0] ?? 0)) ?? '';
      assert.ok(log.startsWith('HEAD\n'));
      assert.ok(log.endsWith('TAIL\n'));
      const m = /\[jobfleet: (\d+) bytes of output dropped/.exec(log);
      assert.ok(m, 'drop marker present');
      const printed =
        'HEAD\n'.length +
        'TAIL\n'.length +
        Array.from({ length: 2000 }, (_, i) => `line ${i} of filler text\n`.length).reduce(
          (a, b) => a + b,
          0,
        );
      const kept =
        Buffer.byteLength(log) -
        Buffer.byteLength(log.slice(m.index, log.indexOf('\n', m.index + 1) + 1)) -
        1;
      assert.equal(Number(m[1]) + kept, printed);
    });

    test('callback is retried until delivered and every attempt is recorded', async () => {
      const r = await runScript(fleet, {
        script_content: b64('true'),
        callback_url: receiverUrl,
        target_server: { host_id_list: [ids[0]] },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      const cb = await waitCallbackDelivered(fleet, r.data.job_instance_id);
      assert.equal(cb.attempts, 3);
      assert.deepEqual(
        cb.attempt_list.map((a) => a.http_status),
        [500, 500, 200],
      );
      assert.equal(callbacks.length, 3);
      const body = JSON.parse(callbacks[2]?.body ?? '{}') as {
        job_instance_id: number;
        status: number;
        step_instances: { step_instance_id: number; status: number }[];
      };
      assert.equal(body.job_instance_id, r.data.job_instance_id);
      assert.equal(body.status, 3);
      assert.deepEqual(body.step_instances, [{ step_instance_id: r.data.step_instance_id, status: 3 }]);
      assert.equal(callbacks[0]?.contentType, 'application/json');
      assert.equal(callbacks[1]?.contentType, 'application/x-www-form-urlencoded');
      // Its deliveries are logged by origin: a webhook's path may be its credential. The line
      // comes after the attempt is stored, which is what the wait above saw.
      const logged = await eventually(async () => {
        const out = fleet.server.output();
        return /callback delivered/.test(out) ? out : undefined;
      });
      assert.ok(!logged.includes(receiverUrl), 'the callback URL reached the server log');
    });

    test('job list: newest first, filters and paging', async () => {
      const now = Date.now();
      const list = await get<{
        total: number;
        start: number;
        length: number;
        data: {
          job_instance_id: number;
          name: string;
          type: number;
          launch_mode: number;
          operator: string;
        }[];
      }>(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: now - 3600_000, create_time_end: now + 1000, length: 2 },
        fleet.creds,
      );
      assert.equal(list.result, true, list.message);
      assert.ok(list.data.total >= 5);
      assert.equal(list.data.data.length, 2);
      assert.ok((list.data.data[0]?.job_instance_id ?? 0) > (list.data.data[1]?.job_instance_id ?? 0));
      assert.equal(list.data.data[0]?.type, 1);
      assert.equal(list.data.data[0]?.launch_mode, 2);
      assert.equal(list.data.data[0]?.operator, 'tester');
      const named = await get<{ total: number; data: { name: string }[] }>(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: now - 3600_000, create_time_end: now + 1000, name: 'FIELD' },
        fleet.creds,
      );
      // A part of the name, in any case, on either store.
      assert.equal(named.data.total, 1);
      assert.equal(named.data.data[0]?.name, 'field check');
      const tooLong = await get(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: 1, create_time_end: 40 * 86400_000 },
        fleet.creds,
      );
      assert.equal(tooLong.code, 1241002);
      // A job id names one job: the other criteria, the time range included, are ignored.
      const oldest = list.data.data[list.data.data.length - 1]?.job_instance_id ?? 0;
      const byId = await get<{ total: number; data: { job_instance_id: number }[] }>(
        fleet.server.url,
        'get_job_instance_list',
        {
          ...fleet.scope,
          job_instance_id: oldest,
          create_time_start: 1,
          create_time_end: 86400_000,
          name: 'no job has this name',
          status: 4,
        },
        fleet.creds,
      );
      assert.equal(byId.result, true, byId.message);
      assert.equal(byId.data.total, 1);
      assert.equal(byId.data.data[0]?.job_instance_id, oldest);
      // The ip filter still holds with an id (BK-JOB adds it to the id's lookup).
      const byIdElsewhere = await get<{ total: number }>(
        fleet.server.url,
        'get_job_instance_list',
        {
          ...fleet.scope,
          job_instance_id: oldest,
          ip: '10.255.255.254',
          create_time_start: 1,
          create_time_end: 2,
        },
        fleet.creds,
      );
      assert.equal(byIdElsewhere.data.total, 0);
      // What SDKs send for "no filter": a cron id of 0, blank text, a negative start.
      const unfiltered = await get<{ total: number; start: number }>(
        fleet.server.url,
        'get_job_instance_list',
        {
          ...fleet.scope,
          create_time_start: now - 3600_000,
          create_time_end: now + 1000,
          job_cron_id: 0,
          operator: ' ',
          name: ' ',
          start: -1,
        },
        fleet.creds,
      );
      assert.equal(unfiltered.result, true, unfiltered.message);
      assert.equal(unfiltered.data.total, list.data.total);
      assert.equal(unfiltered.data.start, 0);
    });

    test('takes requests as SDKs that send every field write them: null is absent, 0 is no id', async () => {
      // Java beans and Python dicts holding None send null for each field left unset; types
      // that cannot leave a number out send account_id 0; a blank task_name gets the default.
      const r = await runScript(fleet, {
        script_version_id: null,
        script_id: null,
        script_content: b64('echo sdk'),
        script_param: null,
        is_param_sensitive: null,
        timeout: null,
        account_id: 0,
        task_name: '  ',
        callback_url: null,
        rolling_config: null,
        start_task: null,
        target_server: {
          host_id_list: [ids[0]],
          ip_list: null,
          topo_node_list: null,
          dynamic_group_list: null,
        },
      });
      assert.equal(r.result, true, r.message);
      assert.match(r.data.job_instance_name, /^Script Execution_\d{17}$/);
      assert.equal((await waitFinished(fleet, r.data.job_instance_id)).job_instance.status, 3);
      // A null where a value is required is reported as missing, as BK-JOB does.
      const missing = await runScript(fleet, {
        script_content: null,
        target_server: { host_id_list: [ids[0]] },
      });
      assert.equal(missing.code, 1241004, missing.message);
      assert.match(missing.message, /script_content/);
    });

    test('refusals answer the documented codes and start nothing', async () => {
      const cases: [Record<string, unknown>, number][] = [
        [{ script_language: 9, script_content: b64('true') }, 1241005],
        [{ script_content: undefined }, 1241004],
        [{ script_content: 'not base64!!' }, 1240003],
        [{ script_param: b64('a\u0000b') }, 1240003],
        [{ timeout: 0 }, 1240003],
        [{ timeout: 259201 }, 1240003],
        [{ account_alias: 'nobody-here' }, 1244003],
        [{ account_alias: undefined }, 1241004],
        [{ account_alias: ' ' }, 1241004],
        [{ target_server: undefined }, 1241004],
        [{ target_server: {} }, 1244001],
        [{ target_server: { host_id_list: [999999] } }, 1244030],
        [{ target_server: { ip_list: [{ bk_cloud_id: 0, ip: '300.1.1.1' }] } }, 1240003],
        [{ callback_url: 'ftp://x/y' }, 1240003],
        [{ script_id: 'abc' }, 1243001],
        // Several wrong at once: the first check in BK-JOB's order answers (the reads run together).
        [{ account_alias: 'nobody-here', target_server: { host_id_list: [999999] } }, 1244003],
        // A request's own fields are checked before anything is looked up.
        [{ account_alias: 'nobody-here', target_server: undefined }, 1241004],
        [{ script_version_id: 0 }, 1241005],
        [{ callback_url: 'ftp://x/y', account_alias: 'nobody-here' }, 1240003],
        [{ account_alias: undefined, target_server: {} }, 1241004],
      ];
      const before = await get<{ total: number }>(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: Date.now() - 3600_000, create_time_end: Date.now() + 1000 },
        fleet.creds,
      );
      for (const [patch, code] of cases) {
        const body: Record<string, unknown> = {
          ...fleet.scope,
          script_language: 1,
          account_alias: fleet.account,
          script_content: b64('true'),
          target_server: { host_id_list: [ids[0]] },
          ...patch,
        };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        const r = await post(fleet.server.url, 'fast_execute_script', body, fleet.creds);
        assert.equal(r.result, false, JSON.stringify(patch));
        assert.equal(r.code, code, `${JSON.stringify(patch)}: ${r.message}`);
        assert.ok(r.message.length > 0);
      }
      const afterList = await get<{ total: number }>(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: Date.now() - 3600_000, create_time_end: Date.now() + 1000 },
        fleet.creds,
      );
      assert.equal(afterList.data.total, before.data.total);
      // The step reads' ids are required query parameters: missing or below 1, 1240003 (§3.6).
      for (const name of ['get_step_instance_status', 'get_step_instance_detail']) {
        const queries: Record<string, number>[] = [
          { job_instance_id: 1 },
          { step_instance_id: 1 },
          { job_instance_id: 1, step_instance_id: 0 },
        ];
        for (const query of queries) {
          const r = await get(fleet.server.url, name, { ...fleet.scope, ...query }, fleet.creds);
          assert.equal(r.code, 1240003, `${name} ${JSON.stringify(query)}: ${r.message}`);
        }
      }
      assert.equal(
        (
          await get(
            fleet.server.url,
            'get_job_instance_status',
            { ...fleet.scope, job_instance_id: 987654 },
            fleet.creds,
          )
        ).code,
        1244006,
      );
      assert.equal(
        (
          await get(
            fleet.server.url,
            'get_job_instance_status',
            { ...fleet.scope, job_instance_id: -1 },
            fleet.creds,
          )
        ).code,
        1241007,
      );
      assert.equal(
        (
          await get(
            fleet.server.url,
            'get_step_instance_status',
            { ...fleet.scope, job_instance_id: 1, step_instance_id: 987654 },
            fleet.creds,
          )
        ).code,
        1244007,
      );
      assert.equal(
        (
          await get(
            fleet.server.url,
            'get_step_instance_status',
            { ...fleet.scope, job_instance_id: 1, step_instance_id: -1 },
            fleet.creds,
          )
        ).code,
        1240003,
      );
      // A job of another scope is as unknown as a missing one.
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', { id: 3, name: 'other' });
      assert.equal(
        (
          await get(
            fleet.server.url,
            'get_job_instance_status',
            { bk_scope_type: 'biz', bk_scope_id: '3', job_instance_id: 1 },
            fleet.creds,
          )
        ).code,
        1244006,
      );
    });

    test('an agent killed mid-task puts its host at 310 after the heartbeat window', async () => {
      const victim = fleet.agents[2];
      assert.ok(victim);
      const r = await runScript(fleet, {
        script_content: b64('echo started; sleep 30'),
        target_server: { host_id_list: [ids[1], ids[2]] },
      });
      await eventually(async () =>
        (await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, ids[2] ?? 0)) === 'started\n'
          ? true
          : undefined,
      );
      await victim.kill('SIGKILL');
      const st = await eventually(async () => {
        const s = await get<{
          step_instance_list: { step_ip_result_list: { bk_host_id: number; status: number }[] }[];
        }>(
          fleet.server.url,
          'get_job_instance_status',
          { ...fleet.scope, job_instance_id: r.data.job_instance_id, return_ip_result: true },
          fleet.creds,
        );
        const h = s.data.step_instance_list[0]?.step_ip_result_list.find((x) => x.bk_host_id === ids[2]);
        return h?.status === 310 ? s : undefined;
      });
      assert.ok(st);
    });
  });
}
