/**
 * get_step_instance_status's keyword filter end to end. Real agents write large outputs, stored
 * in several chunks (deflated for text, as they are for random data, more than one page of the
 * search): a keyword that spans any two chunks is found, multi-byte text matches as UTF-8, and
 * a host matches only its own output. A simulated fleet of 3,000 hosts (several statements of
 * hosts) is filtered as it ran: by attempt after a retry, by rolling batch, with the other filters.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import { LOG_PAGE_HOSTS_PER_STATEMENT, LOG_PAGE_BYTES } from '../src/store/log-pages.js';
import { eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { queryFleetDatabase } from './helpers/fleet-database.js';
import { BIZ, b64, hostLog, runScript, startFleet, stopFleets, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';
import { numberedHosts, startSimulatedServer } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';

interface StatusReply {
  execute_count: number;
  step_result_group_list?: {
    result_type: number;
    host_size: number;
    host_result_list: { bk_host_id: number; ip: string }[];
  }[];
}

const scope = { bk_scope_type: 'biz', bk_scope_id: String(BIZ) };
const byId = (a: number, b: number) => a - b;

async function stepStatus(
  server: { url: string },
  creds: ApiCreds,
  ids: { job_instance_id: number; step_instance_id: number },
  filters: Record<string, unknown>,
): Promise<StatusReply> {
  const r = await get<StatusReply>(
    server.url,
    'get_step_instance_status',
    { ...scope, ...ids, ...filters },
    creds,
  );
  assert.equal(r.result, true, r.message);
  return r.data;
}

/** The hosts listed, by id. */
function listed(reply: StatusReply): number[] {
  return (reply.step_result_group_list ?? [])
    .flatMap((g) => g.host_result_list.map((h) => h.bk_host_id))
    .sort(byId);
}

/** [status, hosts counted, hosts listed] of each group. */
function groups(reply: StatusReply): [number, number, number][] {
  return (reply.step_result_group_list ?? [])
    .map((g): [number, number, number] => [g.result_type, g.host_size, g.host_result_list.length])
    .sort((a, b) => a[0] - b[0]);
}

interface BatchLogs {
  script_task_logs: { bk_host_id: number; ip: string; log_content: string | null }[];
}

/** batch_get_job_instance_ip_log of hosts by id (as [host, log] in the reply's order). */
async function batchLogs(
  server: { url: string },
  creds: ApiCreds,
  ids: { job_instance_id: number; step_instance_id: number },
  select: Record<string, unknown>,
): Promise<[number, string | null][]> {
  const r = await post<BatchLogs>(
    server.url,
    'batch_get_job_instance_ip_log',
    { ...scope, ...ids, ...select },
    creds,
  );
  assert.equal(r.result, true, r.message);
  return r.data.script_task_logs.map((l) => [l.bk_host_id, l.log_content]);
}

// Text (deflated when stored), random data (stored as it is) and a line of multi-byte text.
const SCRIPT = `case $TEST_AGENT_IP in
  127.0.0.2) seq 1 1000000 | sed 's/$/ ✓ ü/' ;;
  127.0.0.3) head -c 9000000 /dev/urandom | base64 ;;
  *) echo "small ✓ output" ;;
esac
`;

interface StoredChunk {
  host_id: number;
  offset: number;
  encoding: number;
  bytes: number;
}

for (const engine of engines()) {
  describe(`keyword filter over large outputs on ${engine}`, () => {
    let fleet: Fleet;
    let step: { job_instance_id: number; step_instance_id: number };
    let text: number;
    let random: number;
    let small: number;

    before(async () => {
      fleet = await startFleet(engine, 3, { args: ['--log-cap-bytes', String(64 * 1024 * 1024)] });
      text = fleet.hostIds.get('127.0.0.2') ?? 0;
      random = fleet.hostIds.get('127.0.0.3') ?? 0;
      small = fleet.hostIds.get('127.0.0.4') ?? 0;
      const r = await runScript(fleet, {
        script_content: b64(SCRIPT),
        target_server: { host_id_list: [text, random, small] },
      });
      assert.equal(r.result, true, r.message);
      step = r.data;
      const st = await waitFinished(fleet, step.job_instance_id, 120_000);
      assert.equal(st.job_instance.status, 3);
    });
    after(stopFleets);

    const found = async (keyword: string, filters: Record<string, unknown> = {}) =>
      listed(await stepStatus(fleet.server, fleet.creds, step, { keyword, ...filters }));

    test('a keyword across any two stored chunks is found, deflated or not, over several pages', async () => {
      const chunks = await queryFleetDatabase<StoredChunk>(
        fleet,
        `select host_id, "offset", encoding, length(data) as bytes from log_chunk
          where step_instance_id = ${step.step_instance_id} order by host_id, "offset"`,
        `select host_id::integer, "offset"::integer, encoding, length(data) as bytes from log_chunk
          where step_instance_id = ${step.step_instance_id} order by host_id, "offset"`,
      );
      const of = (host: number) => chunks.filter((c) => c.host_id === host);
      assert.ok(of(text).length >= 2, 'the text is stored in several chunks');
      assert.ok(
        of(text).some((c) => c.encoding === 1),
        'the text is stored deflated',
      );
      assert.ok(of(random).length >= 2, 'the random data is stored in several chunks');
      assert.ok(
        of(random).reduce((n, c) => n + c.bytes, 0) > LOG_PAGE_BYTES,
        'the random data is searched in more than one page',
      );
      let boundaries = 0;
      for (const host of [text, random]) {
        const log = Buffer.from(
          (await hostLog(fleet, step.job_instance_id, step.step_instance_id, host)) ?? '',
        );
        for (const { offset } of of(host).slice(1)) {
          // The lines on either side of the boundary: found nowhere else, in this log or another.
          const start = log.lastIndexOf('\n', offset - 2);
          const end = log.indexOf('\n', offset) + 1;
          assert.ok(start >= 0 && start < offset && end > offset);
          const keyword = log.subarray(start, end).toString('utf8');
          assert.deepEqual(await found(keyword), [host], `the lines around byte ${offset} of host ${host}`);
          boundaries++;
        }
      }
      assert.ok(boundaries >= 2);
    });

    test('multi-byte text matches as UTF-8; each host only on its own output', async () => {
      assert.deepEqual(await found('1 ✓ ü\n2 ✓ ü\n'), [text]);
      assert.deepEqual(await found('999999 ✓ ü\n1000000 ✓ ü\n'), [text], 'the very end of the log');
      assert.deepEqual(await found('✓'), [text, small].sort(byId));
      assert.deepEqual(await found('ü'), [text]);
      assert.deepEqual(await found('small ✓ output\n'), [small]);
      assert.deepEqual(await found('1000001 ✓'), []);
      assert.deepEqual(await found('no such text'), []);
      // The other filters apply as before.
      assert.deepEqual(await found('✓', { search_ip: '127.0.0.4' }), [small]);
      const capped = await stepStatus(fleet.server, fleet.creds, step, {
        keyword: '✓',
        max_host_num_per_group: 1,
      });
      assert.deepEqual(groups(capped), [[9, 2, 1]]);
    });

    test('batch_get_job_instance_ip_log reads the same logs as one host at a time, in the order asked', async () => {
      const one = async (host: number) => hostLog(fleet, step.job_instance_id, step.step_instance_id, host);
      const expected = new Map<number, string | null>();
      for (const host of [text, random, small]) expected.set(host, await one(host));
      assert.ok((expected.get(random)?.length ?? 0) > LOG_PAGE_BYTES, 'a log of more than one page');
      const asked = [small, random, text];
      assert.deepEqual(
        await batchLogs(fleet.server, fleet.creds, step, { host_id_list: asked }),
        asked.map((h) => [h, expected.get(h)]),
      );
      // By address, one asked twice: answered twice, as BK-JOB does.
      const byIp = await batchLogs(fleet.server, fleet.creds, step, {
        ip_list: ['127.0.0.3', '127.0.0.4', '127.0.0.3'].map((ip) => ({ bk_cloud_id: 0, ip })),
      });
      assert.deepEqual(
        byIp,
        [random, small, random].map((h) => [h, expected.get(h)]),
      );
    });
  });

  describe(`keyword filter over many hosts on ${engine}`, () => {
    const HOSTS = 3000;
    let server: ServerProcess;
    let fleet: SimulatedFleet;
    let creds: ApiCreds;
    // Host n (1-based, the simulator's order) prints by its range; the last ones fail.
    const RULES = 'sim-output 1-1250:needle-a 1251-2500:hay 2501-3000:needle-b:1';
    const hosts = (from: number, to: number) => numberedHosts(fleet, from, to);

    before(async () => {
      const databaseUrl = await freshDatabase(engine);
      ({ server, fleet, creds } = await startSimulatedServer({
        databaseUrl,
        biz: BIZ,
        bizName: 'keyword business',
        hosts: HOSTS,
      }));
    });
    after(async () => {
      await fleet?.stop();
      await stopAll();
      await dropFreshDatabases();
    });

    async function run(extra: Record<string, unknown> = {}) {
      const r = await post<{ job_instance_id: number; step_instance_id: number }>(
        server.url,
        'fast_execute_script',
        {
          ...scope,
          script_language: 1,
          script_content: b64('echo simulated'),
          script_param: b64(RULES),
          account_alias: os.userInfo().username,
          target_server: { host_id_list: fleet.hostIds },
          ...extra,
        },
        creds,
      );
      assert.equal(r.result, true, r.message);
      await finished(r.data.job_instance_id);
      return r.data;
    }

    const finished = (job: number) => waitFinished({ server, scope, creds }, job, 120_000);

    test('each host is searched in the attempt that ran it, over several statements of hosts', async () => {
      assert.ok(HOSTS > 2 * LOG_PAGE_HOSTS_PER_STATEMENT);
      const step = await run();
      const found = async (keyword: string, filters: Record<string, unknown> = {}) =>
        listed(await stepStatus(server, creds, step, { keyword, ...filters }));
      assert.deepEqual(await found('needle'), [...hosts(1, 1250), ...hosts(2501, 3000)].sort(byId));
      assert.deepEqual(await found('hay\n'), hosts(1251, 2500));
      assert.deepEqual(await found('needle-b'), hosts(2501, 3000));
      assert.deepEqual(await found('needle-c'), []);

      const retry = await post(
        server.url,
        'operate_step_instance',
        { ...scope, ...step, operation_code: 2 },
        creds,
      );
      assert.equal(retry.result, true, retry.message);
      await eventually(async () => {
        const r = await stepStatus(server, creds, step, {});
        return r.execute_count === 1 ? true : undefined;
      });
      await finished(step.job_instance_id);
      // 2,500 hosts kept as "last success" (3) are searched in the first attempt, the failed
      // ones, run again, in the second.
      const needle = await stepStatus(server, creds, step, { keyword: 'needle' });
      assert.equal(needle.execute_count, 1);
      assert.deepEqual(groups(needle), [
        [3, 1250, 1250],
        [104, 500, 500],
      ]);
      assert.deepEqual(listed(needle), [...hosts(1, 1250), ...hosts(2501, 3000)].sort(byId));
      assert.deepEqual(await found('hay'), hosts(1251, 2500));
      assert.deepEqual(await found('needle-a', { execute_count: 0 }), hosts(1, 1250));
      // The other filters apply to what the keyword keeps, as before.
      assert.deepEqual(
        groups(await stepStatus(server, creds, step, { keyword: 'needle', max_host_num_per_group: 7 })),
        [
          [3, 1250, 7],
          [104, 500, 7],
        ],
      );
      assert.deepEqual(groups(await stepStatus(server, creds, step, { keyword: 'needle', status: 104 })), [
        [3, 1250, 0],
        [104, 500, 500],
      ]);
      const kept = (needle.step_result_group_list ?? []).flatMap((g) => g.host_result_list);
      const ip = kept[0]?.ip ?? '';
      const withIp = kept.filter((h) => h.ip.includes(ip)).map((h) => h.bk_host_id);
      assert.deepEqual(await found('needle', { search_ip: ip }), withIp.sort(byId));

      // A batch of logs reads each kept host's from the attempt that ran it, as a read of one does.
      const asked = [...hosts(1001, 1250), ...hosts(2501, 2750)].reverse();
      const logs = await batchLogs(server, creds, step, { host_id_list: asked });
      assert.deepEqual(
        logs.map(([h]) => h),
        asked,
      );
      for (const [host, log] of logs) {
        const one = await get<{ log_content: string | null }>(
          server.url,
          'get_job_instance_ip_log',
          { ...scope, ...step, bk_host_id: host },
          creds,
        );
        assert.equal(log, one.data.log_content, `host ${host}`);
        assert.match(log ?? '', host > 0 && hosts(1001, 1250).includes(host) ? /needle-a/ : /needle-b/);
      }
    });

    test('rolling batches: the current batch, one batch, or every batch', async () => {
      const step = await run({ rolling_config: { mode: 2, expression: '1000' } });
      const found = async (keyword: string, filters: Record<string, unknown> = {}) =>
        listed(await stepStatus(server, creds, step, { keyword, ...filters }));
      assert.deepEqual(await found('needle'), hosts(2501, 3000), 'the last batch');
      assert.deepEqual(await found('needle', { batch: 1 }), hosts(1, 1000));
      assert.deepEqual(await found('needle', { batch: 2 }), hosts(1001, 1250));
      assert.deepEqual(
        await found('needle', { batch: 0 }),
        [...hosts(1, 1250), ...hosts(2501, 3000)].sort(byId),
      );
      assert.deepEqual(await found('hay', { batch: 0 }), hosts(1251, 2500));
    });
  });
}
