/**
 * Cluster mode features on three servers sharing PostgreSQL: file steps whose source agent is
 * held by another server than the step's owner and its targets, a source agent on no server,
 * agent status in the inventory as every server sees it, draining a server on request, and
 * removing a host through a server that does not hold its agent.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { admin, eventually, get, post } from './helpers/api-client.js';
import {
  agentFileRoots,
  checkInvariants,
  clusterScript,
  serverIdOf,
  sessionsOf,
  startCluster,
  waitJobFinished,
} from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { b64, hostStatuses, runScript } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

describe('cluster features: cross-server file sources, agent status, drain', { skip: !withPg }, () => {
  let c: Cluster;
  const roots = agentFileRoots(IPS);
  const file = roots.file;
  const id = (ip: string) => c.hostIds.get(ip) ?? 0;

  before(async () => {
    // 127.0.0.2 (the source) on S1 only; 127.0.0.3 and .4 (targets) on S2 or S3 with the other
    // as a fallback; 127.0.0.5 on S2 only (it is stopped to be a source on no server).
    c = await startCluster({
      servers: 3,
      agents: 4,
      placement: (n) => [[0], [1, 2], [2, 1], [1]][n] ?? 0,
      agentEnv: roots.agentEnv,
    });
  });
  after(async () => {
    await stopAll();
    await c?.close();
    await dropFreshDatabases();
    roots.remove();
  });

  const transfer = (via: number, body: Record<string, unknown>) => {
    const f = c.via(via);
    return post<{ job_instance_id: number; step_instance_id: number }>(
      f.server.url,
      'fast_transfer_file',
      { ...f.scope, account_alias: f.account, ...body },
      f.creds,
    );
  };
  const fromHost = (ip: string, files: string[]) => ({
    file_list: files,
    server: { host_id_list: [id(ip)] },
    account: { alias: c.account },
  });
  const agentStatus = async (via: number): Promise<Map<string, number>> => {
    const s = c.servers[via];
    const r = await admin<{ hosts: { ip: string; agent_status: number }[] }>(
      s?.url ?? '',
      s?.adminToken ?? '',
      'GET',
      '/hosts',
    );
    const api = await get<{ data: { ip: string; agent_status: number }[] }>(
      s?.url ?? '',
      'get_host_list',
      { ...c.via(via).scope, start: 0, length: 100 },
      c.via(via).creds,
    );
    assert.equal(api.result, true, api.message);
    const m = new Map(r.data.hosts.map((h) => [h.ip, h.agent_status]));
    for (const h of api.data.data) assert.equal(h.agent_status, m.get(h.ip), `${h.ip} through S${via + 1}`);
    return m;
  };

  test('a file from an agent on S1 reaches agents on S2 and S3, for a job run by a server without the source', async () => {
    const sessions = await sessionsOf(c);
    const s1 = serverIdOf(c.servers[0] ?? (undefined as never));
    assert.equal(sessions.get(id('127.0.0.2'))?.server_id, s1);
    for (const ip of ['127.0.0.3', '127.0.0.4']) assert.notEqual(sessions.get(id(ip))?.server_id, s1);
    const data = crypto.randomBytes(2 * 1024 * 1024 + 333);
    fs.mkdirSync(path.dirname(file('127.0.0.2', '/data/app.bin')), { recursive: true });
    fs.writeFileSync(file('127.0.0.2', '/data/app.bin'), data);
    for (const via of [1, 2]) {
      const r = await transfer(via, {
        file_source_list: [fromHost('127.0.0.2', ['/data/app.bin'])],
        file_target_path: `/opt/via${via}/`,
        target_server: { host_id_list: [id('127.0.0.3'), id('127.0.0.4')] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitJobFinished(c, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list));
      assert.deepEqual([...hostStatuses(st).values()], [9, 9]);
      for (const ip of ['127.0.0.3', '127.0.0.4'])
        assert.equal(sha(fs.readFileSync(file(ip, `/opt/via${via}/app.bin`))), sha(data));
      // The file logs (written by the servers holding the targets) read the same through S1.
      const f = c.via(0);
      const log = await get<{ file_logs: { mode: number; status: number; src_ip: { ip: string } }[] }>(
        f.server.url,
        'get_job_instance_ip_log',
        {
          ...f.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          bk_host_id: id('127.0.0.3'),
        },
        f.creds,
      );
      const download = log.data.file_logs.find((l) => l.mode === 1);
      assert.equal(download?.status, 4, JSON.stringify(log.data));
      assert.equal(download?.src_ip.ip, '127.0.0.2');
    }
    const left = await c.db<{ n: string }>('select count(*) as n from file_offer');
    assert.equal(Number(left[0]?.n), 0, 'offers are removed with their step');
  });

  test('a missing source file on another server fails the targets with 203', async () => {
    const r = await transfer(2, {
      file_source_list: [fromHost('127.0.0.2', ['/data/absent.bin'])],
      file_target_path: '/opt/absent/',
      target_server: { host_id_list: [id('127.0.0.3')] },
    });
    assert.equal(r.result, true, r.message);
    const st = await waitJobFinished(c, r.data.job_instance_id);
    assert.equal(st.job_instance.status, 4);
    assert.deepEqual([...hostStatuses(st).values()], [203]);
  });

  test('an agent gone from every server is abnormal on every server; a source on no server fails the step', async () => {
    for (const via of [0, 1, 2]) assert.equal((await agentStatus(via)).get('127.0.0.5'), 1);
    await c.agents[3]?.kill('SIGKILL');
    await eventually(
      async () => ((await agentStatus(0)).get('127.0.0.5') === 0 ? true : undefined),
      20_000,
      '127.0.0.5 abnormal through S1',
    );
    for (const via of [1, 2]) assert.equal((await agentStatus(via)).get('127.0.0.5'), 0);
    assert.equal((await agentStatus(2)).get('127.0.0.2'), 1, 'agents still connected stay normal');

    const r = await transfer(0, {
      file_source_list: [fromHost('127.0.0.5', ['/data/any.bin'])],
      file_target_path: '/opt/offline/',
      target_server: { host_id_list: [id('127.0.0.3'), id('127.0.0.4')] },
    });
    assert.equal(r.result, true, r.message);
    const st = await waitJobFinished(c, r.data.job_instance_id);
    assert.equal(st.job_instance.status, 4);
    assert.deepEqual([...hostStatuses(st).values()], [329, 329]);
  });

  test('a client_request_id sent to every server at once starts one job; a claim held elsewhere holds it back', async () => {
    const body = (req: string) => ({
      script_content: b64('echo idem'),
      target_server: { host_id_list: [id('127.0.0.3')] },
      client_request_id: req,
    });
    const ids = Array.from({ length: 8 }, (_, i) => `cluster-req-${i}`);
    const answers = await Promise.all(
      ids.flatMap((req) =>
        c.servers.map((_s, i) => runScript(c.via(i), body(req)).then((r) => ({ req, r }))),
      ),
    );
    for (const { r } of answers) assert.equal(r.result, true, r.message);
    for (const req of ids)
      assert.equal(
        new Set(answers.filter((a) => a.req === req).map((a) => a.r.data.job_instance_id)).size,
        1,
        `${req}: one job for every server's answer`,
      );
    const [jobs] = await c.db<{ n: string }>(
      `select count(*) as n from job_instance where client_request_id like 'cluster-req-%'`,
    );
    assert.equal(Number(jobs?.n), ids.length);
    assert.deepEqual(await c.db('select * from client_request_claim'), [], 'every claim released');

    // A claim of another server's submission in flight: the retry waits for it to end.
    const app = c.via(1).creds.appCode;
    await c.db(
      `insert into client_request_claim (app_code, client_request_id, holder, claimed_at)
       values ($1, 'held-elsewhere', 'another server', (extract(epoch from clock_timestamp()) * 1000)::bigint)`,
      [app],
    );
    let answered = false;
    const waiting = runScript(c.via(1), body('held-elsewhere')).finally(() => (answered = true));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(answered, false, 'held back while the claim is held');
    await c.db(`delete from client_request_claim where holder = 'another server'`);
    assert.equal((await waiting).result, true);
    // One its server left behind (killed mid-submission) is taken over once stale.
    await c.db(
      `insert into client_request_claim (app_code, client_request_id, holder, claimed_at)
       values ($1, 'left-behind', 'a dead server', 1)`,
      [app],
    );
    assert.equal((await runScript(c.via(2), body('left-behind'))).result, true);
  });

  test('drain: a server asked to drain hands its jobs and agents over and exits', async () => {
    const sessions = await sessionsOf(c);
    const holder = c.servers.findIndex((s) => serverIdOf(s) === sessions.get(id('127.0.0.3'))?.server_id);
    assert.ok(holder === 1 || holder === 2, `127.0.0.3 on S${holder + 1}`);
    const other = holder === 1 ? 2 : 1;
    const drained = c.servers[holder] ?? (undefined as never);
    const job = await clusterScript(c, holder, ['127.0.0.3', '127.0.0.4'], { sleep: 3 });
    // Asked through S1 once the job runs on both hosts; the answer comes once the server left.
    await eventually(async () => {
      const rows = await c.db<{ n: string }>(
        `select count(*) as n from host_task where step_instance_id = $1 and status = 7`,
        [job.stepId],
      );
      return Number(rows[0]?.n) === 2 ? true : undefined;
    }, 20_000);
    const s1 = c.servers[0] ?? (undefined as never);
    // Servers sharing a URL (each on 0.0.0.0:8080 of its own machine): drain by it asks none.
    const shared = [serverIdOf(drained), serverIdOf(c.servers[other] ?? drained)];
    const urls = await c.db<{ id: string; url: string }>(
      'select id, url from server_node where id = any($1)',
      [shared],
    );
    await c.db(`update server_node set url = 'http://127.0.0.1:8080' where id = any($1)`, [shared]);
    const ambiguous = await admin(s1.url, s1.adminToken, 'POST', '/cluster/drain', {
      server: 'http://127.0.0.1:8080',
    });
    assert.equal(ambiguous.code, 1240003, ambiguous.message);
    assert.match(ambiguous.message, /URL of 2 live servers/);
    const asked = await c.db<{ n: string }>(
      'select count(*) as n from server_node where drain_requested_at is not null',
    );
    assert.equal(Number(asked[0]?.n), 0, 'no server was asked to drain');
    for (const u of urls) await c.db('update server_node set url = $1 where id = $2', [u.url, u.id]);
    const r = await admin<{ id: string; state: string }>(s1.url, s1.adminToken, 'POST', '/cluster/drain', {
      server: drained.url,
    });
    assert.equal(r.result, true, r.message);
    assert.equal(r.data.state, 'dead');
    const health = await fetch(`${drained.url}/healthz`).catch(() => undefined);
    assert.notEqual(health?.status, 200, 'a drained server is out of rotation');
    const code = await new Promise<number | null>((resolve) => {
      if (drained.proc.exitCode !== null) resolve(drained.proc.exitCode);
      else drained.proc.once('exit', (n) => resolve(n));
    });
    assert.equal(code, 0);
    c.paused.add(drained); // no longer asked
    await checkInvariants(c, [job]);
    const owner = await c.db<{ owner_id: string }>('select owner_id from job_instance where id = $1', [
      job.jobId,
    ]);
    assert.notEqual(owner[0]?.owner_id, serverIdOf(drained));
    const moved = await sessionsOf(c);
    assert.equal(moved.get(id('127.0.0.3'))?.server_id, serverIdOf(c.servers[other] ?? drained));
    // Unknown servers are refused with a clear message.
    const unknown = await admin(s1.url, s1.adminToken, 'POST', '/cluster/drain', {
      server: 'http://nowhere:1',
    });
    assert.equal(unknown.result, false);
  });

  test('a host removed through one server: its agent held by another is dropped there', async () => {
    const removed = id('127.0.0.2'); // held by S1 only
    const s1 = c.servers[0] ?? (undefined as never);
    const via = c.servers.find((s) => s !== s1 && !c.paused.has(s)) ?? (undefined as never);
    const r = await admin(via.url, via.adminToken, 'DELETE', `/hosts/${removed}`);
    assert.equal(r.result, true, r.message);
    await eventually(
      async () =>
        s1.output().includes(`"hostId":${removed},"reason":"agent revoked or host removed by an admin"`)
          ? true
          : undefined,
      20_000,
      'S1 drops the agent of the removed host',
    );
  });
});
