/**
 * A plan step's variables are folded once. When a script step of a plan ends, the values its
 * hosts left are folded into the job's variables (a string variable changed on several hosts
 * takes the highest host id's value) and stored, and then the step is stored finished. A server
 * killed between the two carries the step on after its restart and ends it again: that end must
 * fold the hosts' values into the values the step started with, not into the ones it already
 * stored. The store is put in that state directly (the step running with every host done, its
 * variables stored, the job not yet at its next step), as a kill at that moment leaves it.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { eventually, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, jobStatus, startFleet, waitFinished } from './helpers/fleet.js';
import { onFleetDatabase } from './helpers/fleet-database.js';
import { RESTART_HEARTBEAT_ENV, stopAll } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3'];

for (const engine of engines()) {
  describe(`plan variables across a restart on ${engine}`, () => {
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('a string variable two hosts changed keeps the highest host id value when its step ends twice', async () => {
      const fleet = await startFleet(engine, IPS.length, { env: RESTART_HEARTBEAT_ENV });
      const ids = IPS.map((ip) => fleet.hostIds.get(ip) ?? 0);
      const call = async <T>(name: string, body: Record<string, unknown>) => {
        const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
        assert.equal(r.result, true, `${name}: ${r.message}`);
        return r.data;
      };
      const account = { alias: fleet.account };
      const servers = { variable: 'servers' };
      const template = await call<{ id: number }>('create_job_template', {
        name: 'carry',
        global_var_list: [
          { name: 'carry', type: 1, value: 'none' },
          { name: 'servers', type: 3, server: { host_id_list: ids }, required: 1 },
        ],
        step_list: [
          {
            name: 'set',
            type: 1,
            script_info: { script_content: b64('carry="c-$TEST_AGENT_IP"'), account, server: servers },
          },
          { name: 'confirm', type: 3, approval_info: { approval_user: { user_list: ['tester'] } } },
          {
            name: 'show',
            type: 1,
            script_info: { script_content: b64('echo "carry=$carry"'), account, server: servers },
          },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.id,
        name: 'carry',
      });
      const { job_instance_id: jobId } = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: plan.id,
      });
      const waiting = await eventually(async () => {
        const st = await jobStatus(fleet, jobId);
        return st.job_instance.status === 7 ? st : undefined;
      });
      const [set, confirm, show] = waiting.step_instance_list.map((s) => s.step_instance_id) as [
        number,
        number,
        number,
      ];
      const top = IPS[ids.indexOf(Math.max(...ids))];

      await fleet.server.kill('SIGKILL');
      const crashed = [
        `update step_instance set status = 2, end_time = null where id = ${set}`,
        `update step_instance set status = 1, start_time = null, end_time = null where id = ${confirm}`,
        `update job_instance set status = 2 where id = ${jobId}`,
      ].join(';\n');
      await onFleetDatabase(fleet, crashed, crashed);
      fleet.server = await fleet.server.restart();
      for (const a of fleet.agents) await a.waitReady(2, 30_000);
      await eventually(async () =>
        (await jobStatus(fleet, jobId)).job_instance.status === 7 ? true : undefined,
      );
      await call('operate_step_instance', {
        job_instance_id: jobId,
        step_instance_id: confirm,
        operation_code: 6,
      });
      const done = await waitFinished(fleet, jobId, 30_000);
      assert.equal(done.job_instance.status, 3);
      for (const [i, ip] of IPS.entries())
        assert.equal(await hostLog(fleet, jobId, show, ids[i] ?? 0), `carry=c-${top}\n`, ip);
      const values = await get<{
        step_instance_var_list: {
          step_instance_id: number;
          global_var_list: { name: string; value: string }[];
        }[];
      }>(
        fleet.server.url,
        'get_job_instance_global_var_value',
        { ...fleet.scope, job_instance_id: jobId },
        fleet.creds,
      );
      const ofSet = values.data.step_instance_var_list.find((s) => s.step_instance_id === set);
      assert.equal(ofSet?.global_var_list.find((v) => v.name === 'carry')?.value, `c-${top}`);
    });
  });
}
