/**
 * Rotating the server key with jobs in flight: sensitive parameters and cipher variables (in a
 * template, its plan, a cron and a plan job) sealed under the old key keep working after a
 * restart with a new key (the old one among the previous keys), the start-up reseal moves them
 * to the new key, and after that the old key can be dropped. A server that lost the key a
 * value was sealed under fails that step's hosts at once with 12 / error_code 1244903.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import os from 'node:os';
import { after, describe, test } from 'node:test';
import { admin, eventually, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { b64, hostLog, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import {
  RESTART_HEARTBEAT_ENV,
  resealReport,
  startAgent,
  startServer,
  stopAll,
  tempDir,
} from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

const key = () => crypto.randomBytes(32).toString('base64');
const digest = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

for (const engine of engines()) {
  describe(`server key rotation on ${engine}`, () => {
    test('jobs sealed under the old key run after a rotation, and are resealed under the new one', async () => {
      const oldKey = key();
      const newKey = key();
      const databaseUrl = await freshDatabase(engine);
      const dataDir = tempDir('rotation');
      const serve = (env: Record<string, string>, port?: number) =>
        startServer({
          dataDir,
          env: { ...RESTART_HEARTBEAT_ENV, ...env },
          ...(databaseUrl ? { databaseUrl } : {}),
          ...(port ? { port } : {}),
        });
      let server: ServerProcess = await serve({ JOBFLEET_SERVER_KEY: oldKey });
      const account = os.userInfo().username;
      assert.equal(
        (await admin(server.url, server.adminToken, 'POST', '/biz', { id: 2, name: 'two' })).result,
        true,
      );
      await admin(server.url, server.adminToken, 'POST', '/accounts', {
        bk_biz_id: 2,
        alias: account,
        os_user: account,
      });
      await startAgent({ server, ip: '127.0.0.2', biz: 2 });
      const hosts = await admin<{ hosts: { bk_host_id: number }[] }>(
        server.url,
        server.adminToken,
        'GET',
        '/hosts?bk_biz_id=2',
      );
      const hostId = hosts.data.hosts[0]?.bk_host_id ?? 0;
      const fleet = (): Fleet =>
        ({
          server,
          creds: { appCode: server.appCode, appSecret: server.appSecret, username: 'tester' },
          scope: { bk_scope_type: 'biz', bk_scope_id: '2' },
        }) as Fleet;
      const submit = async (param: string, script: string, start: boolean) => {
        const r = await post<{ job_instance_id: number; step_instance_id: number }>(
          server.url,
          'fast_execute_script',
          {
            bk_scope_type: 'biz',
            bk_scope_id: '2',
            script_language: 1,
            account_alias: account,
            script_content: b64(script),
            script_param: b64(param),
            is_param_sensitive: 1,
            start_task: start,
            target_server: { host_id_list: [hostId] },
          },
          fleet().creds,
        );
        assert.equal(r.result, true, r.message);
        return r.data;
      };
      const start = async (jobInstanceId: number) => {
        const r = await post(
          server.url,
          'operate_job_instance',
          { bk_scope_type: 'biz', bk_scope_id: '2', job_instance_id: jobInstanceId, operation_code: 2 },
          fleet().creds,
        );
        assert.equal(r.result, true, r.message);
      };
      const ranWith = async (job: { job_instance_id: number; step_instance_id: number }, param: string) => {
        const st = await waitFinished(fleet(), job.job_instance_id, 30_000);
        assert.equal(st.job_instance.status, 3, JSON.stringify(st));
        const log = await hostLog(fleet(), job.job_instance_id, job.step_instance_id, hostId);
        assert.match(log ?? '', new RegExp(digest(param)), `job ${job.job_instance_id} got its parameter`);
      };
      // Jobs are started only once the agent is back, so a slow reconnect is not a lost host.
      const agentBack = () =>
        eventually(
          async () => (server.output().includes('"msg":"agent connected"') ? true : undefined),
          30_000,
          'the agent to reconnect',
        );
      const hashParam = 'printf %s "$1" | sha256sum';

      // An app that makes no call between the rotation and dropping the old key.
      const quietApp = { appCode: 'quiet-app', appSecret: 'quiet-app-secret-1234', username: 'tester' };
      const created = await admin(server.url, server.adminToken, 'POST', '/apps', {
        app_code: quietApp.appCode,
        app_secret: quietApp.appSecret,
        scopes: [{ type: 'biz', id: 2 }],
      });
      assert.equal(created.result, true, created.message);

      // An account whose password is sealed under the old key.
      const windows = await post(
        server.url,
        'create_account',
        {
          bk_scope_type: 'biz',
          bk_scope_id: '2',
          account: 'svc_win',
          type: 2,
          category: 1,
          password: 'win-password-1234',
        },
        fleet().creds,
      );
      assert.equal(windows.result, true, windows.message);

      // A plan whose script hashes a cipher variable, a cron holding its own cipher value, and
      // a job of the plan stored but not started: all sealed under the old key.
      const api = <T>(name: string, body: Record<string, unknown>) =>
        post<T>(server.url, name, { bk_scope_type: 'biz', bk_scope_id: '2', ...body }, fleet().creds);
      const template = await api<{ id: number }>('create_job_template', {
        name: 'cipher',
        global_var_list: [{ name: 'token', type: 4, value: 'plan-cipher-secret' }],
        step_list: [
          {
            name: 'hash',
            type: 1,
            script_info: {
              script_content: b64('printf %s "$token" | sha256sum; printf %s "$1" | sha256sum'),
              script_param: b64('template-param-secret'),
              is_param_sensitive: 1,
              account: { alias: account },
              server: { host_id_list: [hostId] },
            },
          },
        ],
      });
      assert.equal(template.result, true, template.message);
      const plan = await api<{ id: number }>('create_job_plan', {
        job_template_id: template.data.id,
        name: 'cipher',
      });
      assert.equal(plan.result, true, plan.message);
      const cron = await api('save_cron', {
        job_plan_id: plan.data.id,
        name: 'yearly',
        expression: '0 0 1 1 *',
        global_var_list: [{ name: 'token', value: 'cron-cipher-secret' }],
      });
      assert.equal(cron.result, true, cron.message);
      const launchPlan = async (startTask = true) => {
        const r = await api<{ job_instance_id: number }>('execute_job_plan', {
          job_plan_id: plan.data.id,
          start_task: startTask,
        });
        assert.equal(r.result, true, r.message);
        return r.data.job_instance_id;
      };
      const planRanWith = async (jobInstanceId: number, secret: string) => {
        const st = await waitFinished(fleet(), jobInstanceId, 30_000);
        assert.equal(st.job_instance.status, 3, JSON.stringify(st));
        const step = st.step_instance_list[0]?.step_instance_id ?? 0;
        const log = await hostLog(fleet(), jobInstanceId, step, hostId);
        assert.match(log ?? '', new RegExp(digest(secret)), `job ${jobInstanceId} got its cipher value`);
        assert.match(log ?? '', new RegExp(digest('template-param-secret')), 'and its sensitive parameter');
      };
      const planJob = await launchPlan(false);

      // Under the old key: one job running across the restart, two stored but not started.
      const running = await submit('in-flight-secret', `sleep 3; ${hashParam}`, true);
      const waiting = await submit('waiting-secret', hashParam, false);
      const later = await submit('later-secret', hashParam, false);
      // Give the agent a moment to start it (if it has not, it starts after the restart: still in flight).
      await new Promise((r) => setTimeout(r, 1000));

      // Restart with the new key, the old one still readable.
      await server.kill();
      server = await serve(
        { JOBFLEET_SERVER_KEY: newKey, JOBFLEET_SERVER_KEYS_PREVIOUS: oldKey },
        server.port,
      );
      const resealed = await resealReport(server);
      assert.equal(resealed.unopenable, 0);
      assert.equal(resealed.changed, 0);
      assert.equal(
        resealed.resealed,
        11,
        "the quiet app, the account password, every sensitive parameter (jobs', the template's) and every cipher value (template, plan, cron, job) moved to the new key",
      );
      await ranWith(running, 'in-flight-secret');
      await agentBack();
      await start(waiting.job_instance_id);
      await ranWith(waiting, 'waiting-secret');

      // The old key dropped: what was resealed still opens.
      await server.kill();
      server = await serve({ JOBFLEET_SERVER_KEY: newKey }, server.port);
      await agentBack();
      await start(later.job_instance_id);
      await ranWith(later, 'later-secret');
      await start(planJob);
      await planRanWith(planJob, 'plan-cipher-secret');
      await planRanWith(await launchPlan(), 'plan-cipher-secret');
      assert.doesNotMatch(server.output(), /does not open|cannot reseal/);
      assert.match(server.output(), /"resealed":0,"unopenable":0/);
      const now = Date.now();
      const quiet = await post(
        server.url,
        'get_job_instance_list',
        { bk_scope_type: 'biz', bk_scope_id: '2', create_time_start: now - 3600_000, create_time_end: now },
        quietApp,
      );
      assert.equal(quiet.result, true, quiet.message);

      // The key lost: a server that cannot open a step's secrets fails its hosts at once (12,
      // error_code 1244903) instead of sending them a wrong value or leaving them to time out.
      const lostParam = await submit('lost-secret', hashParam, false);
      // A plan whose only secret is its cipher variable (the first plan's job would stop at its
      // sensitive parameter, which does not open either).
      const cipherOnly = await api<{ id: number }>('create_job_template', {
        name: 'cipher only',
        global_var_list: [{ name: 'token', type: 4, value: 'plan-cipher-secret' }],
        step_list: [
          {
            name: 'hash',
            type: 1,
            script_info: {
              script_content: b64('printf %s "$token" | sha256sum'),
              account: { alias: account },
              server: { host_id_list: [hostId] },
            },
          },
        ],
      });
      assert.equal(cipherOnly.result, true, cipherOnly.message);
      const cipherPlan = await api<{ id: number }>('create_job_plan', {
        job_template_id: cipherOnly.data.id,
        name: 'cipher only',
      });
      assert.equal(cipherPlan.result, true, cipherPlan.message);
      await server.kill();
      server = await serve({ JOBFLEET_SERVER_KEY: key() }, server.port);
      await start(lostParam.job_instance_id);
      const cipherJob = await api<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: cipherPlan.data.id,
      });
      assert.equal(cipherJob.result, true, cipherJob.message);
      for (const jobInstanceId of [
        lostParam.job_instance_id,
        await launchPlan(),
        cipherJob.data.job_instance_id,
      ]) {
        const st = await waitFinished(fleet(), jobInstanceId, 30_000);
        assert.equal(st.job_instance.status, 4);
        const hostsOf = st.step_instance_list[0]?.step_ip_result_list ?? [];
        assert.deepEqual(
          hostsOf.map((h) => [h.bk_host_id, h.status, h.error_code]),
          [[hostId, 12, 1244903]],
        );
      }
      assert.match(server.output(), /sensitive parameter does not open/);
      assert.match(server.output(), /cipher variable does not open/);
      // An app whose secret is sealed under a key this server lacks: told so, not an internal error.
      const lostApp = await post(
        server.url,
        'get_job_plan_list',
        { bk_scope_type: 'biz', bk_scope_id: '2' },
        quietApp,
      );
      assert.equal(lostApp.code, 1244903, lostApp.message);
    });
  });
}
