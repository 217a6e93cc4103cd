/**
 * File distribution between agents' TaskRunners over real HTTP on loopback addresses: what a
 * source offers for each kind of entry, and what targets end up with.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  closeFileHosts,
  downloadMsg,
  fileHost,
  offer,
  partFiles,
  put,
  serveMsg,
  sha256,
} from './helpers/file-hosts.js';

after(closeFileHosts);

const source = fileHost('127.0.0.2');

describe('Serving: what an offer holds', () => {
  it('describes a single file by its basename, size, mode and sha256, at the host ip', async () => {
    const data = put(source, '/srv/app/one.bin', 70_000, 0o640);
    const { answer } = await offer(source, ['/srv/app/one.bin']);
    assert.equal(answer.error, undefined);
    assert.match(answer.url, /^http:\/\/127\.0\.0\.2:\d+$/);
    assert.deepEqual(answer.files, [
      { sourcePath: '/srv/app/one.bin', relPath: 'one.bin', size: 70_000, sha256: sha256(data), mode: 0o640 },
    ]);
  });

  it('serves a directory as "<dirname>/<relative path>" for every file below it', async () => {
    put(source, '/srv/tree/a.txt', 'a');
    put(source, '/srv/tree/sub/b.txt', 'bb');
    put(source, '/srv/tree/sub/deeper/c.txt', 'ccc');
    const { answer } = await offer(source, ['/srv/tree/']);
    assert.deepEqual(answer.files.map((f) => [f.relPath, f.sourcePath, f.size]).sort(), [
      ['tree/a.txt', '/srv/tree/a.txt', 1],
      ['tree/sub/b.txt', '/srv/tree/sub/b.txt', 2],
      ['tree/sub/deeper/c.txt', '/srv/tree/sub/deeper/c.txt', 3],
    ]);
  });

  it('selects the files of a directory whose names match a REGEX: part, not below it', async () => {
    put(source, '/srv/logs/app1.log', '1');
    put(source, '/srv/logs/app2.log', '2');
    put(source, '/srv/logs/app.txt', 't');
    put(source, '/srv/logs/nested/app3.log', '3');
    const { answer } = await offer(source, ['/srv/logs/REGEX:^app\\d\\.log$']);
    assert.deepEqual(answer.files.map((f) => f.relPath).sort(), ['app1.log', 'app2.log']);
  });

  it('serves a file under an explicit relPath', async () => {
    put(source, '/srv/explicit/x.conf', 'x');
    const { answer } = await offer(source, [{ path: '/srv/explicit/x.conf', relPath: 'etc/app/x.conf' }]);
    assert.deepEqual(
      answer.files.map((f) => f.relPath),
      ['etc/app/x.conf'],
    );
  });

  it('re-serves a received file named "REGEX:..." under its relPath as that file, not as a pattern', async () => {
    const real = put(source, '/srv/seeded/REGEX:^x$', 'the received file');
    put(source, '/srv/seeded/x', 'a neighbour the pattern would match');
    const { answer } = await offer(source, [{ path: '/srv/seeded/REGEX:^x$', relPath: 'logs/REGEX:^x$' }]);
    assert.equal(answer.error, undefined);
    assert.deepEqual(
      answer.files.map((f) => [f.relPath, f.sourcePath, f.sha256]),
      [['logs/REGEX:^x$', '/srv/seeded/REGEX:^x$', sha256(real)]],
    );
  });

  it('answers missing paths and patterns matching nothing with a "missing" error listing them', async () => {
    put(source, '/srv/present.txt', 'here');
    const { answer } = await offer(source, [
      '/srv/present.txt',
      '/srv/absent.txt',
      '/srv/REGEX:^nothing$',
      '/srv/nodir/',
    ]);
    assert.equal(answer.error?.kind, 'missing');
    assert.deepEqual(answer.error?.paths, ['/srv/absent.txt', '/srv/REGEX:^nothing$', '/srv/nodir/']);
    assert.deepEqual(answer.files, []);
  });

  it('answers an offer while its port is taken with an error, and serves once the port is free', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.7', resolve));
    const { port } = blocker.address() as AddressInfo;
    const host = fileHost('127.0.0.7', { port });
    put(host, '/srv/late.txt', 'late');
    const refused = await offer(host, ['/srv/late.txt']);
    assert.equal(refused.answer.error?.kind, 'unreadable');
    assert.match(refused.answer.error?.message ?? '', /file server unavailable: .*EADDRINUSE/);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const served = await offer(host, ['/srv/late.txt']);
    assert.equal(served.answer.error, undefined);
    assert.equal(served.answer.url, `http://127.0.0.7:${port}`);
  });

  it('answers a re-sent serve with the same offer, also while the first is still hashing', async () => {
    put(source, '/srv/again.bin', 3_000_000);
    const msg = serveMsg(['/srv/again.bin'], { serveId: 'same-offer' });
    source.runner.serve(msg);
    source.runner.serve(msg);
    const [a1, a2] = await Promise.all([1, 2].map((n) => source.reports.servedAnswer(msg.serveId, n)));
    source.runner.serve(msg);
    const a3 = await source.reports.servedAnswer(msg.serveId, 3);
    assert.equal(a1?.files.length, 1);
    assert.deepEqual(a2, a1);
    assert.deepEqual(a3, a1);
  });

  it('refuses an account that does not exist with "user_missing"', async () => {
    put(source, '/srv/u.txt', 'u');
    const { answer } = await offer(source, ['/srv/u.txt'], { user: 'no-such-user-jobfleet' });
    assert.equal(answer.error?.kind, 'user_missing');
  });

  it(
    'checks read permission for the account when the agent is root',
    { skip: process.getuid?.() !== 0 && 'needs root' },
    async () => {
      put(source, '/srv/perm/open.txt', 'o', 0o644);
      put(source, '/srv/perm/closed.txt', 'c', 0o600);
      const open = await offer(source, ['/srv/perm/open.txt'], { user: 'nobody' });
      assert.equal(open.answer.error, undefined);
      const closed = await offer(source, ['/srv/perm/'], { user: 'nobody' });
      assert.equal(closed.answer.error?.kind, 'unreadable');
      assert.deepEqual(closed.answer.error?.paths, ['/srv/perm/closed.txt']);
    },
  );
});

describe('Downloading: what targets end up with', () => {
  it('delivers one file to several targets, byte for byte, with progress for each', async () => {
    // Set-uid at the source: the targets get the mode without it.
    const data = put(source, '/srv/big/payload.bin', 3 * 1024 * 1024 + 17, 0o4750);
    const { source: src } = await offer(source, ['/srv/big/payload.bin']);
    const targets = [fileHost('127.0.0.3'), fileHost('127.0.0.4'), fileHost('127.0.0.5')];
    const msgs = targets.map(() => downloadMsg([src], '/data/in'));
    targets.forEach((t, i) => t.runner.download(msgs[i]!));
    for (const [i, t] of targets.entries()) {
      const key = msgs[i]!.key;
      const r = await t.reports.finishedResult(key);
      assert.deepEqual([r.outcome, r.exitCode, r.outputBytes], ['exited', 0, 0]);
      const got = fs.readFileSync(t.local('/data/in/payload.bin'));
      assert.equal(sha256(got), sha256(data));
      assert.equal(fs.statSync(t.local('/data/in/payload.bin')).mode & 0o7777, 0o750);
      assert.deepEqual(partFiles(t.local('/data')), []);
      const reports = t.reports.fileReports(key);
      assert.equal(reports[0]?.status, 'downloading');
      const final = reports.filter((p) => p.status !== 'downloading');
      assert.deepEqual(
        final.map((p) => [p.status, p.label, p.sourcePath, p.targetPath, p.size, p.bytes]),
        [
          [
            'finished',
            '0:127.0.0.2',
            '/srv/big/payload.bin',
            '/data/in/payload.bin',
            data.length,
            data.length,
          ],
        ],
      );
      assert.ok((final[0]?.speed ?? 0) > 0);
      assert.deepEqual(
        t.reports
          .of(key)
          .map((e) => e.type)
          .filter((x) => x !== 'file'),
        ['started', 'finished'],
      );
    }
  });

  it('offers a file still being written as it was when listed, and delivers exactly that', async () => {
    const data = put(source, '/srv/log/app.log', 40 * 1024 * 1024, 0o644);
    const file = source.local('/srv/log/app.log');
    // The log goes on growing while the source lists and hashes it.
    let writing = true;
    const writer = (async () => {
      while (writing) {
        fs.appendFileSync(file, 'another line of the log\n');
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const served = await offer(source, ['/srv/log/app.log']);
    writing = false;
    await writer;
    assert.equal(served.answer.error, undefined);
    const size = served.answer.files[0]?.size ?? 0;
    assert.ok(size >= data.length);
    const target = fileHost('127.0.0.7');
    const msg = downloadMsg([served.source], '/data/logs');
    target.runner.download(msg);
    const r = await target.reports.finishedResult(msg.key);
    assert.deepEqual([r.outcome, r.exitCode], ['exited', 0]);
    const got = fs.readFileSync(target.local('/data/logs/app.log'));
    assert.equal(got.length, size);
    assert.equal(sha256(got), sha256(fs.readFileSync(file).subarray(0, size)));
  });

  it('recreates a directory tree from several sources and REGEX selections', async () => {
    const other = fileHost('127.0.0.6');
    put(source, '/srv/site/index.html', '<html>');
    put(source, '/srv/site/css/main.css', 'body{}');
    put(other, '/opt/conf/a.ini', 'a=1');
    put(other, '/opt/conf/b.ini', 'b=2');
    put(other, '/opt/conf/c.txt', 'no');
    const s1 = await offer(source, ['/srv/site/']);
    const s2 = await offer(other, ['/opt/conf/REGEX:\\.ini$']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([s1.source, s2.source], '/var/www');
    target.runner.download(msg);
    assert.equal((await target.reports.finishedResult(msg.key)).outcome, 'exited');
    const read = (p: string) => fs.readFileSync(target.local(p), 'utf8');
    assert.equal(read('/var/www/site/index.html'), '<html>');
    assert.equal(read('/var/www/site/css/main.css'), 'body{}');
    assert.equal(read('/var/www/a.ini'), 'a=1');
    assert.equal(read('/var/www/b.ini'), 'b=2');
    assert.equal(fs.existsSync(target.local('/var/www/c.txt')), false);
    assert.equal(target.reports.fileReports(msg.key).filter((p) => p.status === 'finished').length, 4);
  });

  it('lets a target that finished re-serve what it received under the same relPath', async () => {
    const data = put(source, '/srv/relay/blob.bin', 500_000);
    const first = fileHost('127.0.0.3');
    const second = fileHost('127.0.0.4');
    const s1 = await offer(source, ['/srv/relay/blob.bin']);
    const m1 = downloadMsg([s1.source], '/recv');
    first.runner.download(m1);
    await first.reports.finishedResult(m1.key);
    const relay = await offer(first, [{ path: '/recv/blob.bin', relPath: 'blob.bin' }]);
    assert.deepEqual(
      relay.answer.files.map((f) => [f.relPath, f.sha256, f.size]),
      [['blob.bin', sha256(data), data.length]],
    );
    const m2 = downloadMsg([relay.source], '/recv');
    second.runner.download(m2);
    assert.equal((await second.reports.finishedResult(m2.key)).outcome, 'exited');
    assert.equal(sha256(fs.readFileSync(second.local('/recv/blob.bin'))), sha256(data));
  });

  it('renames the single file of a task to targetName', async () => {
    put(source, '/srv/rename/original.txt', 'content');
    const s = await offer(source, ['/srv/rename/original.txt']);
    const target = fileHost('127.0.0.3');
    const msg = downloadMsg([s.source], '/etc/app', { targetName: 'renamed.txt' });
    target.runner.download(msg);
    assert.equal((await target.reports.finishedResult(msg.key)).outcome, 'exited');
    assert.deepEqual(fs.readdirSync(target.local('/etc/app')), ['renamed.txt']);
    assert.equal(target.reports.fileReports(msg.key).at(-1)?.targetPath, '/etc/app/renamed.txt');
  });

  it('fails a missing target directory in strict mode, and creates it otherwise', async () => {
    put(source, '/srv/strict.txt', 's');
    const s = await offer(source, ['/srv/strict.txt']);
    const target = fileHost('127.0.0.3');
    const strict = downloadMsg([s.source], '/not/there', { strict: true });
    target.runner.download(strict);
    const r = await target.reports.finishedResult(strict.key);
    assert.equal(r.outcome, 'target_invalid');
    assert.match(r.message, /\/not\/there does not exist/);
    assert.equal(fs.existsSync(target.local('/not')), false);
    assert.deepEqual(
      target.reports.fileReports(strict.key).map((p) => p.status),
      ['failed'],
    );
    const force = downloadMsg([s.source], '/not/there', { strict: false });
    target.runner.download(force);
    assert.equal((await target.reports.finishedResult(force.key)).outcome, 'exited');
    assert.equal(fs.readFileSync(target.local('/not/there/strict.txt'), 'utf8'), 's');
  });

  it(
    'gives a target a file as the account it names, when the agent is root',
    { skip: process.getuid?.() !== 0 && 'needs root' },
    async () => {
      put(source, '/srv/owned.txt', 'mine');
      const s = await offer(source, ['/srv/owned.txt']);
      const target = fileHost('127.0.0.3');
      const msg = downloadMsg([s.source], '/home/nobody/in', { user: 'nobody' });
      target.runner.download(msg);
      assert.equal((await target.reports.finishedResult(msg.key)).outcome, 'exited');
      const nobody = fs.statSync(target.local('/home/nobody/in/owned.txt'));
      const dir = fs.statSync(target.local('/home/nobody/in'));
      assert.notEqual(nobody.uid, 0);
      assert.equal(dir.uid, nobody.uid);
    },
  );

  it(
    'refuses, for the account it names, a directory it may not write and a file of another in a sticky one',
    { skip: process.getuid?.() !== 0 && 'needs root' },
    async () => {
      const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
      put(source, '/srv/sticky/owned.txt', 'from the source');
      put(source, '/srv/sticky/fresh.txt', 'fresh');
      put(source, '/srv/tree/site/index.html', '<html>');
      put(source, '/srv/tree/deep/a/b.txt', 'b');
      const target = fileHost('127.0.0.3');
      // /drop is a /tmp: anyone writes, only an owner replaces. root's file there stays root's.
      put(target, '/drop/owned.txt', "root's");
      fs.chmodSync(target.local('/drop'), 0o1777);
      const run = async (paths: string[], dir: string) => {
        const s = await offer(source, paths);
        const msg = downloadMsg([s.source], dir, { user: 'nobody' });
        target.runner.download(msg);
        return target.reports.finishedResult(msg.key);
      };
      const sticky = await run(['/srv/sticky/owned.txt'], '/drop');
      assert.equal(sticky.outcome, 'target_invalid');
      assert.match(sticky.message, /\/drop\/owned\.txt belongs to another account in a sticky directory/);
      assert.equal(fs.readFileSync(target.local('/drop/owned.txt'), 'utf8'), "root's");
      assert.equal((await run(['/srv/sticky/fresh.txt'], '/drop')).outcome, 'exited');
      assert.equal(fs.statSync(target.local('/drop/fresh.txt')).uid, nobody);
      // The account's own directory holds directories of root's: it may not write below them.
      fs.mkdirSync(target.local('/home/nobody/tree/site'), { recursive: true });
      fs.mkdirSync(target.local('/home/nobody/tree/deep'));
      fs.chownSync(target.local('/home/nobody/tree'), nobody, nobody);
      const site = await run(['/srv/tree/site/'], '/home/nobody/tree');
      assert.equal(site.outcome, 'target_invalid');
      assert.equal(site.message, '/home/nobody/tree/site is not writable by nobody');
      assert.deepEqual(fs.readdirSync(target.local('/home/nobody/tree/site')), []);
      const deep = await run(['/srv/tree/deep/'], '/home/nobody/tree');
      assert.equal(deep.outcome, 'target_invalid');
      assert.equal(deep.message, '/home/nobody/tree/deep is not writable by nobody');
      assert.deepEqual(fs.readdirSync(target.local('/home/nobody/tree/deep')), []);
    },
  );

  it('keeps each agent in its own file root', async () => {
    const a = fileHost('127.0.0.3');
    const b = fileHost('127.0.0.4');
    put(a, '/only/in/a.txt', 'a');
    assert.equal((await offer(b, ['/only/in/a.txt'])).answer.error?.kind, 'missing');
    const s = await offer(a, ['/only/in/a.txt']);
    const msg = downloadMsg([s.source], '/tmp/jobfleet-root-check');
    b.runner.download(msg);
    assert.equal((await b.reports.finishedResult(msg.key)).outcome, 'exited');
    assert.ok(fs.existsSync(path.join(b.root, 'tmp/jobfleet-root-check/a.txt')));
    assert.equal(fs.existsSync('/tmp/jobfleet-root-check'), false);
    assert.equal(fs.existsSync(path.join(a.root, 'tmp/jobfleet-root-check')), false);
  });
});
