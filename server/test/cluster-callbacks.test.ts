/**
 * Cluster mode, acceptance 13 of the cluster design: a job's callback is POSTed by one server
 * to a receiver that stalls; once the POST is seen at the receiver, the server that sent it
 * (found by the socket it holds) is SIGKILLed. The other server sends the callback again after
 * the lease of the dead one's claim ran out: delivered at least once, nothing missing. Runs
 * only where PostgreSQL is given (JOBFLEET_TEST_PG_URL).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { get } from './helpers/api-client.js';
import { startCluster, waitJobFinished } from './helpers/cluster.js';
import type { Cluster } from './helpers/cluster.js';
import { dropFreshDatabases } from './helpers/databases.js';
import { b64, runScript } from './helpers/fleet.js';
import type { CallbackRecord } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);

/**
 * The index of the server process holding the TCP connection from local port `port` to
 * `peerPort`: by both ends, as another connection of the machine (tests run side by side) may
 * use the same port number on another address.
 */
function holderOf(c: Cluster, port: number, peerPort: number): number {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const line = fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1]?.endsWith(`:${hex(port)}`) && f[2]?.endsWith(`:${hex(peerPort)}`));
  const inode = line?.[9];
  assert.ok(inode, `no socket with local port ${port}`);
  const holds = (pid: number): boolean => {
    const dir = `/proc/${pid}/fd`;
    try {
      return fs.readdirSync(dir).some((fd) => {
        try {
          return fs.readlinkSync(`${dir}/${fd}`) === `socket:[${inode}]`;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  };
  // The process started, or one it started (the command line may re-exec node).
  const family = (pid: number): number[] => {
    let kids: number[] = [];
    try {
      kids = fs
        .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      kids = [];
    }
    return [pid, ...kids.flatMap(family)];
  };
  const i = c.servers.findIndex((s) => family(s.proc.pid ?? 0).some(holds));
  assert.ok(i >= 0, 'no server holds the callback connection');
  return i;
}

describe('cluster: a callback whose sender is killed mid-POST', { skip: !withPg }, () => {
  let c: Cluster;
  let receiver: http.Server;
  const hits: { jobId: number; port: number }[] = [];
  let firstHit: (port: number) => void = () => undefined;
  const first = new Promise<number>((resolve) => (firstHit = resolve));

  before(async () => {
    // The first POST is never answered (the receiver stalls); every later one gets 200.
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const jobId = (JSON.parse(body) as { job_instance_id: number }).job_instance_id;
        hits.push({ jobId, port: req.socket.remotePort ?? 0 });
        if (hits.length === 1) firstHit(req.socket.remotePort ?? 0);
        else res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    c = await startCluster({
      servers: 2,
      agents: 1,
      placement: () => [0, 1],
      env: {
        JOBFLEET_CLUSTER_DEAD_AFTER_MS: '4000',
        JOBFLEET_CLUSTER_SELF_FENCE_MS: '2500',
        JOBFLEET_CLUSTER_AGENT_GRACE_MS: '30000',
        // The lease of a claimed callback is its timeout + 2 s.
        JOBFLEET_CALLBACK_TIMEOUT_MS: '4000',
      },
    });
  });
  after(async () => {
    await stopAll();
    receiver?.closeAllConnections();
    receiver?.close();
    await c?.close();
    await dropFreshDatabases();
  });

  test('13: the sending server is killed after its POST; another server delivers the callback', async () => {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
    const r = await runScript(c.via(0), {
      script_content: b64('echo done'),
      callback_url: url,
      target_server: { host_id_list: [c.hostIds.get('127.0.0.2')] },
    });
    assert.equal(r.result, true, r.message);
    const jobId = r.data.job_instance_id;
    // The POST is at the receiver: the server that sent it dies with the connection open.
    const sender = holderOf(c, await first, (receiver.address() as AddressInfo).port);
    c.servers[sender]?.proc.kill('SIGKILL');
    const other = 1 - sender;
    const f = c.via(other);
    const deadline = Date.now() + 60_000;
    let cb: CallbackRecord | undefined;
    while (Date.now() < deadline) {
      const list = await get<{ callback_list: CallbackRecord[] }>(
        f.server.url,
        'get_job_instance_callback_list',
        { ...f.scope, job_instance_id: jobId },
        f.creds,
      );
      cb = list.data.callback_list[0];
      if (cb?.state === 'delivered') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(cb?.state, 'delivered', JSON.stringify(cb));
    assert.deepEqual(
      cb.attempt_list.map((a) => a.http_status),
      [200],
      'the attempt the dead server never recorded is not shown; the redelivery is',
    );
    assert.ok(hits.length >= 2 && hits.every((h) => h.jobId === jobId), JSON.stringify(hits));
    assert.equal((await waitJobFinished(c, jobId)).job_instance.status, 3);
  });
});
