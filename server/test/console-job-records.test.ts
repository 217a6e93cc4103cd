/**
 * The reads behind the console's step panels, against a real server and agent on each engine:
 * a job's operation records (launch, retry, a refused operation), a plan job's variables at
 * launch (cipher masked), every host's log of a step as one .tar.gz (and its refusals), and the
 * time zone a scope's crons run in when they name none.
 */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { admin, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const SECRET = 'cipher-Kq27-never-in-a-reply';

interface Operation {
  operator: string;
  operation: string;
  step_instance_id: number | null;
  result: boolean;
  code: number;
}

for (const engine of engines()) {
  describe(`console job records on ${engine}`, () => {
    let fleet: Fleet;
    let cookie = '';

    before(async () => {
      fleet = await startFleet(engine, 2);
      const password = 'pw-rita-0123456789';
      const made = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/users', {
        name: 'rita',
        password,
        platform_admin: false,
      });
      assert.ok(made.result, made.message);
      const roles = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/users/rita/roles', {
        roles: [{ scope_type: 'biz', scope_id: 2, role: 'viewer' }],
      });
      assert.ok(roles.result, roles.message);
      const res = await fetch(`${fleet.server.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'rita', password }),
      });
      assert.equal(((await res.json()) as { result: boolean }).result, true);
      cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    const call = <T>(name: string, body: Record<string, unknown>) =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
    const exportUrl = (q: Record<string, string | number>) =>
      `${fleet.server.url}/api/console/step-log-export?${new URLSearchParams(
        Object.entries({ ...fleet.scope, ...q }).map(([k, v]): [string, string] => [k, String(v)]),
      ).toString()}`;

    test('operation records, and every host log of a step as one archive', async () => {
      const run = await call<{ job_instance_id: number; step_instance_id: number }>('fast_execute_script', {
        script_language: 1,
        script_content: b64(
          'echo "out of $TEST_AGENT_IP"; [ "$TEST_AGENT_IP" = 127.0.0.3 ] && exit 4; exit 0',
        ),
        account_alias: fleet.account,
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.ok(run.result, run.message);
      const { job_instance_id: jobId, step_instance_id: stepId } = run.data;
      await waitFinished(fleet, jobId);
      // Not records of this job: a call whose credentials fail, naming it; a call about something else.
      const forged = await post(
        fleet.server.url,
        'operate_job_instance',
        { ...fleet.scope, job_instance_id: jobId, operation_code: 1 },
        { ...fleet.creds, appSecret: 'not-the-secret', username: 'mallory' },
      );
      assert.equal(forged.result, false);
      const unrelated = await call('create_script', {
        name: `unrelated-${jobId}`,
        script_language: 1,
        content: b64('echo'),
        version: 'v1',
        job_instance_id: jobId,
      });
      assert.ok(unrelated.result, unrelated.message);
      // A confirmation on a script step is refused; the refusal is a record too.
      const refused = await call('operate_step_instance', {
        job_instance_id: jobId,
        step_instance_id: stepId,
        operation_code: 6,
      });
      assert.equal(refused.result, false);
      const retry = await call('operate_step_instance', {
        job_instance_id: jobId,
        step_instance_id: stepId,
        operation_code: 2,
      });
      assert.ok(retry.result, retry.message);
      await waitFinished(fleet, jobId);

      let ops: Operation[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await get<{ operation_list: Operation[] }>(
          fleet.server.url,
          'get_job_instance_operation_list',
          { ...fleet.scope, job_instance_id: jobId },
          fleet.creds,
        );
        assert.ok(r.result, r.message);
        ops = r.data.operation_list;
        if (ops.length >= 3) break;
        await new Promise((res) => setTimeout(res, 100)); // audit entries are written in batches
      }
      assert.deepEqual(
        ops.map((o) => [o.operation, o.operator, o.step_instance_id, o.result]),
        [
          ['launch', 'tester', null, true],
          ['confirm_continue', 'tester', stepId, false],
          ['retry_failed', 'tester', stepId, true],
        ],
      );
      assert.notEqual(ops[1]?.code, 0);

      // A job of another scope is as unknown as a missing one.
      const missing = await get(
        fleet.server.url,
        'get_job_instance_operation_list',
        { ...fleet.scope, job_instance_id: jobId + 1000 },
        fleet.creds,
      );
      assert.equal(missing.result, false);

      const check = await fetch(exportUrl({ job_instance_id: jobId, step_instance_id: stepId, check: 1 }), {
        headers: { cookie },
      });
      const checked = (await check.json()) as {
        result: boolean;
        data: { host_count: number; execute_count: number };
      };
      assert.equal(checked.result, true);
      assert.equal(checked.data.host_count, 2);
      assert.equal(checked.data.execute_count, 1);

      // Attempt 2: the host kept as last success gives the log of the run that succeeded.
      const res = await fetch(exportUrl({ job_instance_id: jobId, step_instance_id: stepId }), {
        headers: { cookie },
      });
      assert.equal(res.headers.get('content-type'), 'application/gzip');
      assert.match(res.headers.get('content-disposition') ?? '', /attempt-2-logs\.tar\.gz/);
      const tar = zlib.gunzipSync(Buffer.from(await res.arrayBuffer())).toString('latin1');
      for (const [ip, id] of fleet.hostIds) {
        assert.ok(tar.includes(`${ip}_${id}.log`), `${ip} in the archive`);
        assert.ok(tar.includes(`out of ${ip}`), `log of ${ip} in the archive`);
      }
      assert.ok(tar.includes('hosts.tsv'));

      const anonymous = await fetch(exportUrl({ job_instance_id: jobId, step_instance_id: stepId }));
      assert.equal(((await anonymous.json()) as { result: boolean }).result, false);
      const otherScope = await fetch(
        exportUrl({ job_instance_id: jobId, step_instance_id: stepId, bk_scope_id: 3 }),
        { headers: { cookie } },
      );
      assert.equal(((await otherScope.json()) as { result: boolean }).result, false);
    });

    test("another scope's refused calls naming a job do not push its own records out", async () => {
      const biz = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', {
        id: 30,
        name: 'thirty',
      });
      assert.ok(biz.result, biz.message);
      const run = await call<{ job_instance_id: number; step_instance_id: number }>('fast_execute_script', {
        script_language: 1,
        script_content: b64('exit 1'),
        account_alias: fleet.account,
        target_server: { host_id_list: [fleet.hostIds.get('127.0.0.2')] },
      });
      assert.ok(run.result, run.message);
      const { job_instance_id: jobId, step_instance_id: stepId } = run.data;
      await waitFinished(fleet, jobId);
      // More refused calls from business 30 than the list reads (1,000), each naming the job.
      for (let i = 0; i < 1050; i += 50)
        await Promise.all(
          Array.from({ length: 50 }, () =>
            post(
              fleet.server.url,
              'operate_job_instance',
              { bk_scope_type: 'biz', bk_scope_id: '30', job_instance_id: jobId, operation_code: 1 },
              fleet.creds,
            ),
          ),
        );
      const retry = await call('operate_step_instance', {
        job_instance_id: jobId,
        step_instance_id: stepId,
        operation_code: 2,
      });
      assert.ok(retry.result, retry.message);
      let ops: Operation[] = [];
      for (let i = 0; i < 50 && ops.length < 2; i++) {
        await new Promise((res) => setTimeout(res, 100)); // audit entries are written in batches
        const r = await get<{ operation_list: Operation[] }>(
          fleet.server.url,
          'get_job_instance_operation_list',
          { ...fleet.scope, job_instance_id: jobId },
          fleet.creds,
        );
        assert.ok(r.result, r.message);
        ops = r.data.operation_list;
      }
      assert.deepEqual(
        ops.map((o) => o.operation),
        ['launch', 'retry_failed'],
      );
    });

    test("a plan job's variables at launch, cipher masked; file steps are not exported", async () => {
      const account = { alias: fleet.account };
      const ids = [...fleet.hostIds.values()];
      const tpl = await call<{ id: number }>('create_job_template', {
        name: 'records',
        global_var_list: [
          { name: 'greeting', type: 1, value: 'hello' },
          { name: 'secret', type: 4, value: SECRET },
          { name: 'servers', type: 3, server: { host_id_list: ids } },
        ],
        step_list: [
          {
            name: 'copy',
            type: 2,
            file_info: {
              file_source_list: [
                { file_list: ['/etc/hostname'], account, server: { host_id_list: [ids[0]] } },
              ],
              file_destination: {
                path: '/tmp/jf-records-[FILESRCIP]/',
                account,
                server: { variable: 'servers' },
              },
            },
          },
        ],
      });
      assert.ok(tpl.result, tpl.message);
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: tpl.data.id,
        name: 'records',
      });
      assert.ok(plan.result, plan.message);
      const run = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: plan.data.id,
        global_var_list: [{ name: 'greeting', value: 'hi there' }],
      });
      assert.ok(run.result, run.message);
      const vars = await get<{
        global_var_list: { name: string; type: number; value: string; server?: unknown }[];
      }>(
        fleet.server.url,
        'get_job_instance_variable_list',
        { ...fleet.scope, job_instance_id: run.data.job_instance_id },
        fleet.creds,
      );
      assert.ok(vars.result, vars.message);
      assert.deepEqual(
        vars.data.global_var_list.map((v) => [v.name, v.type, v.value]),
        [
          ['greeting', 1, 'hi there'],
          ['secret', 4, '******'],
          ['servers', 3, ''],
        ],
      );
      assert.ok(vars.data.global_var_list[2]?.server);
      assert.ok(!JSON.stringify(vars).includes(SECRET));

      const st = await waitFinished(fleet, run.data.job_instance_id);
      const step = st.step_instance_list[0]?.step_instance_id ?? 0;
      const res = await fetch(
        exportUrl({ job_instance_id: run.data.job_instance_id, step_instance_id: step, check: 1 }),
        { headers: { cookie } },
      );
      const refused = (await res.json()) as { result: boolean; code: number; message: string };
      assert.equal(refused.result, false);
      assert.equal(refused.code, 1240003);
      assert.match(refused.message, /not a script step/);
    });

    test('the time zone crons of a scope run in when they name none', async () => {
      const read = async () => {
        const res = await fetch(`${fleet.server.url}/api/console/time-zone?bk_scope_type=biz&bk_scope_id=2`, {
          headers: { cookie },
        });
        return (await res.json()) as {
          result: boolean;
          data: { time_zone: string; scope_time_zone: string | null };
        };
      };
      const before = await read();
      assert.equal(before.result, true);
      assert.equal(before.data.scope_time_zone, null);
      assert.ok(before.data.time_zone.length > 0);
      const set = await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/scopes/biz/2/time_zone', {
        time_zone: 'Asia/Shanghai',
      });
      assert.ok(set.result, set.message);
      assert.deepEqual((await read()).data, { time_zone: 'Asia/Shanghai', scope_time_zone: 'Asia/Shanghai' });
    });
  });
}
