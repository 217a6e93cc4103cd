/**
 * GET /api/console/step-log-export against real servers on each engine: every file of the
 * archive holds, byte for byte, what get_job_instance_ip_log gives for that host in that attempt.
 * Real agents write a log of several stored chunks (deflated text, then random data stored as it
 * is) bigger than one page of the paged log reader, logs that are empty, and, after a retry, logs
 * that are in the earlier attempt. A simulated fleet of 1,200 hosts (several statements of
 * hosts) is exported after a retry that kept most of them.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { LOG_PAGE_BYTES, LOG_PAGE_HOSTS_PER_STATEMENT } from '../src/store/log-pages.js';
import { admin, eventually, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { queryFleetDatabase } from './helpers/fleet-database.js';
import { BIZ, b64, runScript, startFleet, stopFleets, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';
import { numberedHosts, startSimulatedServer } from './helpers/simulated-fleet.js';
import type { SimulatedFleet } from './helpers/simulated-fleet.js';

const scope = { bk_scope_type: 'biz', bk_scope_id: String(BIZ) };
const byId = (a: number, b: number) => a - b;

interface Step {
  job_instance_id: number;
  step_instance_id: number;
}

interface HostResult {
  bk_host_id: number;
  ip: string;
  status: number;
  exit_code: number;
}

/** A session cookie of a viewer of the business (the export is a console read). */
async function viewerCookie(server: ServerProcess): Promise<string> {
  const password = 'pw-vera-0123456789';
  const made = await admin(server.url, server.adminToken, 'POST', '/users', {
    name: 'vera',
    password,
    platform_admin: false,
  });
  assert.ok(made.result, made.message);
  const roles = await admin(server.url, server.adminToken, 'POST', '/users/vera/roles', {
    roles: [{ scope_type: 'biz', scope_id: BIZ, role: 'viewer' }],
  });
  assert.ok(roles.result, roles.message);
  const res = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'vera', password }),
  });
  assert.equal(((await res.json()) as { result: boolean }).result, true);
  return (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

function exportUrl(server: ServerProcess, step: Step, extra: Record<string, number> = {}): string {
  const q = new URLSearchParams(
    Object.entries({ ...scope, ...step, ...extra }).map(([k, v]): [string, string] => [k, String(v)]),
  );
  return `${server.url}/api/console/step-log-export?${q.toString()}`;
}

/** The archive's entries, in its order. */
async function exported(url: string, cookie: string): Promise<[string, Buffer][]> {
  const res = await fetch(url, { headers: { cookie } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/gzip');
  const extract = tar.extract();
  const entries: [string, Buffer][] = [];
  const read = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const part of entry) parts.push(part as Buffer);
      entries.push([entry.header.name, Buffer.concat(parts)]);
    }
  })();
  extract.end(zlib.gunzipSync(Buffer.from(await res.arrayBuffer())));
  await read;
  return entries;
}

/** get_job_instance_ip_log of one host in one attempt, as bytes (none: empty). */
async function singleLog(
  server: ServerProcess,
  creds: ApiCreds,
  step: Step,
  executeCount: number,
  hostId: number,
): Promise<Buffer> {
  const r = await get<{ log_content: string | null }>(
    server.url,
    'get_job_instance_ip_log',
    { ...scope, ...step, execute_count: executeCount, bk_host_id: hostId },
    creds,
  );
  assert.equal(r.result, true, r.message);
  return Buffer.from(r.data.log_content ?? '', 'utf8');
}

/** The hosts' results in the step's latest attempt. */
async function results(server: ServerProcess, creds: ApiCreds, step: Step): Promise<HostResult[]> {
  const r = await get<{ step_instance_list: { step_ip_result_list: HostResult[] | null }[] }>(
    server.url,
    'get_job_instance_status',
    { ...scope, job_instance_id: step.job_instance_id, return_ip_result: true },
    creds,
  );
  assert.equal(r.result, true, r.message);
  const list = r.data.step_instance_list[0]?.step_ip_result_list ?? [];
  return [...list].sort((a, b) => a.bk_host_id - b.bk_host_id);
}

const fileOf = (h: { bk_host_id: number; ip: string }) => `${h.ip}_${h.bk_host_id}.log`;

/** hosts.tsv as the export writes it: every host of the attempt, by host id. */
function index(hosts: readonly HostResult[]): string {
  const lines = hosts.map((h) => `${h.bk_host_id}\t0:${h.ip}\t${h.status}\t${h.exit_code}\t${fileOf(h)}`);
  return ['bk_host_id\tip\tstatus\texit_code\tfile', ...lines, ''].join('\n');
}

/**
 * Checks an archive of attempt `executeCount`: its entries are the hosts whose output is in
 * `byAttempt`'s attempts (the earliest first), by host id within each, then hosts.tsv; each
 * file is the host's single-host log of that attempt.
 */
async function checkArchive(
  server: ServerProcess,
  creds: ApiCreds,
  step: Step,
  executeCount: number,
  entries: [string, Buffer][],
  hosts: readonly HostResult[],
  byAttempt: Map<number, number[]>,
): Promise<void> {
  const byHost = new Map(hosts.map((h) => [h.bk_host_id, h]));
  const nameOf = (id: number) => fileOf(byHost.get(id) ?? { bk_host_id: id, ip: '' });
  const order = [...byAttempt]
    .sort(([a], [b]) => a - b)
    .flatMap(([, ids]) => [...ids].sort(byId).map(nameOf));
  assert.deepEqual(entries.map(([name]) => name).sort(), [...order, 'hosts.tsv'].sort());
  assert.equal(entries.at(-1)?.[1].toString('utf8'), index(hosts));
  const files = new Map(entries);
  const ids = hosts.map((h) => h.bk_host_id);
  for (let i = 0; i < ids.length; i += 16) {
    await Promise.all(
      ids.slice(i, i + 16).map(async (id) => {
        const expected = await singleLog(server, creds, step, executeCount, id);
        const file = files.get(nameOf(id));
        assert.ok(file, `a file for host ${id}`);
        assert.ok(
          file.equals(expected),
          `host ${id}: ${file.length} bytes exported, ${expected.length} read`,
        );
      }),
    );
  }
  assert.deepEqual(
    entries.map(([name]) => name),
    [...order, 'hosts.tsv'],
    'by attempt, then by host id',
  );
}

// Host .2 writes text (stored deflated) then random data (stored as it is), more than a page in
// all; .3 and .5 write nothing; .4 and .5 fail, so a retry runs them again, and .4 writes
// something new each run.
const SCRIPT = `case $TEST_AGENT_IP in
  127.0.0.2) seq 1 300000 | sed 's/$/ ✓ ü/'; head -c 7000000 /dev/urandom | base64 ;;
  127.0.0.3) ;;
  127.0.0.4) echo "run $(cat /proc/sys/kernel/random/uuid) ✓"; exit 3 ;;
  *) exit 5 ;;
esac
`;

for (const engine of engines()) {
  describe(`step log export of real agents' logs on ${engine}`, () => {
    let fleet: Fleet;
    let cookie: string;
    let step: Step;
    const ip = (id: number) => [...fleet.hostIds].find(([, h]) => h === id)?.[0] ?? '';
    const idOf = (ip: string) => fleet.hostIds.get(ip) ?? 0;

    before(async () => {
      fleet = await startFleet(engine, 4, { args: ['--log-cap-bytes', String(64 * 1024 * 1024)] });
      cookie = await viewerCookie(fleet.server);
      const r = await runScript(fleet, {
        script_content: b64(SCRIPT),
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(r.result, true, r.message);
      step = r.data;
      await waitFinished(fleet, step.job_instance_id, 120_000);
    });
    after(stopFleets);

    test('a log of several chunks over more than a page, empty logs, and kept hosts read from their attempt', async () => {
      const big = idOf('127.0.0.2');
      const chunks = await queryFleetDatabase<{ encoding: number; bytes: number }>(
        fleet,
        `select encoding, length(data) as bytes from log_chunk
          where step_instance_id = ${step.step_instance_id} and host_id = ${big}`,
        `select encoding, length(data) as bytes from log_chunk
          where step_instance_id = ${step.step_instance_id} and host_id = ${big}`,
      );
      assert.ok(chunks.length >= 3, 'the log is stored in several chunks');
      assert.ok(
        chunks.some((c) => c.encoding === 1) && chunks.some((c) => c.encoding === 0),
        'deflated chunks and chunks stored as they are',
      );
      assert.ok(
        chunks.reduce((n, c) => n + Number(c.bytes), 0) > LOG_PAGE_BYTES,
        'the log is read in more than one page',
      );
      const first = await results(fleet.server, fleet.creds, step);
      const all = first.map((h) => h.bk_host_id);
      await checkArchive(
        fleet.server,
        fleet.creds,
        step,
        0,
        await exported(exportUrl(fleet.server, step), cookie),
        first,
        new Map([[0, all]]),
      );

      const retry = await post(
        fleet.server.url,
        'operate_step_instance',
        { ...scope, ...step, operation_code: 2 },
        fleet.creds,
      );
      assert.equal(retry.result, true, retry.message);
      await eventually(async () => {
        const st = await get<{ step_instance_list: { execute_count: number }[] }>(
          fleet.server.url,
          'get_job_instance_status',
          { ...scope, job_instance_id: step.job_instance_id },
          fleet.creds,
        );
        return st.data.step_instance_list[0]?.execute_count === 1 ? true : undefined;
      });
      await waitFinished(fleet, step.job_instance_id, 60_000);
      const second = await results(fleet.server, fleet.creds, step);
      const kept = [idOf('127.0.0.2'), idOf('127.0.0.3')];
      const ranAgain = [idOf('127.0.0.4'), idOf('127.0.0.5')];
      assert.deepEqual(
        second.filter((h) => h.status === 3).map((h) => h.bk_host_id),
        [...kept].sort(byId),
        'the hosts that succeeded are kept',
      );
      const attempt2 = await exported(exportUrl(fleet.server, step), cookie);
      await checkArchive(
        fleet.server,
        fleet.creds,
        step,
        1,
        attempt2,
        second,
        new Map([
          [0, kept],
          [1, ranAgain],
        ]),
      );
      const files = new Map(attempt2);
      const fileAt = (id: number) =>
        files.get(fileOf({ bk_host_id: id, ip: ip(id) }))?.toString('utf8') ?? '';
      assert.ok(fileAt(big).startsWith('1 ✓ ü\n2 ✓ ü\n'), 'the kept log is the first run');
      assert.equal(fileAt(idOf('127.0.0.3')), '');
      assert.equal(fileAt(idOf('127.0.0.5')), '');
      // The host run again shows its new run, not the first.
      const rerun = fileAt(idOf('127.0.0.4'));
      assert.match(rerun, /^run .+ ✓\n$/);
      assert.notEqual(
        rerun,
        (await singleLog(fleet.server, fleet.creds, step, 0, idOf('127.0.0.4'))).toString(),
      );
      // The first attempt is exported as it was.
      await checkArchive(
        fleet.server,
        fleet.creds,
        step,
        0,
        await exported(exportUrl(fleet.server, step, { execute_count: 0 }), cookie),
        first,
        new Map([[0, all]]),
      );
    });

    test('a download given up part way leaves the server up and answering exports', async () => {
      const res = await fetch(exportUrl(fleet.server, step), { headers: { cookie } });
      const reader = res.body?.getReader();
      assert.ok(reader);
      const part = await reader.read();
      assert.equal(part.done, false);
      await reader.cancel();
      const entries = await exported(exportUrl(fleet.server, step), cookie);
      assert.equal(fleet.server.proc.exitCode, null, 'the server is still running');
      assert.equal(entries.length, fleet.hostIds.size + 1);
      assert.equal(entries.at(-1)?.[0], 'hosts.tsv');
    });
  });

  describe(`step log export of many hosts on ${engine}`, () => {
    const HOSTS = 1200;
    let server: ServerProcess;
    let fleet: SimulatedFleet;
    let creds: ApiCreds;
    let cookie: string;
    // Host n (1-based, the simulator's order) prints by its range; 501-800 fail, 801-1200 print nothing.
    const RULES = 'sim-output 1-500:alpha-ü 501-800:beta:1';
    const hosts = (from: number, to: number) => numberedHosts(fleet, from, to);

    before(async () => {
      const databaseUrl = await freshDatabase(engine);
      ({ server, fleet, creds } = await startSimulatedServer({
        databaseUrl,
        biz: BIZ,
        bizName: 'export business',
        hosts: HOSTS,
      }));
      cookie = await viewerCookie(server);
    });
    after(async () => {
      await fleet?.stop();
      await stopAll();
      await dropFreshDatabases();
    });

    const finished = (job: number) => waitFinished({ server, scope, creds }, job, 120_000);

    test('after a retry, each host is exported from the attempt that ran it, over several statements of hosts', async () => {
      const r = await post<Step>(
        server.url,
        'fast_execute_script',
        {
          ...scope,
          script_language: 1,
          script_content: b64('echo simulated'),
          script_param: b64(RULES),
          account_alias: os.userInfo().username,
          target_server: { host_id_list: fleet.hostIds },
        },
        creds,
      );
      assert.equal(r.result, true, r.message);
      const step = r.data;
      await finished(step.job_instance_id);
      const retry = await post(
        server.url,
        'operate_step_instance',
        { ...scope, ...step, operation_code: 2 },
        creds,
      );
      assert.equal(retry.result, true, retry.message);
      await eventually(async () => {
        const st = await get<{ step_instance_list: { execute_count: number }[] }>(
          server.url,
          'get_job_instance_status',
          { ...scope, job_instance_id: step.job_instance_id },
          creds,
        );
        return st.data.step_instance_list[0]?.execute_count === 1 ? true : undefined;
      });
      await finished(step.job_instance_id);

      const latest = await results(server, creds, step);
      assert.equal(latest.length, HOSTS);
      const kept = [...hosts(1, 500), ...hosts(801, 1200)];
      assert.ok(kept.length > LOG_PAGE_HOSTS_PER_STATEMENT && HOSTS - kept.length > 0);
      assert.deepEqual(
        latest.filter((h) => h.status === 3).map((h) => h.bk_host_id),
        [...kept].sort(byId),
      );
      const entries = await exported(exportUrl(server, step), cookie);
      await checkArchive(
        server,
        creds,
        step,
        1,
        entries,
        latest,
        new Map([
          [0, kept],
          [1, hosts(501, 800)],
        ]),
      );
      // What the single-host reads gave, so the comparison above compared something.
      const files = new Map(entries);
      const textOf = (id: number) =>
        files
          .get(fileOf(latest.find((h) => h.bk_host_id === id) ?? { bk_host_id: id, ip: '' }))
          ?.toString('utf8');
      for (const id of hosts(1, 500)) assert.equal(textOf(id), 'alpha-ü\n');
      for (const id of hosts(501, 800)) assert.equal(textOf(id), 'beta\n');
      for (const id of hosts(801, 1200)) assert.equal(textOf(id), '');
    });
  });
}
