/**
 * Templates, plans and execute_job_plan end to end through real agents: script -> file ->
 * confirmation -> script, the six variable types reaching scripts, a namespace variable carried
 * per host, cipher values kept out of replies, logs and the database, required variables,
 * approvers, a server SIGKILLed while a plan waits for confirmation, and bad authoring input.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds, Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, jobCount, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const SECRET = 'cipher-Zq81-never-shown';

/** Every file under a directory, read as text (for a secret that must not be in any of them). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

async function databaseText(fleet: Fleet): Promise<string> {
  if (!fleet.databaseUrl) {
    return filesUnder(fleet.server.dataDir)
      .map((f) => fs.readFileSync(f).toString('latin1'))
      .join('\n');
  }
  const client = new pg.Client({ connectionString: fleet.databaseUrl });
  await client.connect();
  try {
    const tables = await client.query<{ tablename: string }>(
      "select tablename from pg_tables where schemaname = 'public'",
    );
    let text = '';
    for (const t of tables.rows) {
      const r = await client.query<{ t: string | null }>(
        `select string_agg(x::text, '') as t from ${t.tablename} x`,
      );
      text += r.rows[0]?.t ?? '';
    }
    return text;
  } finally {
    await client.end();
  }
}

for (const engine of engines()) {
  describe(`job plans on ${engine}`, () => {
    let fleet: Fleet;
    let ids: number[];
    const replies: string[] = [];
    const hooks: unknown[] = [];
    let hookUrl = '';
    let hookServer: http.Server;

    const call = async <T>(
      name: string,
      body: Record<string, unknown>,
      creds?: ApiCreds,
    ): Promise<Envelope<T>> => {
      const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, creds ?? fleet.creds);
      replies.push(JSON.stringify(r));
      return r;
    };
    const read = async <T>(name: string, query: Record<string, unknown>): Promise<Envelope<T>> => {
      const r = await get<T>(fleet.server.url, name, { ...fleet.scope, ...query }, fleet.creds);
      replies.push(JSON.stringify(r));
      return r;
    };
    const status = async (jobId: number) =>
      (await read<JobStatus>('get_job_instance_status', { job_instance_id: jobId, return_ip_result: true }))
        .data;

    before(async () => {
      fleet = await startFleet(engine, IPS.length, { fileRoots: true });
      ids = IPS.map((ip) => fleet.hostIds.get(ip) ?? 0);
      hookServer = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          hooks.push(JSON.parse(body));
          res.end('ok');
        });
      });
      await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
      hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/confirm`;
    });
    after(async () => {
      hookServer.close();
      await stopAll();
      await dropFreshDatabases();
    });

    function template(name: string) {
      const step1 = [
        'echo "greeting=$greeting"',
        '[ "$(printf %s "$secret" | sha256sum | cut -c1-64)" = "$EXPECTED" ] && echo cipher-ok || echo cipher-wrong',
        'echo "red=${colors[red]} second=${list[1]} n=${#list[@]}"',
        'echo "ns-before=[$ns]"',
        'ns="ns-of-$TEST_AGENT_IP"',
        'greeting="changed-by-step-1"',
      ].join('\n');
      const step4 = 'echo "ns-after=$ns greeting=$greeting"';
      const servers = { variable: 'servers' };
      const account = { alias: fleet.account };
      return {
        name,
        description: 'script, file, confirmation, script',
        global_var_list: [
          { name: 'greeting', type: 1, value: 'hello', required: 1 },
          { name: 'ns', type: 2, value: '' },
          { name: 'servers', type: 3, server: { host_id_list: ids }, required: 1 },
          { name: 'secret', type: 4, value: SECRET, required: 1 },
          { name: 'colors', type: 5, value: '{"red":"#f00","blue":"#00f"}' },
          { name: 'list', type: 6, value: '["a","b","c"]' },
          { name: 'dest_dir', type: 1, value: '/dest' },
        ],
        step_list: [
          {
            name: 'set variables',
            type: 1,
            script_info: {
              script_content: b64(
                step1.replace('$EXPECTED', crypto.createHash('sha256').update(SECRET).digest('hex')),
              ),
              script_language: 1,
              account,
              server: servers,
            },
          },
          {
            name: 'ship the file',
            type: 2,
            file_info: {
              file_source_list: [
                { file_list: ['/src/data.txt'], account, server: { host_id_list: [ids[0]] } },
              ],
              file_destination: { path: '${dest_dir}/', account, server: servers },
            },
          },
          {
            name: 'confirm',
            type: 3,
            approval_info: {
              approval_user: { user_list: ['tester', 'boss'] },
              approval_message: 'go on?',
              notify_channel: ['webhook'],
              webhook_url: hookUrl,
            },
          },
          { name: 'report', type: 1, script_info: { script_content: b64(step4), account, server: servers } },
        ],
      };
    }

    test('a four-step plan runs end to end: variables, namespace per host, confirmation across a SIGKILL', async () => {
      fs.mkdirSync(path.join(fleet.fileRoots.get(IPS[0] ?? '') ?? '', 'src'), { recursive: true });
      fs.writeFileSync(path.join(fleet.fileRoots.get(IPS[0] ?? '') ?? '', 'src', 'data.txt'), 'payload\n');
      // The script checks the cipher's hash: its value is in no template, log or reply.
      const t = await call<{ id: number }>('create_job_template', template('deploy'));
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'deploy all',
      });
      assert.equal(p.result, true, p.message);
      const detail = await read<{
        id: number;
        job_template_id: number;
        step_list: { id: number; type: number }[];
        global_var_list: { name: string; value?: string; used: boolean }[];
      }>('get_job_plan_detail', { job_plan_id: p.data.id });
      assert.equal(detail.result, true, detail.message);
      assert.equal(detail.data.id, p.data.id);
      assert.deepEqual(
        detail.data.step_list.map((s) => s.type),
        [1, 2, 3, 1],
      );
      assert.equal(detail.data.global_var_list.find((v) => v.name === 'secret')?.value, '******');
      const list = await read<{ data: { id: number; need_update: boolean }[] }>('get_job_plan_list', {
        job_template_id: t.data.id,
      });
      assert.deepEqual(
        list.data.data.map((x) => [x.id, x.need_update]),
        [[p.data.id, false]],
      );

      const run = await call<{ job_instance_id: number; job_instance_name: string; step_instance_id: null }>(
        'execute_job_plan',
        { job_plan_id: p.data.id, global_var_list: [{ name: 'greeting', value: 'hi there' }] },
      );
      assert.equal(run.result, true, run.message);
      assert.equal(run.data.job_instance_name, 'deploy all');
      assert.equal(run.data.step_instance_id, null);
      const jobId = run.data.job_instance_id;

      // The job waits at the confirmation step (7) and its approvers were told.
      const waiting = await eventually(async () => {
        const st = await status(jobId);
        return st.job_instance.status === 7 ? st : undefined;
      });
      const steps = waiting.step_instance_list;
      assert.deepEqual(
        steps.map((s) => [s.status, s.type]),
        [
          [3, 1],
          [3, 2],
          [7, 3],
          [1, 1],
        ],
      );
      const [s1, , s3, s4] = steps.map((s) => s.step_instance_id) as [number, number, number, number];
      await eventually(async () => (hooks.length > 0 ? true : undefined));
      assert.deepEqual(hooks[0], {
        event: 'confirmation_pending',
        bk_scope_type: 'biz',
        bk_scope_id: fleet.scope.bk_scope_id,
        job_instance_id: jobId,
        job_instance_name: 'deploy all',
        step_instance_id: s3,
        approvers: ['tester', 'boss'],
        message: 'go on?',
      });

      // Every type reached the script.
      for (const [i, ip] of IPS.entries()) {
        assert.equal(
          await hostLog(fleet, jobId, s1, ids[i] ?? 0),
          `greeting=hi there\ncipher-ok\nred=#f00 second=b n=3\nns-before=[]\n`,
          ip,
        );
        assert.equal(
          fs.readFileSync(path.join(fleet.fileRoots.get(ip) ?? '', 'dest', 'data.txt'), 'utf8'),
          'payload\n',
        );
      }

      // Every script step is listed, the one not yet run with the values carried to it; the file
      // and confirmation steps are not (as BK-JOB).
      const carried = await read<{
        step_instance_var_list: {
          step_instance_id: number;
          global_var_list: { name: string; value: string }[];
        }[];
      }>('get_job_instance_global_var_value', { job_instance_id: jobId });
      assert.deepEqual(
        carried.data.step_instance_var_list.map((s) => [s.step_instance_id, s.global_var_list[0]?.value]),
        [
          [s1, 'changed-by-step-1'],
          [s4, 'changed-by-step-1'],
        ],
      );

      // Approver checks: a stranger is refused; an approver terminates (13), then restarts it (7).
      const op = (code: number, username: string, extra: Record<string, unknown> = {}) =>
        call(
          'operate_step_instance',
          { job_instance_id: jobId, step_instance_id: s3, operation_code: code, ...extra },
          {
            ...fleet.creds,
            username,
          },
        );
      const refused = await op(6, 'mallory');
      assert.equal(refused.code, 1244016, refused.message);
      assert.match(refused.message, /mallory is not an approver/);
      assert.equal((await op(10, 'tester')).code, 1241003);
      const stop = await op(9, 'tester', { confirm_reason: 'not yet' });
      assert.equal(stop.result, true, stop.message);
      // No longer waiting: its status is refused first, to a stranger too (as BK-JOB orders them).
      assert.equal((await op(6, 'mallory')).code, 1241003);
      const stopped = await status(jobId);
      assert.equal(stopped.job_instance.status, 13);
      assert.equal(stopped.finished, true);
      const again = await op(10, 'tester');
      assert.equal(again.result, true, again.message);
      assert.equal((await status(jobId)).job_instance.status, 7);

      // The server dies while the plan waits; after the restart the confirmation still works.
      await fleet.server.kill('SIGKILL');
      fleet.server = await fleet.server.restart();
      for (const a of fleet.agents) await a.waitReady(2, 30_000);
      assert.equal((await status(jobId)).job_instance.status, 7);
      const go = await op(6, 'boss', { confirm_reason: 'looks good' });
      assert.equal(go.result, true, go.message);
      const done = await waitFinished(fleet, jobId, 30_000);
      assert.equal(done.job_instance.status, 3);
      assert.deepEqual(
        done.step_instance_list.map((s) => s.status),
        [3, 3, 3, 3],
      );

      // Step 4 saw, on each host, the namespace value step 1 set on that host.
      for (const [i, ip] of IPS.entries()) {
        assert.equal(
          await hostLog(fleet, jobId, s4, ids[i] ?? 0),
          `ns-after=ns-of-${ip} greeting=changed-by-step-1\n`,
        );
      }
      const detailOfConfirm = await read<{
        approval_info: { confirmation_list: { action: string; operator: string; reason: string }[] };
      }>('get_step_instance_detail', { job_instance_id: jobId, step_instance_id: s3 });
      assert.deepEqual(
        detailOfConfirm.data.approval_info.confirmation_list.map((c) => [c.action, c.operator, c.reason]),
        [
          ['terminate', 'tester', 'not yet'],
          ['restart', 'tester', ''],
          ['continue', 'boss', 'looks good'],
        ],
      );
      const values = await read<{
        step_instance_var_list: {
          step_instance_id: number;
          global_var_list: { name: string; value: string; type: number }[];
        }[];
      }>('get_job_instance_global_var_value', { job_instance_id: jobId });
      assert.equal(values.result, true, values.message);
      const first = values.data.step_instance_var_list.find((s) => s.step_instance_id === s1);
      assert.deepEqual(first?.global_var_list, [
        { name: 'greeting', value: 'changed-by-step-1', type: 1 },
        { name: 'dest_dir', value: '/dest', type: 1 },
      ]);
      assert.deepEqual(
        values.data.step_instance_var_list.map((s) => s.step_instance_id),
        [s1, s4],
      );

      const jobs = await read<{
        data: { job_instance_id: number; job_plan_id: number; job_template_id: number; type: number }[];
      }>('get_job_instance_list', {
        create_time_start: Date.now() - 3600_000,
        create_time_end: Date.now() + 60_000,
      });
      const row = jobs.data.data.find((j) => j.job_instance_id === jobId);
      assert.deepEqual([row?.type, row?.job_plan_id, row?.job_template_id], [0, p.data.id, t.data.id]);

      // The cipher value is in no reply, no server log line and nowhere in the database.
      assert.ok(!replies.join('\n').includes(SECRET), 'a reply carried the cipher value');
      assert.ok(!fleet.server.output().includes(SECRET), 'the server log carried the cipher value');
      assert.ok(
        !(await databaseText(fleet)).includes(SECRET),
        'the database holds the cipher value in clear',
      );
    });

    test('ignore-error steps go on, a failed step stops the plan until retried, terminate at a confirmation', async () => {
      const flag = path.join(fleet.server.dataDir, `retry-flag-${Date.now()}`);
      const account = { alias: fleet.account };
      const server = { host_id_list: ids.slice(0, 2) };
      const script = (body: string, ignore = 0) => ({
        script_content: b64(body),
        account,
        server,
        is_ignore_error: ignore,
      });
      const t = await call<{ id: number }>('create_job_template', {
        name: 'operations',
        step_list: [
          { name: 'may fail', type: 1, script_info: script('exit 2', 1) },
          { name: 'needs flag', type: 1, script_info: script(`[ -f ${flag} ] || exit 3; echo flagged`) },
          { name: 'hold', type: 3, approval_info: { approval_user: { user_list: ['tester'] } } },
        ],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'ops' });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
      const jobId = run.data.job_instance_id;
      const failed = await waitFinished(fleet, jobId);
      assert.equal(failed.job_instance.status, 4);
      assert.deepEqual(
        failed.step_instance_list.map((s) => s.status),
        [6, 4, 1],
      );
      fs.writeFileSync(flag, '');
      const stepId = failed.step_instance_list[1]?.step_instance_id ?? 0;
      const retry = await call('operate_step_instance', {
        job_instance_id: jobId,
        step_instance_id: stepId,
        operation_code: 2,
      });
      assert.equal(retry.result, true, retry.message);
      await eventually(async () => ((await status(jobId)).job_instance.status === 7 ? true : undefined));
      assert.equal(await hostLog(fleet, jobId, stepId, ids[0] ?? 0), 'flagged\n');
      const stop = await call('operate_job_instance', { job_instance_id: jobId, operation_code: 1 });
      assert.equal(stop.result, true, stop.message);
      const end = await waitFinished(fleet, jobId);
      assert.equal(end.job_instance.status, 11);
      assert.deepEqual(
        end.step_instance_list.map((s) => s.status),
        [6, 3, 11],
      );
    });

    test('a step citing a library script runs its pinned version, which cannot be deleted while cited', async () => {
      const created = await call<{ id: number; script_id: string }>('create_script', {
        name: `greeter-${engine}`,
        script_language: 1,
        content: b64('echo "library says $greeting"'),
        version: 'v1',
      });
      assert.equal(created.result, true, created.message);
      const citing = {
        name: 'uses the library',
        global_var_list: [{ name: 'greeting', type: 1, value: 'hello' }],
        step_list: [
          {
            name: 'greet',
            type: 1,
            script_info: {
              script_type: 2,
              script_id: created.data.script_id,
              script_version_id: created.data.id,
              account: { alias: fleet.account },
              server: { host_id_list: [ids[0]] },
            },
          },
        ],
      };
      // A draft may still be edited: pinning it is refused; online and offline versions run.
      const draft = await call('create_job_template', citing);
      assert.equal(draft.code, 1244018, draft.message);
      const ref = { script_id: created.data.script_id, script_version_id: created.data.id };
      assert.equal((await call('publish_script_version', ref)).result, true);
      const t = await call<{ id: number }>('create_job_template', citing);
      assert.equal(t.result, true, t.message);
      const v2 = await call<{ id: number }>('create_script_version', {
        script_id: created.data.script_id,
        content: b64('echo "library v2"'),
        version: 'v2',
      });
      assert.equal(v2.result, true, v2.message);
      const put = await call('publish_script_version', { ...ref, script_version_id: v2.data.id });
      assert.equal(put.result, true, 'the pinned version goes offline');
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'greet' });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
      assert.equal(run.result, true, run.message);
      const done = await waitFinished(fleet, run.data.job_instance_id);
      assert.equal(done.job_instance.status, 3);
      const stepId = done.step_instance_list[0]?.step_instance_id ?? 0;
      assert.equal(
        await hostLog(fleet, run.data.job_instance_id, stepId, ids[0] ?? 0),
        'library says hello\n',
      );
      const del = await call('delete_script_version', ref);
      assert.equal(del.code, 1243054, del.message);
      assert.match(del.message, /uses the library/);
    });

    test('a required variable without a value refuses the run and creates nothing', async () => {
      const body = template('needs values');
      const vars = body.global_var_list.map((v) => (v.name === 'greeting' ? { ...v, value: '' } : v));
      const t = await call<{ id: number }>('create_job_template', { ...body, global_var_list: vars });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'p' });
      const before = await jobCount(fleet);
      const r = await call('execute_job_plan', { job_plan_id: p.data.id });
      assert.equal(r.code, 1244911);
      assert.match(r.message, /greeting/);
      assert.equal(await jobCount(fleet), before);
      assert.equal((await call('execute_job_plan', { job_plan_id: 999_999 })).code, 1244012);
      const empty = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'none',
        step_list: [],
      });
      assert.equal((await call('execute_job_plan', { job_plan_id: empty.data.id })).code, 1244011);
      assert.equal((await call('execute_job_plan', { job_plan_id: 0 })).code, 1241005);
      const badArray = await call('execute_job_plan', {
        job_plan_id: p.data.id,
        global_var_list: [
          { name: 'greeting', value: 'x' },
          { name: 'list', value: 'not an array' },
        ],
      });
      assert.equal(badArray.code, 1241005, badArray.message);
      assert.match(badArray.message, /global_var_list\.list/);
      // A SQL step (script_language 6) runs as a database account; a system account is refused.
      const sqlTemplate = await call<{ id: number }>('create_job_template', {
        name: 'sql on a system account',
        step_list: [
          {
            name: 'query',
            type: 1,
            script_info: {
              script_content: b64('select 1;'),
              script_language: 6,
              account: { alias: fleet.account },
              server: { host_id_list: [ids[0]] },
            },
          },
        ],
      });
      assert.equal(sqlTemplate.code, 1244003, sqlTemplate.message);
      assert.equal(await jobCount(fleet), before);
    });

    test('a sensitive parameter is sealed in its template, masked in details, kept when written back', async () => {
      const PARAM = `pw-${crypto.randomBytes(8).toString('hex')}`;
      const step = (param: string, id?: number) => ({
        ...(id !== undefined ? { id } : {}),
        name: 'uses it',
        type: 1,
        script_info: {
          script_content: b64('echo "got=$1"'),
          script_param: param,
          is_param_sensitive: 1,
          account: { alias: fleet.account },
          server: { host_id_list: [ids[0]] },
        },
      });
      const t = await call<{ id: number }>('create_job_template', {
        name: 'sensitive parameter',
        step_list: [step(b64(PARAM))],
      });
      assert.equal(t.result, true, t.message);
      type Detail = { step_list: { id: number; script_info?: { script_param?: string } }[] };
      const detail = await read<Detail>('get_job_template_detail', { job_template_id: t.data.id });
      assert.equal(detail.data.step_list[0]?.script_info?.script_param, '******');
      const stored = await databaseText(fleet);
      assert.ok(!stored.includes(PARAM) && !stored.includes(b64(PARAM)), 'the parameter is stored sealed');
      // Written back as read, the mask keeps the stored parameter.
      const back = await call('update_job_template', {
        job_template_id: t.data.id,
        name: 'sensitive parameter',
        step_list: [step('******', detail.data.step_list[0]?.id)],
      });
      assert.equal(back.result, true, back.message);
      const p = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'sensitive',
      });
      assert.equal(p.result, true, p.message);
      const plan = await read<Detail>('get_job_plan_detail', { job_plan_id: p.data.id });
      assert.equal(plan.data.step_list[0]?.script_info?.script_param, '******');
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
      assert.equal(run.result, true, run.message);
      const st = await waitFinished(fleet, run.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list));
      const stepId = st.step_instance_list[0]?.step_instance_id ?? 0;
      assert.equal(await hostLog(fleet, run.data.job_instance_id, stepId, ids[0] ?? 0), `got=${PARAM}\n`);
      // A sensitive parameter is held to 48,128 bytes (behaviour notes §5); the mask alone to one.
      const long = await call('create_job_template', {
        name: 'too long',
        step_list: [step(b64('x'.repeat(48_129)))],
      });
      assert.equal(long.result, false);
      assert.match(long.message, /48128/);
      const plainMask = await call('create_job_template', {
        name: 'mask',
        step_list: [
          { ...step('******'), script_info: { ...step('******').script_info, is_param_sensitive: 0 } },
        ],
      });
      assert.equal(plainMask.result, false);
      assert.match(plainMask.message, /sensitive/);
    });

    test('bad authoring input gets a clear error and changes nothing', async () => {
      const t = await call<{ id: number }>('create_job_template', template('stable'));
      assert.equal(t.result, true, t.message);
      const detailBefore = JSON.stringify(
        (await read('get_job_template_detail', { job_template_id: t.data.id })).data,
      );
      const good = template('stable');
      const countBefore = (await read<{ total: number }>('get_job_template_list', {})).data.total;
      const bad: [string, Record<string, unknown>, number, RegExp][] = [
        ['create_job_template', { ...good, name: '' }, 1240003, /name/],
        // PostgreSQL text cannot hold NUL: refused as bad input, not an internal error.
        ['create_job_template', { ...good, name: 'a\u0000b' }, 1240003, /NUL/],
        ['create_job_template', { ...good, name: 'x', description: '\u0000' }, 1240003, /NUL/],
        ['create_job_plan', { job_template_id: t.data.id, name: 'p\u0000' }, 1240003, /NUL/],
        ['get_job_plan_list', { name: '\u0000' }, 1240003, /NUL/],
        // No process argument or environment carries a NUL: refused here, not on each host.
        [
          'create_job_template',
          { ...good, name: 'x', global_var_list: [{ name: 'v', type: 1, value: 'a\u0000b' }] },
          1240003,
          /NUL/,
        ],
        [
          'create_job_template',
          {
            ...good,
            name: 'x',
            step_list: [
              {
                ...good.step_list[0],
                script_info: { ...good.step_list[0]?.script_info, script_param: b64('a\u0000b') },
              },
              ...good.step_list.slice(1),
            ],
          },
          1240003,
          /NUL/,
        ],
        [
          'execute_job_plan',
          { job_plan_id: 424242, global_var_list: [{ name: 'v', value: '\u0000' }] },
          1240003,
          /NUL/,
        ],
        ['create_job_template', good, 1243912, /already exists/],
        [
          'create_job_template',
          { ...good, name: 'x', step_list: [{ name: 's', type: 1 }] },
          1240003,
          /script_info/,
        ],
        [
          'create_job_template',
          { ...good, name: 'x', global_var_list: [{ name: '1bad', type: 1 }] },
          1240003,
          /shell variable name/,
        ],
        [
          'create_job_template',
          { ...good, name: 'x', global_var_list: [...good.global_var_list, { name: 'greeting', type: 1 }] },
          1243914,
          /two variables/,
        ],
        [
          'create_job_template',
          { ...good, name: 'x', global_var_list: good.global_var_list.filter((v) => v.name !== 'servers') },
          1243914,
          /servers/,
        ],
        [
          'create_job_template',
          { ...good, name: 'x', global_var_list: [{ name: 'l', type: 6, value: 'not json' }] },
          1243914,
          /array/,
        ],
        [
          'update_job_template',
          { ...good, job_template_id: t.data.id, step_list: [{ ...good.step_list[0], id: 999 }] },
          1243914,
          /999/,
        ],
        ['update_job_template', { ...good, job_template_id: 424242 }, 1243911, /424242/],
        [
          'create_job_plan',
          { job_template_id: t.data.id, name: 'p', step_list: [{ id: 999 }] },
          1243914,
          /999/,
        ],
        [
          'create_job_plan',
          { job_template_id: t.data.id, name: 'p', global_var_list: [{ name: 'nope', value: '1' }] },
          1243914,
          /nope/,
        ],
        ['create_job_plan', { job_template_id: 424242, name: 'p' }, 1243911, /424242/],
        ['delete_job_plan', { job_plan_id: 424242 }, 1243009, /424242/],
        [
          'create_job_template',
          {
            ...good,
            name: 'x',
            step_list: [
              {
                name: 's',
                type: 1,
                script_info: { script_type: 2, script_id: '7', account: {}, server: {} },
              },
            ],
          },
          1243001,
          /7/,
        ],
      ];
      for (const [name, body, code, message] of bad) {
        const r = await call(name, body);
        assert.equal(r.code, code, `${name}: ${r.message}`);
        assert.match(r.message, message, name);
      }
      const templates = await read<{ total: number }>('get_job_template_list', {});
      assert.equal(templates.data.total, countBefore, 'a refused request added a template');
      assert.equal(
        JSON.stringify((await read('get_job_template_detail', { job_template_id: t.data.id })).data),
        detailBefore,
      );
      const plans = await read<{ total: number }>('get_job_plan_list', { job_template_id: t.data.id });
      assert.equal(plans.data.total, 0);
    });

    test('a value an earlier step sets reaches the parameters of the steps after it', async () => {
      const account = { alias: fleet.account };
      const server = { host_id_list: [ids[0]] };
      const step = (name: string, body: string, param = '') => ({
        name,
        type: 1,
        script_info: { script_content: b64(body), script_param: b64(param), account, server },
      });
      const t = await call<{ id: number }>('create_job_template', {
        name: 'values into parameters',
        global_var_list: [
          { name: 'release', type: 1, value: 'v1' },
          { name: 'tag', type: 1, value: 'stable' },
          { name: 'unused_here', type: 1, value: 'u' },
          // inside a word of every script ("echo"), not used by any
          { name: 'ech', type: 1, value: 'e' },
          // names every plain object has: they must fold as any other name does
          { name: '__proto__', type: 1, value: 'p0' },
          { name: 'constructor', type: 2, value: '' },
        ],
        step_list: [
          step('before', 'echo "param=[$1 $2]"', "${release} '${other}'"),
          step('set', 'release=v42; __proto__=p1; constructor=c1'),
          step(
            'after',
            'echo "param=[$1 $2] var=[$release] proto=[$__proto__] ctor=[$constructor]"',
            '${release} ${tag}',
          ),
        ],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'p' });
      // A variable named only in a step's parameters is in use.
      const planDetail = await read<{ global_var_list: { name: string; used: boolean }[] }>(
        'get_job_plan_detail',
        { job_plan_id: p.data.id },
      );
      assert.deepEqual(
        planDetail.data.global_var_list.map((v) => [v.name, v.used]),
        [
          ['release', true],
          ['tag', true],
          ['unused_here', false],
          ['ech', false],
          ['__proto__', true],
          ['constructor', true],
        ],
      );
      const r = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      const [first, , last] = st.step_instance_list.map((s) => s.step_instance_id);
      const logOf = async (stepId: number | undefined) =>
        (await hostLog(fleet, r.data.job_instance_id, stepId ?? 0, ids[0] ?? 0)) ?? '';
      assert.match(await logOf(first), /param=\[v1 \$\{other\}\]/);
      assert.match(await logOf(last), /param=\[v42 stable\] var=\[v42\] proto=\[p1\] ctor=\[c1\]/);
      const values = await read<{
        step_instance_var_list: {
          step_instance_id: number;
          global_var_list: { name: string; value: string }[];
        }[];
      }>('get_job_instance_global_var_value', { job_instance_id: r.data.job_instance_id });
      const atEnd = values.data.step_instance_var_list.find((s) => s.step_instance_id === last);
      assert.deepEqual(
        atEnd?.global_var_list.map((v) => [v.name, v.value]),
        [
          ['release', 'v42'],
          ['tag', 'stable'],
          ['unused_here', 'u'],
          ['ech', 'e'],
          ['__proto__', 'p1'],
        ],
      );
      const detail = await read<{ script_info: { script_param: string } }>('get_step_instance_detail', {
        job_instance_id: r.data.job_instance_id,
        step_instance_id: last ?? 0,
      });
      assert.equal(detail.data.script_info.script_param, 'v42 stable');
    });

    test('a value an earlier step sets reaches the paths of a file step after it; one that makes them invalid fails its targets', async () => {
      const account = { alias: fleet.account };
      const rootOf = (ip: string | undefined) => fleet.fileRoots.get(ip ?? '') ?? '';
      fs.mkdirSync(path.join(rootOf(IPS[0]), 'releases'), { recursive: true });
      fs.writeFileSync(path.join(rootOf(IPS[0]), 'releases', 'v1.txt'), 'one\n');
      fs.writeFileSync(path.join(rootOf(IPS[0]), 'releases', 'v2.txt'), 'two\n');
      const t = await call<{ id: number }>('create_job_template', {
        name: 'values into paths',
        global_var_list: [
          { name: 'release', type: 1, value: 'v1' },
          { name: 'dir', type: 1, value: '/shipped/v1' },
          { name: 'next', type: 1, value: '/shipped/v2' },
        ],
        step_list: [
          {
            name: 'choose',
            type: 1,
            script_info: {
              script_content: b64('release=v2; dir=$next'),
              account,
              server: { host_id_list: [ids[0]] },
            },
          },
          {
            name: 'ship',
            type: 2,
            file_info: {
              file_source_list: [
                { file_list: ['/releases/${release}.txt'], account, server: { host_id_list: [ids[0]] } },
              ],
              file_destination: { path: '${dir}', account, server: { host_id_list: [ids[1]] } },
            },
          },
        ],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'p' });
      const run = async (values: { name: string; value: string }[]) => {
        const r = await call<{ job_instance_id: number }>('execute_job_plan', {
          job_plan_id: p.data.id,
          global_var_list: values,
        });
        assert.equal(r.result, true, r.message);
        return { id: r.data.job_instance_id, st: await waitFinished(fleet, r.data.job_instance_id) };
      };
      const shipped = await run([]);
      assert.equal(shipped.st.job_instance.status, 3, JSON.stringify(shipped.st));
      const target = rootOf(IPS[1]);
      assert.equal(fs.readFileSync(path.join(target, 'shipped', 'v2', 'v2.txt'), 'utf8'), 'two\n');
      assert.equal(fs.existsSync(path.join(target, 'shipped', 'v1')), false);
      const fileStep = shipped.st.step_instance_list[1]?.step_instance_id ?? 0;
      const detail = await read<{
        file_info: { file_source_list: { file_list: string[] }[]; file_destination: { path: string } };
      }>('get_step_instance_detail', { job_instance_id: shipped.id, step_instance_id: fileStep });
      assert.deepEqual(detail.data.file_info.file_source_list[0]?.file_list, ['/releases/v2.txt']);
      assert.equal(detail.data.file_info.file_destination.path, '/shipped/v2');

      // Valid as the job starts, made relative by the first step: the targets fail, nothing is written.
      const refused = await run([{ name: 'next', value: 'shipped/../../etc' }]);
      assert.equal(refused.st.job_instance.status, 4, JSON.stringify(refused.st));
      assert.deepEqual(
        refused.st.step_instance_list[1]?.step_ip_result_list?.map((h) => h.status),
        [202],
      );
      assert.deepEqual(fs.readdirSync(path.join(target, 'shipped')), ['v2']);
      assert.equal(fs.existsSync(path.join(target, 'etc')), false);
    });

    test("a variable renamed or given another type drops a plan's own value: the run takes the template's", async () => {
      const account = { alias: fleet.account };
      const t = await call<{ id: number }>('create_job_template', {
        name: 'renamed variables',
        global_var_list: [
          { name: 'secret', type: 4, value: 'template-secret' },
          { name: 'note', type: 1, value: 'template-note' },
          { name: 'hosts', type: 3, server: { host_id_list: [ids[0]] } },
        ],
        step_list: [
          {
            name: 'show',
            type: 1,
            script_info: {
              script_content: b64('echo "db_secret=[${db_secret-}] note=[${note-}]"'),
              account,
              server: { variable: 'hosts' },
            },
          },
        ],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'own values',
        global_var_list: [
          { name: 'secret', value: 'plan-secret' },
          { name: 'note', value: 'plan-note' },
        ],
      });
      assert.equal(p.result, true, p.message);
      const detail = await read<{ global_var_list: { id: number; name: string; type: number }[] }>(
        'get_job_template_detail',
        { job_template_id: t.data.id },
      );
      const [secret, note, hosts] = detail.data.global_var_list;
      const changed = await call('update_job_template', {
        ...detail.data,
        job_template_id: t.data.id,
        global_var_list: [
          { id: secret?.id, name: 'db_secret', type: 4, value: '******' },
          { id: note?.id, name: 'note', type: 2, value: 'template-namespace' },
          { ...hosts, server: { host_id_list: [ids[0]] } },
        ],
      });
      assert.equal(changed.result, true, changed.message);

      const plan = await read<{ global_var_list: { name: string; value: string }[] }>('get_job_plan_detail', {
        job_plan_id: p.data.id,
      });
      assert.deepEqual(
        plan.data.global_var_list.map((v) => [v.name, v.value]),
        [
          ['db_secret', ''],
          ['note', 'template-namespace'],
          ['hosts', undefined],
        ],
      );
      const r = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      const log = await hostLog(
        fleet,
        r.data.job_instance_id,
        st.step_instance_list[0]?.step_instance_id ?? 0,
        ids[0] ?? 0,
      );
      assert.match(log ?? '', /db_secret=\[\] note=\[template-namespace\]/);

      // An empty host list given replaces the plan's: the step is refused, not run on the plan's hosts.
      const before = await jobCount(fleet);
      const empty = await call('execute_job_plan', {
        job_plan_id: p.data.id,
        global_var_list: [{ name: 'hosts', server: { host_id_list: [] } }],
      });
      assert.equal(empty.code, 1244009, empty.message);
      assert.match(empty.message, /hosts/);
      assert.equal(await jobCount(fleet), before);
    });

    test('edits at once each apply in turn; no plan outlives a template deleted while it is created', async () => {
      const names = Array.from({ length: 8 }, (_, i) => `v${i}`);
      const tpl = (name: string) => ({
        name,
        global_var_list: [
          ...names.map((n) => ({ name: n, type: 1, value: 'template' })),
          { name: 'hosts', type: 3, server: { host_id_list: [ids[0]] } },
        ],
        step_list: [
          {
            name: 'show',
            type: 1,
            script_info: {
              script_content: b64('true'),
              account: { alias: fleet.account },
              server: { variable: 'hosts' },
            },
          },
        ],
      });
      const t = await call<{ id: number }>('create_job_template', tpl('edited at once'));
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'edited' });
      assert.equal(p.result, true, p.message);
      // Each update sets a variable of its own, a sync runs among them: none may undo another.
      const edits = await Promise.all([
        ...names.map((name, i) =>
          call('update_job_plan', {
            job_plan_id: p.data.id,
            global_var_list: [{ name, value: `plan-${i}` }],
          }),
        ),
        call('sync_job_plan', { job_plan_id: p.data.id }),
        call('update_job_plan', { job_plan_id: p.data.id, name: 'edited, renamed' }),
      ]);
      for (const r of edits) assert.equal(r.result, true, r.message);
      const plan = await read<{ name: string; global_var_list: { name: string; value: string }[] }>(
        'get_job_plan_detail',
        { job_plan_id: p.data.id },
      );
      assert.equal(plan.data.name, 'edited, renamed');
      assert.deepEqual(
        plan.data.global_var_list.filter((v) => v.name !== 'hosts').map((v) => [v.name, v.value]),
        names.map((n, i) => [n, `plan-${i}`]),
      );
      // A number or a boolean given as a value is its text, as BK-JOB binds it.
      const typed = await call('update_job_plan', {
        job_plan_id: p.data.id,
        global_var_list: [
          { name: 'v0', value: 42 },
          { name: 'v1', value: true },
        ],
      });
      assert.equal(typed.result, true, typed.message);
      const typedPlan = await read<{ global_var_list: { name: string; value: string }[] }>(
        'get_job_plan_detail',
        {
          job_plan_id: p.data.id,
        },
      );
      assert.deepEqual(
        typedPlan.data.global_var_list.slice(0, 2).map((v) => v.value),
        ['42', 'true'],
      );

      // Plans created while their template is deleted: each is refused, or deleted with it.
      for (let round = 0; round < 3; round++) {
        const doomed = await call<{ id: number }>('create_job_template', tpl(`deleted at once ${round}`));
        assert.equal(doomed.result, true, doomed.message);
        const creates = Array.from({ length: 6 }, (_, i) =>
          call('create_job_plan', { job_template_id: doomed.data.id, name: `p${i}` }),
        );
        const deleted = await call('delete_job_template', { job_template_id: doomed.data.id });
        assert.equal(deleted.result, true, deleted.message);
        for (const r of await Promise.all(creates)) assert.ok(r.result || r.code === 1243911, r.message);
        const left = await read<{ total: number }>('get_job_plan_list', { job_template_id: doomed.data.id });
        assert.equal(left.data.total, 0, `round ${round}: plans of a deleted template are left`);
      }
    });

    test('a changed template marks its plans need_update until synced; reading and writing back round-trips', async () => {
      const t = await call<{ id: number }>('create_job_template', template('evolving'));
      const tDetail = await read<Record<string, unknown> & { step_list: { id: number }[] }>(
        'get_job_template_detail',
        {
          job_template_id: t.data.id,
        },
      );
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'first two',
        step_list: tDetail.data.step_list.slice(0, 2),
      });
      assert.equal(plan.result, true, plan.message);
      // Writing back what was read changes nothing (the cipher's mask keeps the stored value).
      const same = await call('update_job_template', { ...tDetail.data, job_template_id: t.data.id });
      assert.equal(same.result, true, same.message);
      const needUpdate = async () =>
        (
          await read<{ data: { need_update: boolean }[] }>('get_job_plan_list', {
            job_template_id: t.data.id,
          })
        ).data.data[0]?.need_update;
      assert.equal(await needUpdate(), false);
      const changed = await call('update_job_template', {
        ...tDetail.data,
        job_template_id: t.data.id,
        step_list: [
          ...tDetail.data.step_list,
          { name: 'added', type: 3, approval_info: { approval_user: { user_list: ['tester'] } } },
        ],
      });
      assert.equal(changed.result, true, changed.message);
      assert.equal(await needUpdate(), true);
      assert.equal((await call('sync_job_plan', { job_plan_id: plan.data.id })).result, true);
      assert.equal(await needUpdate(), false);
      const synced = await read<{ step_list: { name: string }[] }>('get_job_plan_detail', {
        job_plan_id: plan.data.id,
      });
      assert.deepEqual(
        synced.data.step_list.map((s) => s.name),
        ['set variables', 'ship the file', 'added'],
      );

      // A step added to the template and left out of a plan's step list stays out after a sync.
      const now = await read<Record<string, unknown> & { step_list: { id: number; name: string }[] }>(
        'get_job_template_detail',
        { job_template_id: t.data.id },
      );
      const again = await call('update_job_template', {
        ...now.data,
        job_template_id: t.data.id,
        step_list: [
          ...now.data.step_list,
          { name: 'added later', type: 3, approval_info: { approval_user: { user_list: ['tester'] } } },
        ],
      });
      assert.equal(again.result, true, again.message);
      const leftOut = await call('update_job_plan', {
        job_plan_id: plan.data.id,
        step_list: now.data.step_list.slice(0, 2).map((s) => ({ id: s.id })),
      });
      assert.equal(leftOut.result, true, leftOut.message);
      assert.equal((await call('sync_job_plan', { job_plan_id: plan.data.id })).result, true);
      const kept = await read<{ step_list: { name: string }[] }>('get_job_plan_detail', {
        job_plan_id: plan.data.id,
      });
      assert.deepEqual(
        kept.data.step_list.map((s) => s.name),
        ['set variables', 'ship the file'],
      );
    });
  });
}
