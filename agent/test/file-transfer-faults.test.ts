/**
 * What the file server refuses, and how downloads end when things go wrong: broken
 * connections (resumed with Range), bad tokens, corrupted bytes, kills, timeouts, rate limits,
 * and an agent that stops or dies mid-transfer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseTaskKey } from '@jobfleet/protocol';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import {
  closeFileHosts,
  downloadMsg,
  fileHost,
  offer,
  partFiles,
  put,
  sha256,
} from './helpers/file-hosts.js';
import type { FileHost } from './helpers/file-hosts.js';

after(closeFileHosts);

const source = fileHost('127.0.0.2');

function fileUrl(o: { answer: { url: string }; msg: { serveId: string } }, rel: string): string {
  return `${o.answer.url}/files/${encodeURIComponent(o.msg.serveId)}/${encodeURIComponent(rel)}`;
}

/** Polls the filesystem (the runner reports no event for "some bytes are on disk"). */
async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function partSize(host: FileHost, dir: string): number {
  const [part] = partFiles(host.local(dir));
  return part ? fs.statSync(path.join(host.local(dir), part)).size : 0;
}

/**
 * A TCP relay in front of a file server that cuts its first connection after `cutAfter`
 * response bytes, and records the requests it relayed.
 */
async function cuttingRelay(
  target: string,
  cutAfter: number,
): Promise<{ url: string; requests: string[]; close(): void }> {
  const { hostname, port } = new URL(target);
  const requests: string[] = [];
  let connections = 0;
  const server = net.createServer((client) => {
    const first = connections++ === 0;
    const upstream = net.connect(Number(port), hostname);
    let relayed = 0;
    client.on('data', (d: Buffer) => {
      requests.push(d.toString('latin1'));
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (first && relayed + d.length >= cutAfter) {
        client.write(d.subarray(0, cutAfter - relayed));
        client.destroy();
        upstream.destroy();
        return;
      }
      relayed += d.length;
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.7', resolve));
  const { port: relayPort } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.7:${relayPort}`, requests, close: () => server.close() };
}

/**
 * An HTTP front to a file server whose first answer is a 200 carrying an error envelope (what a
 * server answered when its database was out of reach), and which forwards every later request.
 */
async function envelopeFirst(
  target: string,
): Promise<{ url: string; ranges: (string | undefined)[]; close(): void }> {
  const ranges: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    ranges.push(req.headers.range);
    if (ranges.length === 1) {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ result: false, code: 1240001, message: 'Internal error', data: null }));
      return;
    }
    const upstream = http.get(`${target}${req.url ?? ''}`, { headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.7', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.7:${port}`, ranges, close: () => server.close() };
}

describe('File server: what it refuses', () => {
  it("serves only with the right token, only the offer's files, and resumes from a Range", async () => {
    const data = put(source, '/srv/http/f.bin', 10_000);
    const o = await offer(source, ['/srv/http/f.bin']);
    const auth = { authorization: `Bearer ${o.msg.token}` };
    const url = fileUrl(o, 'f.bin');
    assert.equal((await fetch(url)).status, 401);
    assert.equal(
      (await fetch(url, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status,
      401,
    );
    assert.equal((await fetch(fileUrl(o, '../http/f.bin'), { headers: auth })).status, 404);
    assert.equal((await fetch(fileUrl(o, '/srv/http/f.bin'), { headers: auth })).status, 404);
    assert.equal((await fetch(`${o.answer.url}/files/other-offer/f.bin`, { headers: auth })).status, 404);
    const whole = await fetch(url, { headers: auth });
    assert.equal(whole.status, 200);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), data);
    const tail = await fetch(url, { headers: { ...auth, range: 'bytes=9000-' } });
    assert.equal(tail.status, 206);
    assert.equal(tail.headers.get('content-range'), 'bytes 9000-9999/10000');
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), data.subarray(9000));
    source.runner.unserve(o.msg.serveId);
    assert.equal((await fetch(url, { headers: auth })).status, 404);
  });

  it('fails a download presenting a wrong token, naming the file and the refusal', async () => {
    put(source, '/srv/http/secret.txt', 'secret');
    const o = await offer(source, ['/srv/http/secret.txt']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([{ ...o.source, token: 'not-the-token-0123456789' }], '/in');
    target.runner.download(msg);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'transfer_failed');
    assert.match(r.message, /0:127\.0\.0\.2:\/srv\/http\/secret\.txt: source answered HTTP 401/);
    assert.equal(fs.existsSync(target.local('/in/secret.txt')), false);
    assert.deepEqual(partFiles(target.local('/in')), []);
  });
});

describe('Downloads that go wrong', () => {
  it('resumes with a Range request after the connection is cut mid-file', async () => {
    const data = put(source, '/srv/cut/f.bin', 2 * 1024 * 1024);
    const o = await offer(source, ['/srv/cut/f.bin']);
    const relay = await cuttingRelay(o.answer.url, 700_000);
    try {
      const target = fileHost('127.0.0.3');
      const msg = downloadMsg([{ ...o.source, url: relay.url }], '/in');
      target.runner.download(msg);
      const r = await target.reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'exited', r.message);
      assert.equal(sha256(fs.readFileSync(target.local('/in/f.bin'))), sha256(data));
      const ranges = relay.requests.map((q) => /\r\nrange: bytes=(\d+)-/i.exec(q)?.[1]);
      assert.equal(ranges.length, 2, relay.requests.join('\n---\n'));
      assert.equal(ranges[0], undefined);
      assert.ok(Number(ranges[1]) > 0 && Number(ranges[1]) < data.length, `resumed at ${ranges[1]}`);
    } finally {
      relay.close();
    }
  });

  it('writes nothing of a 200 that is not the file (an error envelope): retried from the start', async () => {
    const data = put(source, '/srv/envelope/f.bin', 64 * 1024);
    const o = await offer(source, ['/srv/envelope/f.bin']);
    const front = await envelopeFirst(o.answer.url);
    try {
      const target = fileHost('127.0.0.3');
      const msg = downloadMsg([{ ...o.source, url: front.url }], '/in');
      target.runner.download(msg);
      const r = await target.reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'exited', r.message);
      assert.equal(sha256(fs.readFileSync(target.local('/in/f.bin'))), sha256(data));
      assert.deepEqual(front.ranges, [undefined, undefined]);
    } finally {
      front.close();
    }
  });

  it('never writes through a link put at a part file name or among the directories on the way', async () => {
    // What a target account that owns the target directory could plant for an agent run as root.
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-outside-'));
    const victim = path.join(outside, 'victim');
    fs.writeFileSync(victim, 'keep me');
    put(source, '/srv/links/app.conf', 'new contents');
    const o = await offer(source, ['/srv/links/app.conf']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in');
    const { stepInstanceId, executeCount } = parseTaskKey(msg.key);
    fs.mkdirSync(target.local('/in'), { recursive: true });
    fs.symlinkSync(victim, target.local(`/in/.app.conf.${stepInstanceId}-${executeCount}.jobfleet-part`));
    target.runner.download(msg);
    assert.equal((await target.reports.finishedResult(msg.key)).outcome, 'exited');
    assert.equal(fs.readFileSync(target.local('/in/app.conf'), 'utf8'), 'new contents');
    assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me');

    // A directory of the relative path that is a link elsewhere: refused, nothing written there.
    put(source, '/srv/conf/inner.conf', 'inner');
    const tree = await offer(source, ['/srv/conf/']); // offered as conf/inner.conf
    fs.symlinkSync(outside, target.local('/in/conf'));
    const through = downloadMsg([tree.source], '/in');
    target.runner.download(through);
    const refused = await target.reports.finishedResult(through.key);
    assert.equal(refused.outcome, 'target_invalid');
    assert.match(refused.message, /symbolic link/);
    assert.deepEqual(fs.readdirSync(outside), ['victim']);
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('fails a file whose bytes do not match its sha256, leaving nothing behind', async () => {
    put(source, '/srv/corrupt.txt', 'original');
    const o = await offer(source, ['/srv/corrupt.txt']);
    put(source, '/srv/corrupt.txt', 'tampered'); // same size, different bytes
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in');
    target.runner.download(msg);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'transfer_failed');
    assert.match(r.message, /\/srv\/corrupt\.txt: checksum mismatch/);
    assert.deepEqual(fs.readdirSync(target.local('/in')), []);
    const final = target.reports.fileReports(msg.key).filter((p) => p.status !== 'downloading');
    assert.deepEqual(
      final.map((p) => [p.status, p.bytes]),
      [['failed', 8]],
    );
  });

  it('fails a source that cannot be reached after its retries', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.8', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    put(source, '/srv/unreachable.txt', 'u');
    const o = await offer(source, ['/srv/unreachable.txt']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([{ ...o.source, url: `http://127.0.0.8:${port}` }], '/in');
    target.runner.download(msg);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'transfer_failed');
    assert.match(r.message, /unreachable\.txt: connect ECONNREFUSED .*gave up after 5 attempts/);
  });

  it('waits out a restart of the server holding a file, however many attempts it takes', async () => {
    // The address of the agent's server, down for longer than a peer's retries last (3 s at
    // most), then back: an HTTP front that forwards to a file server stands for the server.
    const data = put(source, '/srv/held/f.bin', 256 * 1024);
    const o = await offer(source, ['/srv/held/f.bin']);
    const reserve = net.createServer();
    await new Promise<void>((resolve) => reserve.listen(0, '127.0.0.9', resolve));
    const { port } = reserve.address() as net.AddressInfo;
    await new Promise((resolve) => reserve.close(resolve));
    const serverUrl = `http://127.0.0.9:${port}`;
    const attempts: number[] = [];
    const target = fileHost('127.0.0.3', { servers: () => [serverUrl] });
    const msg = downloadMsg([{ ...o.source, url: `${serverUrl}/agent/v1` }], '/in');
    const started = Date.now();
    target.runner.download(msg);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const front = http.createServer((req, res) => {
      attempts.push(Date.now() - started);
      const upstream = http.get(
        `${o.answer.url}${(req.url ?? '').replace(/^\/agent\/v1/, '')}`,
        { headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
    });
    await new Promise<void>((resolve) => front.listen(port, '127.0.0.9', resolve));
    try {
      const r = await target.reports.finishedResult(msg.key);
      assert.equal(r.outcome, 'exited', r.message);
      assert.equal(sha256(fs.readFileSync(target.local('/in/f.bin'))), sha256(data));
      assert.equal(attempts.length, 1);
    } finally {
      front.close();
    }
  });

  it('stops on kill without leaving a part file or a target file', async () => {
    put(source, '/srv/slow/kill.bin', 4 * 1024 * 1024);
    const o = await offer(source, ['/srv/slow/kill.bin'], { rateLimitBytes: 512 * 1024 });
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in');
    target.runner.download(msg);
    await eventually(() => partSize(target, '/in') > 0, 'some bytes arrived');
    target.runner.kill(msg.key);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'killed');
    assert.deepEqual(fs.readdirSync(target.local('/in')), []);
    assert.equal(target.reports.fileReports(msg.key).at(-1)?.status, 'failed');
  });

  it('makes nothing on the host when killed before it began', async () => {
    put(source, '/srv/never.txt', 'n');
    const o = await offer(source, ['/srv/never.txt']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/never/made');
    target.runner.download(msg);
    target.runner.kill(msg.key);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'killed');
    assert.equal(fs.existsSync(target.local('/never')), false);
    assert.equal(target.reports.fileReports(msg.key).at(-1)?.status, 'failed');
  });

  it('stops at the task timeout', async () => {
    put(source, '/srv/slow/timeout.bin', 4 * 1024 * 1024);
    const o = await offer(source, ['/srv/slow/timeout.bin'], { rateLimitBytes: 256 * 1024 });
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in', { timeoutSeconds: 1 });
    target.runner.download(msg);
    const r = await target.reports.finishedResult(msg.key);
    assert.equal(r.outcome, 'timeout');
    assert.deepEqual(partFiles(target.local('/in')), []);
  });
});

describe('Rate limits', () => {
  it('takes at least size / limit with a download limit', async () => {
    const size = 1536 * 1024;
    const limit = 1024 * 1024;
    const data = put(source, '/srv/limit/down.bin', size);
    const o = await offer(source, ['/srv/limit/down.bin']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in', { rateLimitBytes: limit });
    const t0 = performance.now();
    target.runner.download(msg);
    assert.equal((await target.reports.finishedResult(msg.key)).outcome, 'exited');
    assert.ok(performance.now() - t0 >= (size / limit) * 1000, `took ${performance.now() - t0} ms`);
    assert.equal(sha256(fs.readFileSync(target.local('/in/down.bin'))), sha256(data));
  });

  it("shares an offer's upload limit among all its downloads", async () => {
    const size = 768 * 1024;
    const limit = 1024 * 1024;
    put(source, '/srv/limit/up.bin', size);
    const o = await offer(source, ['/srv/limit/up.bin'], { rateLimitBytes: limit });
    const targets = [fileHost('127.0.0.3'), fileHost('127.0.0.4')];
    const msgs = targets.map(() => downloadMsg([o.source], '/in'));
    const t0 = performance.now();
    targets.forEach((t, i) => t.runner.download(msgs[i]!));
    for (const [i, t] of targets.entries())
      assert.equal((await t.reports.finishedResult(msgs[i]!.key)).outcome, 'exited');
    const took = performance.now() - t0;
    assert.ok(took >= ((2 * size) / limit) * 1000, `took ${took} ms`);
  });
});

describe('Download tasks across an agent stop and restart', () => {
  it("keeps a finished download's result and file reports until recorded, also across a restart", async () => {
    put(source, '/srv/durable.txt', 'kept');
    const o = await offer(source, ['/srv/durable.txt']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in');
    target.runner.download(msg);
    const first = await target.reports.finishedResult(msg.key);
    const finalReports = target.reports.fileReports(msg.key).filter((p) => p.status === 'finished');
    await target.runner.close();

    const again = fileHost('127.0.0.3', { root: target.root, stateDir: target.stateDir });
    assert.deepEqual(again.runner.held(), [{ key: msg.key, outputBytes: 0, finished: true }]);
    again.runner.download(msg); // a duplicate dispatch does not run it again
    again.runner.resume({}, []);
    assert.deepEqual(
      again.reports.of(msg.key).map((e) => e.type),
      ['started', 'file', 'finished'],
    );
    assert.deepEqual(again.reports.fileReports(msg.key), finalReports);
    assert.deepEqual(again.reports.results(msg.key), [first]);
    again.runner.recorded(msg.key);
    assert.deepEqual(again.runner.held(), []);
  });

  it('reports a download running at shutdown as lost, without a part file', async () => {
    put(source, '/srv/slow/lost.bin', 4 * 1024 * 1024);
    const o = await offer(source, ['/srv/slow/lost.bin'], { rateLimitBytes: 512 * 1024 });
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([o.source], '/in');
    target.runner.download(msg);
    await eventually(() => partSize(target, '/in') > 0, 'some bytes arrived');
    await target.runner.close();
    assert.equal(target.reports.results(msg.key)[0]?.outcome, 'lost');
    assert.deepEqual(fs.readdirSync(target.local('/in')), []);
  });

  it('after the agent process died mid-download: reports it lost and removes its part file', async () => {
    put(source, '/srv/slow/died.bin', 4 * 1024 * 1024);
    const o = await offer(source, ['/srv/slow/died.bin'], { rateLimitBytes: 512 * 1024 });
    const target = fileHost('127.0.0.3');
    await target.runner.close(); // the child process is this host for now
    const msg = downloadMsg([o.source], '/in');
    const fixture = fileURLToPath(new URL('./fixtures/task-runner-process.js', import.meta.url));
    const proc = spawn(
      process.execPath,
      [fixture, target.stateDir, `--file-root=${target.root}`, JSON.stringify(msg)],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      await eventually(() => partSize(target, '/in') > 0, 'the runner process received some bytes');
    } finally {
      proc.kill('SIGKILL');
    }
    await exited;
    assert.equal(partFiles(target.local('/in')).length, 1);

    const again = fileHost('127.0.0.3', { root: target.root, stateDir: target.stateDir });
    assert.deepEqual(partFiles(target.local('/in')), []);
    again.runner.resume({ [msg.key]: 0 }, []);
    await again.runner.flushed(); // the restart spooled the lost result; the resend follows it
    const r = again.reports.results(msg.key)[0];
    assert.equal(r?.outcome, 'lost');
    assert.match(r?.message ?? '', /agent restarted/);
  });
});
