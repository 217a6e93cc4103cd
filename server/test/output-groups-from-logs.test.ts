/**
 * Output groups of hosts whose fingerprints were not taken while their output streamed: they
 * are computed from the stored logs, many hosts a statement, and must be the groups the
 * streamed fingerprints gave, under every set of normalisers. Real agents write logs of several
 * chunks, no log, logs naming their host, times and numbers, and bytes that are not UTF-8; after
 * a retry the hosts kept from the first attempt (whose fingerprints the new attempt never has)
 * take the fingerprints of the attempt that ran them. A simulated fleet of 1,200 hosts does the
 * same over several statements of hosts.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import { NORMALISED_HEAD_BYTES } from '../src/outputs/output-fingerprint.js';
import { LOG_PAGE_HOSTS_PER_STATEMENT } from '../src/store/log-pages.js';
import { eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { onFleetDatabase, queryFleetDatabase } from './helpers/fleet-database.js';
import { BIZ, b64, runScript, startFleet, stopFleets, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';
import { numberedHosts, startSimulatedServer } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';

const scope = { bk_scope_type: 'biz', bk_scope_id: String(BIZ) };
const byId = (a: number, b: number) => a - b;

/** Every set of normalisers the API takes. */
const SETS = [
  '',
  'host',
  'numbers',
  'timestamps',
  'host,numbers',
  'host,timestamps',
  'numbers,timestamps',
  'host,numbers,timestamps',
];

interface Step {
  job_instance_id: number;
  step_instance_id: number;
}

interface Groups {
  groups: {
    group_id: string;
    fingerprint: string | null;
    host_count: number;
    host_list: { bk_host_id: number }[];
  }[];
}

/** Where the fleet's server and database are (a fleet of real agents, or a simulated one). */
interface Target {
  server: ServerProcess;
  creds: ApiCreds;
  databaseUrl: string | undefined;
}

/** [group id, its hosts] of each group of an attempt, under each set of normalisers. */
async function groupsOf(
  t: Target,
  step: Step,
  executeCount: number,
): Promise<Map<string, [string, number[]][]>> {
  const out = new Map<string, [string, number[]][]>();
  for (const normalisers of SETS) {
    const r = await get<Groups>(
      t.server.url,
      'get_step_output_groups',
      { ...scope, ...step, execute_count: executeCount, normalisers, length: 1000, group_length: 1000 },
      t.creds,
    );
    assert.equal(r.result, true, r.message);
    for (const g of r.data.groups) {
      assert.ok(g.fingerprint, `group ${g.group_id} of finished hosts has a fingerprint`);
      assert.equal(g.host_list.length, g.host_count);
    }
    out.set(
      normalisers,
      r.data.groups.map((g) => [g.group_id, g.host_list.map((h) => h.bk_host_id)]),
    );
  }
  return out;
}

/** Each host's fingerprint under each set of normalisers, from groupsOf. */
function fingerprintsByHost(groups: Map<string, [string, number[]][]>): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const normalisers of SETS) {
    for (const [groupId, hosts] of groups.get(normalisers) ?? []) {
      const fingerprint = groupId.slice(groupId.lastIndexOf(':') + 1);
      for (const h of hosts) out.set(h, [...(out.get(h) ?? []), fingerprint]);
    }
  }
  return out;
}

const asFleet = (t: Target) => ({ server: t.server, databaseUrl: t.databaseUrl }) as Fleet;

/** Stored fingerprint rows of an attempt. */
async function storedCount(t: Target, step: Step, executeCount: number): Promise<number> {
  const where = `where step_instance_id = ${step.step_instance_id} and execute_count = ${executeCount}`;
  const [row] = await queryFleetDatabase<{ n: number }>(
    asFleet(t),
    `select count(*) as n from output_fingerprint ${where}`,
    `select count(*)::integer as n from output_fingerprint ${where}`,
  );
  return Number(row?.n ?? 0);
}

/** Waits until the streamed fingerprints of `hosts` hosts of an attempt are stored. */
async function streamed(t: Target, step: Step, executeCount: number, hosts: number): Promise<void> {
  await eventually(
    async () => ((await storedCount(t, step, executeCount)) === hosts ? true : undefined),
    30_000,
    'streamed fingerprints stored',
  );
}

async function forget(t: Target, step: Step, executeCount: number): Promise<void> {
  const text = `DELETE FROM output_fingerprint WHERE step_instance_id = ${step.step_instance_id} AND execute_count = ${executeCount};`;
  await onFleetDatabase(asFleet(t), text, text);
  assert.equal(await storedCount(t, step, executeCount), 0);
}

async function retryFailed(t: Target, step: Step): Promise<void> {
  const r = await post(
    t.server.url,
    'operate_step_instance',
    { ...scope, ...step, operation_code: 2 },
    t.creds,
  );
  assert.equal(r.result, true, r.message);
  await eventually(
    async () => {
      const st = await get<{ finished: boolean; step_instance_list: { execute_count: number }[] }>(
        t.server.url,
        'get_job_instance_status',
        { ...scope, job_instance_id: step.job_instance_id },
        t.creds,
      );
      return st.data.finished && st.data.step_instance_list[0]?.execute_count === 1 ? true : undefined;
    },
    120_000,
    'the retry to finish',
  );
}

/**
 * The groups of attempt 0 from the logs equal the streamed ones; after a retry, the kept hosts'
 * fingerprints (from the logs of attempt 0) equal their streamed ones of attempt 0, and the
 * groups of attempt 1 read again from the logs equal those first computed.
 */
async function checkFromLogs(t: Target, step: Step, hosts: number, kept: readonly number[]): Promise<void> {
  await streamed(t, step, 0, hosts);
  const live = await groupsOf(t, step, 0);
  await forget(t, step, 0);
  assert.deepEqual(await groupsOf(t, step, 0), live, 'attempt 0 from the logs');
  assert.equal(await storedCount(t, step, 0), hosts, 'the fingerprints read from the logs are stored');
  assert.deepEqual(await groupsOf(t, step, 0), live, 'attempt 0 from the stored fingerprints');

  await retryFailed(t, step);
  await streamed(t, step, 1, hosts - kept.length);
  const second = await groupsOf(t, step, 1);
  const before = fingerprintsByHost(live);
  const now = fingerprintsByHost(second);
  for (const h of kept) assert.deepEqual(now.get(h), before.get(h), `kept host ${h} keeps its fingerprints`);
  assert.equal(now.size, hosts);
  await forget(t, step, 1);
  assert.deepEqual(await groupsOf(t, step, 1), second, 'attempt 1 from the logs');
}

// Host .2 writes several chunks, past the normalised head (NORMALISED_HEAD_BYTES), ending in a
// line naming itself and the time; .3 names itself, with numbers; .4 writes nothing; .5 and .6
// a time and a PID (.6 then fails); .7 ends in a byte that is not UTF-8, and fails.
const SCRIPT = `case $TEST_AGENT_IP in
  127.0.0.2) yes 'a line of plain text' | head -n 420000; echo "$TEST_AGENT_IP at $(date +%s%N)" ;;
  127.0.0.3) seq 1 20000 | sed "s/^/$TEST_AGENT_IP line /" ;;
  127.0.0.4) ;;
  127.0.0.5) echo "checked at $(date '+%Y-%m-%d %H:%M:%S') by pid $$" ;;
  127.0.0.6) echo "checked at $(date '+%Y-%m-%d %H:%M:%S') by pid $$"; exit 2 ;;
  *) printf 'half a character \\303'; exit 2 ;;
esac
`;

for (const engine of engines()) {
  describe(`output groups from stored logs of real agents on ${engine}`, () => {
    let fleet: Fleet;

    before(async () => {
      fleet = await startFleet(engine, 6, { args: ['--log-cap-bytes', String(64 * 1024 * 1024)] });
    });
    after(stopFleets);

    test('groups from the logs equal the streamed ones, and kept hosts take those of their attempt', async () => {
      const r = await runScript(fleet, {
        script_content: b64(SCRIPT),
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(r.result, true, r.message);
      await waitFinished(fleet, r.data.job_instance_id, 60_000);
      const where = `where step_instance_id = ${r.data.step_instance_id} and host_id = ${fleet.hostIds.get('127.0.0.2') ?? 0}`;
      const [stored] = await queryFleetDatabase<{ n: number }>(
        fleet,
        `select count(*) as n from log_chunk ${where}`,
        `select count(*)::integer as n from log_chunk ${where}`,
      );
      assert.ok(Number(stored?.n) >= 2, 'a log of several chunks');
      const [task] = await queryFleetDatabase<{ bytes: number }>(
        fleet,
        `select log_bytes as bytes from host_task ${where}`,
        `select log_bytes::integer as bytes from host_task ${where}`,
      );
      assert.ok(Number(task?.bytes) > NORMALISED_HEAD_BYTES, 'a log longer than the normalised head');
      const kept = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map(
        (ip) => fleet.hostIds.get(ip) ?? 0,
      );
      await checkFromLogs(fleet, r.data, fleet.hostIds.size, kept);
    });
  });

  describe(`output groups from stored logs of many hosts on ${engine}`, () => {
    const HOSTS = 1200;
    let target: Target;
    let fleet: SimulatedFleet;
    // Host n (1-based, the simulator's order) prints by its range; 801-1000 fail, 1001-1200 print nothing.
    const RULES = 'sim-output 1-400:disk-ok-42 401-800:disk-ok-43 801-1000:no-disk-7:1';
    const hosts = (from: number, to: number) => numberedHosts(fleet, from, to);

    before(async () => {
      const databaseUrl = await freshDatabase(engine);
      const started = await startSimulatedServer({
        databaseUrl,
        biz: BIZ,
        bizName: 'groups business',
        hosts: HOSTS,
      });
      fleet = started.fleet;
      target = { server: started.server, creds: started.creds, databaseUrl };
    });
    after(async () => {
      await fleet?.stop();
      await stopAll();
      await dropFreshDatabases();
    });

    test('over several statements of hosts, by attempt after a retry', async () => {
      const kept = [...hosts(1, 800), ...hosts(1001, 1200)];
      assert.ok(kept.length > LOG_PAGE_HOSTS_PER_STATEMENT);
      const r = await post<Step>(
        target.server.url,
        'fast_execute_script',
        {
          ...scope,
          script_language: 1,
          script_content: b64('echo simulated'),
          script_param: b64(RULES),
          account_alias: os.userInfo().username,
          target_server: { host_id_list: fleet.hostIds },
        },
        target.creds,
      );
      assert.equal(r.result, true, r.message);
      await eventually(
        async () => {
          const st = await get<{ finished: boolean }>(
            target.server.url,
            'get_job_instance_status',
            { ...scope, job_instance_id: r.data.job_instance_id },
            target.creds,
          );
          return st.data.finished ? true : undefined;
        },
        120_000,
        'the job to finish',
      );
      await checkFromLogs(target, r.data, HOSTS, kept);
      // The groups themselves, so that equal groups above are not equally wrong.
      const numbers = (await groupsOf(target, r.data, 1)).get('numbers') ?? [];
      const byFirst = (a: number[], b: number[]) => (a[0] ?? 0) - (b[0] ?? 0);
      assert.deepEqual(
        numbers.map(([, ids]) => [...ids].sort(byId)).sort(byFirst),
        [hosts(1, 800), hosts(801, 1000), hosts(1001, 1200)].sort(byFirst),
      );
    });
  });
}
