/**
 * A store error in the middle of a job's progress (here: the database refusing to store a
 * step's end, as it does while PostgreSQL restarts or a connection is cut) does not leave the
 * job running forever: once the store works again the server carries the job on from what the
 * store says, without a restart. The fault is a real one: a trigger in the server's own database
 * (SQLite or PostgreSQL) raises an error on the step's end for as long as it exists.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const IPS = ['127.0.0.2', '127.0.0.3'];
const FAULT = 'injected fault: the store refuses step ends';

/** Runs statements on the fleet's database from outside the server. */
async function onDatabase(fleet: Fleet, sqliteText: string, pgText: string): Promise<void> {
  if (!fleet.databaseUrl) {
    const db = new SQLite(path.join(fleet.server.dataDir, 'jobfleet.db'));
    try {
      db.exec(sqliteText);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: fleet.databaseUrl });
  await client.connect();
  try {
    await client.query(pgText);
  } finally {
    await client.end();
  }
}

/** From now on, storing any step as ended (3) fails. */
const refuseStepEnds = (fleet: Fleet) =>
  onDatabase(
    fleet,
    `CREATE TRIGGER test_fault BEFORE UPDATE OF status ON step_instance
       WHEN NEW.status = 3 AND OLD.status <> 3 BEGIN SELECT RAISE(ABORT, '${FAULT}'); END;`,
    `CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION '${FAULT}'; END $$;
     CREATE TRIGGER test_fault BEFORE UPDATE ON step_instance FOR EACH ROW
       WHEN (NEW.status = 3 AND OLD.status <> 3) EXECUTE FUNCTION test_fault();`,
  );

const healStore = (fleet: Fleet) =>
  onDatabase(
    fleet,
    'DROP TRIGGER test_fault;',
    'DROP TRIGGER test_fault ON step_instance; DROP FUNCTION test_fault();',
  );

for (const engine of engines()) {
  describe(`a store error midway through a job, on ${engine}`, () => {
    let fleet: Fleet;

    before(async () => {
      fleet = await startFleet(engine, IPS.length);
    });
    after(async () => {
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
      await refuseStepEnds(fleet);
      // The first step's hosts finish while its end is refused; the server says so.
      const deadline = Date.now() + 30_000;
      while (!fleet.server.output().includes(FAULT)) {
        assert.ok(Date.now() < deadline, 'the step end was never refused');
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 1500));
      await healStore(fleet);

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
  });
}
