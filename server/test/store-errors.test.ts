/**
 * A store error in the middle of a job's progress (the database refusing a write, as it does
 * while PostgreSQL restarts or a connection is cut) loses nothing and leaves nothing hanging:
 * a step whose end was refused ends once the store works and the job goes on; an operation
 * refused between its step and its job kept neither, so it is taken again; a result whose
 * variables were refused is sent again by its agent; a callback refused after its job ended is
 * sent once the store works, after a restart when the server was killed meanwhile, or by the
 * server that declares a dead cluster member dead. The faults are real ones: a trigger in the
 * server's own database (SQLite or PostgreSQL) raises an error for as long as it exists.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually, get, post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import { onFleetDatabase } from './helpers/fleet-database.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { startCluster } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { RESTART_HEARTBEAT_ENV, stopAll } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3'];
const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

interface Fault {
  name: string;
  event: 'INSERT' | 'UPDATE';
  table: string;
  /** Which rows fail (NEW and OLD as in both engines' trigger conditions); all when absent. */
  when?: string;
  message: string;
}

/** From now on the store refuses `fault.event` on `fault.table` with `fault.message`. */
const inject = (fleet: Fleet, f: Fault) =>
  onFleetDatabase(
    fleet,
    `CREATE TRIGGER ${f.name} BEFORE ${f.event} ON ${f.table} ${f.when ? `WHEN ${f.when}` : ''}
       BEGIN SELECT RAISE(ABORT, '${f.message}'); END;`,
    `CREATE FUNCTION ${f.name}() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION '${f.message}'; END $$;
     CREATE TRIGGER ${f.name} BEFORE ${f.event} ON ${f.table} FOR EACH ROW
       ${f.when ? `WHEN (${f.when})` : ''} EXECUTE FUNCTION ${f.name}();`,
  );

const heal = (fleet: Fleet, f: Fault) =>
  onFleetDatabase(
    fleet,
    `DROP TRIGGER ${f.name};`,
    `DROP TRIGGER ${f.name} ON ${f.table}; DROP FUNCTION ${f.name}();`,
  );

/** Until the server has logged the fault's error. */
async function refused(fleet: Fleet, f: Fault): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!fleet.server.output().includes(f.message)) {
    assert.ok(Date.now() < deadline, `${f.name}: the store never refused`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const STEP_ENDS: Fault = {
  name: 'test_step_end_fault',
  event: 'UPDATE',
  table: 'step_instance',
  when: 'NEW.status = 3 AND OLD.status <> 3',
  message: 'injected fault: the store refuses step ends',
};
const HOST_VARS: Fault = {
  name: 'test_host_vars_fault',
  event: 'INSERT',
  table: 'host_task_var',
  message: 'injected fault: the store refuses variables',
};
const CALLBACKS: Fault = {
  name: 'test_callback_fault',
  event: 'INSERT',
  table: 'callback',
  message: 'injected fault: the store refuses callbacks',
};

interface Receiver {
  url: string;
  /** The statuses of the callbacks received for a job. */
  of(jobId: number): number[];
  close(): void;
}

/** An HTTP server on loopback that takes callbacks. */
async function callbackReceiver(): Promise<Receiver> {
  const received: { job_instance_id: number; status: number }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { job_instance_id: number; status: number });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`,
    of: (jobId) => received.filter((b) => b.job_instance_id === jobId).map((b) => b.status),
    close: () => server.close(),
  };
}

/** A one-host job with a callback, finished while the store refuses to queue callbacks. */
async function jobWithRefusedCallback(fleet: Fleet, receiver: Receiver): Promise<number> {
  await inject(fleet, CALLBACKS);
  const r = await runScript(fleet, {
    script_content: b64('echo done'),
    callback_url: receiver.url,
    target_server: { host_id_list: [fleet.hostIds.get(IPS[0] ?? '')] },
  });
  assert.equal(r.result, true, r.message);
  const done = await waitFinished(fleet, r.data.job_instance_id, 30_000);
  assert.equal(done.job_instance.status, 3);
  await refused(fleet, CALLBACKS);
  return r.data.job_instance_id;
}

for (const engine of engines()) {
  describe(`a store error midway through a job, on ${engine}`, () => {
    let fleet: Fleet;
    let receiver: Receiver;

    before(async () => {
      fleet = await startFleet(engine, IPS.length, { env: RESTART_HEARTBEAT_ENV });
      receiver = await callbackReceiver();
    });
    after(async () => {
      receiver.close();
      await stopAll();
      await dropFreshDatabases();
    });

    const call = async <T>(name: string, body: Record<string, unknown>): Promise<T> => {
      const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
      assert.equal(r.result, true, `${name}: ${r.message}`);
      return r.data;
    };

    test('a step whose end could not be stored ends once the store works, and the next step runs', async () => {
      const server = { host_id_list: IPS.map((ip) => fleet.hostIds.get(ip)) };
      const script = (text: string) => ({
        script_content: b64(text),
        script_language: 1,
        account: { alias: fleet.account },
        server,
      });
      const template = await call<{ id: number }>('create_job_template', {
        name: 'two steps',
        step_list: [
          { name: 'first', type: 1, script_info: script('echo "first $TEST_AGENT_IP"; sleep 1') },
          { name: 'second', type: 1, script_info: script('echo "second $TEST_AGENT_IP"') },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.id,
        name: 'two',
      });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.id });
      await inject(fleet, STEP_ENDS);
      // The first step's hosts finish while its end is refused.
      await refused(fleet, STEP_ENDS);
      await new Promise((r) => setTimeout(r, 1500));
      await heal(fleet, STEP_ENDS);

      const done: JobStatus = await waitFinished(fleet, run.job_instance_id, 30_000);
      assert.equal(done.job_instance.status, 3, JSON.stringify(done.step_instance_list));
      assert.deepEqual(
        done.step_instance_list.map((s) => s.status),
        [3, 3],
      );
      const second = done.step_instance_list[1]?.step_instance_id ?? 0;
      for (const ip of IPS) {
        assert.equal(
          await hostLog(fleet, run.job_instance_id, second, fleet.hostIds.get(ip) ?? 0),
          `second ${ip}\n`,
        );
      }
      assert.match(fleet.server.output(), /carrying on from the store/);
    });

    test('an ignore-error cut off between its step and its job is taken again, and the job goes on', async () => {
      const server = { host_id_list: [fleet.hostIds.get(IPS[0] ?? '')] };
      const script = (text: string) => ({
        script_content: b64(text),
        script_language: 1,
        account: { alias: fleet.account },
        server,
      });
      const template = await call<{ id: number }>('create_job_template', {
        name: 'fails then goes on',
        step_list: [
          { name: 'fails', type: 1, script_info: script('exit 1') },
          { name: 'after', type: 1, script_info: script('echo after') },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.id,
        name: 'ignore',
      });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.id });
      const failed = await waitFinished(fleet, run.job_instance_id, 30_000);
      assert.equal(failed.job_instance.status, 4);
      const stepId = failed.step_instance_list[0]?.step_instance_id;
      const JOB_GOES_ON: Fault = {
        name: 'test_job_goes_on_fault',
        event: 'UPDATE',
        table: 'job_instance',
        when: 'OLD.status = 4 AND NEW.status = 2',
        message: 'injected fault: the store refuses the job going on',
      };
      const ignore = () =>
        post(
          fleet.server.url,
          'operate_step_instance',
          {
            ...fleet.scope,
            job_instance_id: run.job_instance_id,
            step_instance_id: stepId,
            operation_code: 3,
          },
          fleet.creds,
        );
      await inject(fleet, JOB_GOES_ON);
      assert.equal((await ignore()).result, false);
      await heal(fleet, JOB_GOES_ON);
      // Nothing of the refused operation was kept: the step is still failed, the operation is taken.
      const again = await ignore();
      assert.equal(again.result, true, again.message);
      const done: JobStatus = await waitFinished(fleet, run.job_instance_id, 30_000);
      assert.equal(done.job_instance.status, 3);
      assert.deepEqual(
        done.step_instance_list.map((s) => s.status),
        [6, 3],
      );
    });

    test('a result whose variables could not be stored is sent again by its agent and recorded', async () => {
      const ip = IPS[0] ?? '';
      const script = (text: string) => ({
        script_content: b64(text),
        script_language: 1,
        account: { alias: fleet.account },
        server: { host_id_list: [fleet.hostIds.get(ip)] },
      });
      const template = await call<{ id: number }>('create_job_template', {
        name: 'variables',
        global_var_list: [{ name: 'greeting', type: 1, value: 'hi' }],
        step_list: [
          {
            name: 'set',
            type: 1,
            script_info: script('echo "one $TEST_AGENT_IP"; greeting="from-$TEST_AGENT_IP"'),
          },
          { name: 'show', type: 1, script_info: script('echo "two $greeting"') },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.id,
        name: 'vars',
      });
      await inject(fleet, HOST_VARS);
      const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.id });
      await refused(fleet, HOST_VARS);
      await new Promise((r) => setTimeout(r, 1500));
      await heal(fleet, HOST_VARS);

      const done: JobStatus = await waitFinished(fleet, run.job_instance_id, 30_000);
      assert.equal(done.job_instance.status, 3, JSON.stringify(done.step_instance_list));
      const [first, second] = done.step_instance_list.map((s) => s.step_instance_id);
      const id = fleet.hostIds.get(ip) ?? 0;
      assert.equal(await hostLog(fleet, run.job_instance_id, first ?? 0, id), `one ${ip}\n`);
      assert.equal(await hostLog(fleet, run.job_instance_id, second ?? 0, id), `two from-${ip}\n`);
      assert.match(fleet.server.output(), /the agent reconnects and resends it/);
    });

    test('a callback the store refused after its job ended is sent once the store takes it', async () => {
      const jobId = await jobWithRefusedCallback(fleet, receiver);
      await new Promise((r) => setTimeout(r, 1500));
      await heal(fleet, CALLBACKS);
      await eventually(async () => (receiver.of(jobId).length > 0 ? true : undefined), 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(receiver.of(jobId), [3]);
    });

    test("a confirmation's webhook the store refused is sent once it takes it, the step then waiting", async () => {
      const hook = await callbackReceiver();
      try {
        const call = <T>(name: string, body: Record<string, unknown>) =>
          post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
        const t = await call<{ id: number }>('create_job_template', {
          name: 'confirm with a webhook',
          step_list: [
            {
              name: 'confirm',
              type: 3,
              approval_info: {
                approval_user: { user_list: ['tester'] },
                approval_message: 'go on?',
                notify_channel: ['webhook'],
                webhook_url: hook.url,
              },
            },
          ],
        });
        assert.equal(t.result, true, t.message);
        const p = await call<{ id: number }>('create_job_plan', {
          job_template_id: t.data.id,
          name: 'confirm',
        });
        assert.equal(p.result, true, p.message);
        await inject(fleet, CALLBACKS);
        const run = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: p.data.id });
        assert.equal(run.result, true, run.message);
        await refused(fleet, CALLBACKS);
        await heal(fleet, CALLBACKS);
        await eventually(
          async () => (hook.of(run.data.job_instance_id).length > 0 ? true : undefined),
          20_000,
          'the webhook once the store takes it',
        );
        await eventually(async () => {
          const st = await get<{ job_instance: { status: number } }>(
            fleet.server.url,
            'get_job_instance_status',
            { ...fleet.scope, job_instance_id: run.data.job_instance_id },
            fleet.creds,
          );
          return st.data.job_instance.status === 7 ? true : undefined;
        }, 20_000);
      } finally {
        hook.close();
      }
    });

    test('a callback lost to a crash right after its job ended is sent after the restart', async () => {
      const jobId = await jobWithRefusedCallback(fleet, receiver);
      // Killed while the callback is still refused: only the job's end is stored.
      await fleet.server.kill('SIGKILL');
      await heal(fleet, CALLBACKS);
      fleet.server = await fleet.server.restart();
      await eventually(async () => (receiver.of(jobId).length > 0 ? true : undefined), 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(receiver.of(jobId), [3]);
      assert.match(fleet.server.output(), /queued callbacks lost between an end and its callback/);
    });
  });
}

describe('cluster: a callback lost with the server that ended its job', { skip: !withPg }, () => {
  let c: Cluster;
  let receiver: Receiver;

  before(async () => {
    receiver = await callbackReceiver();
    c = await startCluster({
      servers: 2,
      agents: 1,
      placement: () => [0, 1],
      env: { JOBFLEET_CLUSTER_DEAD_AFTER_MS: '4000', JOBFLEET_CLUSTER_SELF_FENCE_MS: '2500' },
    });
  });
  after(async () => {
    receiver.close();
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
  });

  test('the server that declares the owner dead sends it', async () => {
    const owner = c.via(0);
    const jobId = await jobWithRefusedCallback(owner, receiver);
    // Killed while the callback is still refused, and not started again: only the end is stored.
    await owner.server.kill('SIGKILL');
    await heal(owner, CALLBACKS);
    await eventually(async () => (receiver.of(jobId).length > 0 ? true : undefined), 30_000);
    await new Promise((res) => setTimeout(res, 1000));
    assert.deepEqual(receiver.of(jobId), [3]);
    assert.match(c.servers[1]?.output() ?? '', /queued callbacks lost between an end and its callback/);
  });
});
