/**
 * File distribution end to end: real agents on 127.0.0.2-5, each with its own file root
 * (its view of "/"), real bytes checked with sha256 on every target.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { admin, eventually, get, post } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { handAgent } from './helpers/hand-agent.js';
import {
  hostStatuses,
  jobStatus,
  operateJob,
  startFleet,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import type { FileLogItem, Fleet, JobStatus } from './helpers/fleet.js';

const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

for (const engine of engines()) {
  describe(`file distribution on ${engine}`, () => {
    let fleet: Fleet;
    let ids: number[];
    const root = (ip: string) => fleet.fileRoots.get(ip) ?? '';
    const put = (ip: string, p: string, data: Buffer | string) => {
      const full = path.join(root(ip), p);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, data);
    };
    const read = (ip: string, p: string) => fs.readFileSync(path.join(root(ip), p));
    const exists = (ip: string, p: string) => fs.existsSync(path.join(root(ip), p));

    before(async () => {
      fleet = await startFleet(engine, IPS.length, {
        fileRoots: true,
        env: {
          JOBFLEET_UPLOAD_MAX_BYTES: String(4 * 1024 * 1024),
          JOBFLEET_UPLOAD_URL_TTL_SECONDS: '2',
          // One download at a time per host for large files: targets that finish must serve the rest.
          JOBFLEET_FILE_FANOUT: '1',
        },
      });
      ids = IPS.map((ip) => fleet.hostIds.get(ip) ?? 0);
    });
    after(stopFleets);

    const transfer = (body: Record<string, unknown>) =>
      post<{ job_instance_id: number; step_instance_id: number }>(
        fleet.server.url,
        'fast_transfer_file',
        { ...fleet.scope, account_alias: fleet.account, ...body },
        fleet.creds,
      );
    /** get_job_instance_ip_log of one host of a file step: its file logs. */
    const hostFileLogs = (job: { job_instance_id: number; step_instance_id: number }, hostId: number) =>
      get<{ log_type: number; log_content: null; file_logs: FileLogItem[] }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: job.job_instance_id,
          step_instance_id: job.step_instance_id,
          bk_host_id: hostId,
        },
        fleet.creds,
      );
    const fromHost = (ip: string, files: string[]) => ({
      file_list: files,
      server: { host_id_list: [fleet.hostIds.get(ip)] },
      account: { alias: fleet.account },
    });

    test('one file to many targets, verified on each, with file logs', async () => {
      const data = crypto.randomBytes(1024 * 1024 + 7);
      put(IPS[0] as string, '/data/src/app.bin', data);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/src/app.bin'])],
        file_target_path: '/opt/app/',
        target_server: { host_id_list: ids.slice(1) },
        // No limit, as BK-JOB reads a limit of 0 or less.
        upload_speed_limit: -1,
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      assert.equal(st.step_instance_list[0]?.type, 2);
      assert.deepEqual([...hostStatuses(st).values()], [9, 9, 9]);
      for (const ip of IPS.slice(1)) assert.equal(sha(read(ip, '/opt/app/app.bin')), sha(data));
      const log = await hostFileLogs(r.data, ids[1] ?? 0);
      assert.equal(log.data.log_type, 2);
      assert.equal(log.data.log_content, null);
      const download = log.data.file_logs.find((l) => l.mode === 1);
      assert.ok(download, JSON.stringify(log.data));
      assert.equal(download.status, 4);
      assert.equal(download.src_ip.ip, IPS[0]);
      assert.equal(download.dest_ip?.ip, IPS[1]);
      assert.equal(download.dest_path, '/opt/app/app.bin');
      assert.match(download.log_content, /FileName: \/opt\/app\/app\.bin .*Progress: 100%/);
      assert.ok(
        log.data.file_logs.some((l) => l.mode === 0 && l.src_ip.bk_host_id === ids[0]),
        'source upload log included',
      );
      // Of the source's uploads, the one to this host only (one per target).
      assert.equal(log.data.file_logs.filter((l) => l.mode === 0).length, 1, JSON.stringify(log.data));
      const batch = await post<{
        log_type: number;
        file_task_logs: { bk_host_id: number; file_logs: FileLogItem[] }[];
      }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          host_id_list: [ids[2], ids[0]],
        },
        fleet.creds,
      );
      assert.equal(batch.data.log_type, 2);
      const target = batch.data.file_task_logs.find((l) => l.bk_host_id === ids[2]);
      assert.equal(target?.file_logs[0]?.process, '100%');
      assert.match(target?.file_logs[0]?.size ?? '', /MB/);
      const source = batch.data.file_task_logs.find((l) => l.bk_host_id === ids[0]);
      assert.equal(source?.file_logs.filter((l) => l.mode === 0).length, 3, 'one upload log per target');
      const detail = await get<{
        type: number;
        file_info: { transfer_mode: number; file_destination: { path: string } };
        script_info: null;
      }>(
        fleet.server.url,
        'get_step_instance_detail',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
        },
        fleet.creds,
      );
      assert.equal(detail.data.type, 2);
      assert.equal(detail.data.script_info, null);
      assert.equal(detail.data.file_info.file_destination.path, '/opt/app/');
      assert.equal(detail.data.file_info.transfer_mode, 2);
    });

    test('long source and target paths: the file arrives and its file logs show it', async () => {
      // Eight names of 187 random characters (a name holds 255 bytes) on each side: some 3 KB of
      // paths that do not compress, which as a file log's key passed PostgreSQL's index row limit.
      const longDir = () =>
        Array.from({ length: 8 }, () => `/${crypto.randomBytes(140).toString('base64url')}`).join('');
      const srcFile = `${longDir()}/long.bin`;
      const targetDir = `${longDir()}/`;
      const data = crypto.randomBytes(10_000);
      put(IPS[0] as string, srcFile, data);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, [srcFile])],
        file_target_path: targetDir,
        target_server: { host_id_list: [ids[1]] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      assert.equal(sha(read(IPS[1] as string, `${targetDir}long.bin`)), sha(data));
      const one = await hostFileLogs(r.data, ids[1] ?? 0);
      const download = one.data.file_logs.find((l) => l.mode === 1);
      assert.ok(download, `no download log: ${JSON.stringify(one.data).slice(0, 500)}`);
      assert.deepEqual(
        [download.status, download.src_ip.ip, download.src_path, download.dest_path],
        [4, IPS[0], srcFile, `${targetDir}long.bin`],
      );
      const batch = await post<{ file_task_logs: { bk_host_id: number; file_logs: FileLogItem[] }[] }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          host_id_list: [ids[0], ids[1]],
        },
        fleet.creds,
      );
      const logsOf = (id: number | undefined) =>
        batch.data.file_task_logs.find((t) => t.bk_host_id === id)?.file_logs ?? [];
      assert.deepEqual(
        logsOf(ids[1]).map((l) => [l.mode, l.status, l.src_path, l.dest_path, l.process]),
        [[1, 4, srcFile, `${targetDir}long.bin`, '100%']],
      );
      assert.deepEqual(
        logsOf(ids[0]).map((l) => [l.mode, l.status, l.src_path, l.dest_ip?.bk_host_id]),
        [[0, 4, srcFile, undefined]],
        'the source upload log',
      );
    });

    test('a directory tree, a REGEX selection and files from several hosts', async () => {
      put(IPS[0] as string, '/etc/svc/conf.d/a.conf', 'A');
      put(IPS[0] as string, '/etc/svc/conf.d/nested/b.conf', 'B');
      put(IPS[0] as string, '/var/log/app-1.log', 'one');
      put(IPS[0] as string, '/var/log/app-2.log', 'two');
      put(IPS[0] as string, '/var/log/other.txt', 'no');
      put(IPS[1] as string, '/srv/extra.txt', 'extra');
      const r = await transfer({
        file_source_list: [
          fromHost(IPS[0] as string, ['/etc/svc/conf.d/', '/var/log/REGEX:^app-\\d\\.log$']),
          fromHost(IPS[1] as string, ['/srv/extra.txt']),
        ],
        file_target_path: '/backup',
        target_server: { host_id_list: [ids[2], ids[3]] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      for (const ip of IPS.slice(2)) {
        assert.equal(read(ip, '/backup/conf.d/a.conf').toString(), 'A');
        assert.equal(read(ip, '/backup/conf.d/nested/b.conf').toString(), 'B');
        assert.equal(read(ip, '/backup/app-1.log').toString(), 'one');
        assert.equal(read(ip, '/backup/app-2.log').toString(), 'two');
        assert.equal(exists(ip, '/backup/other.txt'), false);
        assert.equal(read(ip, '/backup/extra.txt').toString(), 'extra');
      }
    });

    test('a locally uploaded file reaches the targets; bad uploads are refused', async () => {
      const data = crypto.randomBytes(300_000);
      const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: [' payload.tgz', 'big.bin'] },
        fleet.creds,
      );
      assert.equal(urls.result, true, urls.message);
      // Keyed by the name as sent; the file is stored under the name without its blanks.
      const entry = urls.data.url_map[' payload.tgz'];
      assert.ok(entry, JSON.stringify(urls.data));
      assert.match(entry.path, /\/payload\.tgz$/);
      const none = await post<{ url_map: Record<string, unknown> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: [] },
        fleet.creds,
      );
      assert.deepEqual(none.data, { url_map: {} }, none.message);
      const up = await fetch(entry.upload_url, { method: 'PUT', body: data });
      const upBody = (await up.json()) as { result: boolean; data: { size: number; sha256: string } };
      assert.equal(upBody.result, true);
      assert.equal(upBody.data.sha256, sha(data));
      const again = (await (await fetch(entry.upload_url, { method: 'PUT', body: data })).json()) as {
        code: number;
      };
      assert.equal(again.code, 1243016, 'an upload URL works once');
      const big = urls.data.url_map['big.bin'];
      const tooBig = (await (
        await fetch(big?.upload_url ?? '', { method: 'PUT', body: Buffer.alloc(5 * 1024 * 1024) })
      ).json()) as { code: number };
      assert.equal(tooBig.code, 1243015);
      const r = await transfer({
        file_source_list: [{ file_type: 2, file_list: [entry.path] }],
        file_target_path: '/inbox/',
        target_server: { host_id_list: [ids[1]] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      assert.equal(sha(read(IPS[1] as string, '/inbox/payload.tgz')), sha(data));
      // Unknown paths and expired URLs.
      const unknown = await transfer({
        file_source_list: [{ file_type: 2, file_list: ['2/nope/x/y'] }],
        file_target_path: '/inbox/',
        target_server: { host_id_list: [ids[1]] },
      });
      assert.equal(unknown.code, 1241007);
      const late = await post<{ url_map: Record<string, { upload_url: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['late.txt'] },
        fleet.creds,
      );
      await new Promise((r2) => setTimeout(r2, 2500));
      const expired = (await (
        await fetch(late.data.url_map['late.txt']?.upload_url ?? '', { method: 'PUT', body: 'x' })
      ).json()) as { code: number };
      assert.equal(expired.code, 1243016);
    });

    test('push_config_file writes the given contents', async () => {
      const r = await post<{ job_instance_id: number }>(
        fleet.server.url,
        'push_config_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/etc/myapp',
          target_server: { host_id_list: [ids[2], ids[3]] },
          file_list: [
            { file_name: 'app.ini', content: Buffer.from('[main]\nport=8080\n').toString('base64') },
            { file_name: '100%.conf', content: Buffer.from('all\n').toString('base64') },
          ],
        },
        fleet.creds,
      );
      assert.equal(r.result, true, r.message);
      // As BK-JOB answers it: the step's id is null.
      assert.equal((r.data as { step_instance_id?: unknown }).step_instance_id, null);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      for (const ip of IPS.slice(2)) {
        assert.equal(read(ip, '/etc/myapp/app.ini').toString(), '[main]\nport=8080\n');
        assert.equal(read(ip, '/etc/myapp/100%.conf').toString(), 'all\n');
      }
      // Any validation failure answers 1241002 (behaviour notes §3.14).
      for (const patch of [
        { file_target_path: 'relative/dir' },
        { file_list: [{ file_name: 'a', content: '' }] },
        { file_list: [] },
        { account_alias: undefined, account_id: 0 },
        { account_alias: '  ' },
        { target_server: {} },
        { target_server: { host_id_list: [] } },
      ]) {
        const refused = await post(
          fleet.server.url,
          'push_config_file',
          {
            ...fleet.scope,
            account_alias: fleet.account,
            file_target_path: '/x',
            target_server: { host_id_list: [ids[2]] },
            file_list: [{ file_name: 'a', content: 'eA==' }],
            ...patch,
          },
          fleet.creds,
        );
        assert.equal(refused.code, 1241002, `${JSON.stringify(patch)}: ${refused.message}`);
      }
    });

    test('strict mode fails a missing directory (202); a missing source fails every target (203)', async () => {
      put(IPS[0] as string, '/data/s.txt', 'strict');
      const strict = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/s.txt'])],
        file_target_path: '/no/such/dir',
        transfer_mode: 1,
        target_server: { host_id_list: [ids[1]] },
      });
      const st = await waitFinished(fleet, strict.data.job_instance_id);
      assert.equal(hostStatuses(st).get(ids[1] ?? 0), 202);
      assert.equal(exists(IPS[1] as string, '/no/such/dir'), false);
      const missing = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/absent.txt'])],
        file_target_path: '/tmp/x',
        target_server: { host_id_list: [ids[1], ids[2]] },
      });
      const st2 = await waitFinished(fleet, missing.data.job_instance_id);
      assert.deepEqual([...hostStatuses(st2).values()], [203, 203]);
      assert.equal(st2.job_instance.status, 4);
    });

    test('a download speed limit is honoured (the transfer takes at least size / limit)', async () => {
      const data = crypto.randomBytes(3 * 1024 * 1024);
      put(IPS[0] as string, '/data/slow.bin', data);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/slow.bin'])],
        file_target_path: '/slow',
        download_speed_limit: 1,
        target_server: { host_id_list: [ids[1]] },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      const h = st.step_instance_list[0]?.step_ip_result_list?.[0];
      assert.equal(h?.status, 9);
      assert.ok((h?.total_time as number) >= 2700, `took ${String(h?.total_time)} ms for 3 MiB at 1 MB/s`);
      assert.equal(sha(read(IPS[1] as string, '/slow/slow.bin')), sha(data));
    });

    test('terminate mid-transfer stops it and leaves no partial file', async () => {
      put(IPS[0] as string, '/data/term.bin', crypto.randomBytes(4 * 1024 * 1024));
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/term.bin'])],
        file_target_path: '/term',
        download_speed_limit: 1,
        target_server: { host_id_list: [ids[2]] },
      });
      await eventually(async () => {
        const s = await get<JobStatus>(
          fleet.server.url,
          'get_job_instance_status',
          { ...fleet.scope, job_instance_id: r.data.job_instance_id, return_ip_result: true },
          fleet.creds,
        );
        return s.data.step_instance_list[0]?.step_ip_result_list?.[0]?.status === 7 ? true : undefined;
      });
      await new Promise((r2) => setTimeout(r2, 500));
      const t = await operateJob(fleet, r.data.job_instance_id, 1);
      assert.equal(t.result, true, t.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 11);
      assert.equal(hostStatuses(st).get(ids[2] ?? 0), 403);
      const dir = path.join(root(IPS[2] as string), 'term');
      const left = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
      assert.deepEqual(left, [], 'no partial or complete file left');
    });

    test('a large file fans out through targets that finished, not all from the source', async () => {
      const data = crypto.randomBytes(9 * 1024 * 1024);
      put(IPS[0] as string, '/data/large.bin', data);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/large.bin'])],
        file_target_path: '/large',
        target_server: { host_id_list: ids.slice(1) },
      });
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      const batch = await post<{ file_task_logs: { bk_host_id: number; file_logs: FileLogItem[] }[] }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          host_id_list: ids.slice(1),
        },
        fleet.creds,
      );
      const pulledFrom = batch.data.file_task_logs.map(
        (t) => t.file_logs.find((l) => l.mode === 1)?.src_ip.ip,
      );
      // The source serves one download at a time; whoever finished first serves the others.
      assert.equal(pulledFrom.length, 3);
      assert.ok(
        pulledFrom.some((ip) => ip !== IPS[0]),
        `pulled from ${pulledFrom.join(', ')}`,
      );
      for (const ip of IPS.slice(1)) assert.equal(sha(read(ip, '/large/large.bin')), sha(data));
    });

    test('a seed offer the server did not ask for is ignored, however well it matches', async () => {
      const data = crypto.randomBytes(9 * 1024 * 1024);
      put(IPS[0] as string, '/data/seeded.bin', data);
      // An agent that is no target of the step offers to seed it, with the very files the
      // origin offers, from a listener of its own.
      const pulls: string[] = [];
      const listener = http.createServer((req, res) => {
        pulls.push(req.url ?? '');
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.66', resolve));
      const { port } = listener.address() as AddressInfo;
      const rogue = await handAgent(fleet.server, '127.0.0.66', 'rogue');
      try {
        const r = await transfer({
          file_source_list: [fromHost(IPS[0] as string, ['/data/seeded.bin'])],
          file_target_path: '/seeded',
          target_server: { host_id_list: ids.slice(1) },
        });
        assert.equal(r.result, true, r.message);
        const step = r.data.step_instance_id;
        const offer = JSON.stringify({
          v: 1,
          type: 'file.served',
          serveId: `${step}-0-seed-${rogue.hostId}`,
          url: `http://127.0.0.66:${port}`,
          files: [
            {
              sourcePath: '/seeded/seeded.bin',
              relPath: 'seeded.bin',
              size: data.length,
              sha256: sha(data),
              mode: 0o644,
            },
          ],
        });
        let done = false;
        const finished = waitFinished(fleet, r.data.job_instance_id).finally(() => (done = true));
        while (!done) {
          rogue.ws.send(offer);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const st = await finished;
        assert.equal(st.job_instance.status, 3, JSON.stringify(st));
        assert.deepEqual(pulls, []);
        for (const ip of IPS.slice(1)) assert.equal(sha(read(ip, '/seeded/seeded.bin')), sha(data));
      } finally {
        rogue.ws.close();
        listener.close();
      }
    });

    test('retry failed hosts and rolling batches work on file steps', async () => {
      put(IPS[0] as string, '/data/r.txt', 'retry me');
      put(IPS[1] as string, '/deploy/.keep', '');
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/r.txt'])],
        file_target_path: '/deploy',
        transfer_mode: 1,
        target_server: { host_id_list: [ids[1], ids[2]] },
        // Mode 1: the failed last batch fails the step, which can then be retried (mode 2 would
        // end it 6, "ignore error", and go on).
        rolling_config: { mode: 1, expression: '1' },
      });
      assert.equal(r.result, true, r.message);
      const first = await waitFinished(fleet, r.data.job_instance_id);
      assert.deepEqual(
        [ids[1], ids[2]].map((id) => hostStatuses(first).get(id ?? 0)),
        [9, 202],
      );
      put(IPS[2] as string, '/deploy/.keep', '');
      const retry = await post(
        fleet.server.url,
        'operate_step_instance',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          operation_code: 2,
        },
        fleet.creds,
      );
      assert.equal(retry.result, true, retry.message);
      const second = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(second.job_instance.status, 3);
      assert.deepEqual(
        [ids[1], ids[2]].map((id) => hostStatuses(second).get(id ?? 0)),
        [3, 9],
      );
      assert.equal(read(IPS[2] as string, '/deploy/r.txt').toString(), 'retry me');

      // Logs of the retry: the host kept as "last success" keeps the transfer that ran it; a host
      // of the inventory that took no part in the step is not answered; the source is, by id or ip.
      const where = { job_instance_id: r.data.job_instance_id, step_instance_id: r.data.step_instance_id };
      const kept = await hostFileLogs(where, ids[1] ?? 0);
      const keptDownload = kept.data.file_logs.find((l) => l.mode === 1);
      assert.equal(keptDownload?.status, 4, JSON.stringify(kept.data));
      assert.equal(keptDownload?.dest_ip?.bk_host_id, ids[1]);
      const batch = await post<{
        file_task_logs: { bk_host_id: number; bk_cloud_id: number; ip: string; file_logs: FileLogItem[] }[];
      }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        { ...fleet.scope, ...where, host_id_list: [ids[1], ids[2], ids[3], ids[0]] },
        fleet.creds,
      );
      assert.equal(batch.result, true, batch.message);
      const answered = new Map(batch.data.file_task_logs.map((t) => [t.bk_host_id, t]));
      assert.deepEqual([...answered.keys()], [ids[1], ids[2], ids[0]]);
      for (const id of [ids[1], ids[2]])
        assert.equal(answered.get(id ?? 0)?.file_logs.find((l) => l.mode === 1)?.status, 4, `host ${id}`);
      const source = answered.get(ids[0] ?? 0);
      assert.equal(source?.ip, IPS[0]);
      // The source's upload of the retry only: the kept host's transfer belongs to the first run.
      assert.equal(source?.file_logs.filter((l) => l.mode === 0).length, 1, JSON.stringify(source));
      const byIp = await get<{ bk_host_id: number | null; file_logs: FileLogItem[] }>(
        fleet.server.url,
        'get_job_instance_ip_log',
        { ...fleet.scope, ...where, bk_cloud_id: source?.bk_cloud_id ?? 0, ip: IPS[0] as string },
        fleet.creds,
      );
      assert.equal(byIp.data.bk_host_id, ids[0]);
      assert.equal(byIp.data.file_logs.filter((l) => l.mode === 0).length, 1, JSON.stringify(byIp.data));
    });

    test('a source agent restarted mid-step offers again: the targets not yet served get its files', async () => {
      // 9 MiB at 4 MiB/s, one download at a time from the source: the first target is mid-transfer
      // when the source restarts, the others wait in the queue.
      const data = crypto.randomBytes(9 * 1024 * 1024);
      put(IPS[0] as string, '/data/restart.bin', data);
      const targets = ids.slice(1, 3);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/restart.bin'])],
        file_target_path: '/restarted',
        download_speed_limit: 4,
        target_server: { host_id_list: targets },
      });
      const running = await eventually(async () => {
        const statuses = hostStatuses(await jobStatus(fleet, r.data.job_instance_id));
        const started = targets.filter((id) => statuses.get(id ?? 0) === 7);
        return started.length === 1 ? started[0] : undefined;
      });
      const source = fleet.agents[0];
      assert.ok(source);
      await source.kill('SIGKILL');
      fleet.agents[0] = await source.restart();
      const st = await waitFinished(fleet, r.data.job_instance_id, 60_000);
      const statuses = hostStatuses(st);
      // The download under way when its source died may fail; no target that waited does.
      for (const id of targets.filter((t) => t !== running))
        assert.equal(statuses.get(id ?? 0), 9, JSON.stringify(st));
      for (const [i, id] of targets.entries())
        if (statuses.get(id ?? 0) === 9)
          assert.equal(sha(read(IPS[i + 1] as string, '/restarted/restart.bin')), sha(data));
    });

    test('a target agent killed mid-transfer fails its host (310) and the others finish', async () => {
      const data = crypto.randomBytes(3 * 1024 * 1024);
      put(IPS[0] as string, '/data/kill.bin', data);
      const victim = fleet.agents[3];
      assert.ok(victim);
      const r = await transfer({
        file_source_list: [fromHost(IPS[0] as string, ['/data/kill.bin'])],
        file_target_path: '/k',
        download_speed_limit: 1,
        target_server: { host_id_list: [ids[2], ids[3]] },
      });
      await eventually(async () => {
        const s = await get<JobStatus>(
          fleet.server.url,
          'get_job_instance_status',
          { ...fleet.scope, job_instance_id: r.data.job_instance_id, return_ip_result: true },
          fleet.creds,
        );
        return hostStatuses(s.data).get(ids[3] ?? 0) === 7 ? true : undefined;
      });
      await victim.kill('SIGKILL');
      const st = await waitFinished(fleet, r.data.job_instance_id, 30_000);
      assert.equal(hostStatuses(st).get(ids[3] ?? 0), 310);
      assert.equal(hostStatuses(st).get(ids[2] ?? 0), 9);
      assert.equal(sha(read(IPS[2] as string, '/k/kill.bin')), sha(data));
      assert.equal(st.job_instance.status, 4);
    });

    test('bad input is refused with documented codes and starts nothing', async () => {
      // A second account of the same user: one source host cannot read as two accounts.
      const second = await post<{ id: number }>(
        fleet.server.url,
        'create_account',
        { ...fleet.scope, account: os.userInfo().username, alias: 'second-reader', type: 1, category: 1 },
        fleet.creds,
      );
      assert.equal(second.result, true, second.message);
      // A topology set without hosts: a source naming only it resolves to no host.
      const emptySet = await admin<{ id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/topology/sets',
        {
          bk_biz_id: Number(fleet.scope.bk_scope_id),
          name: 'no hosts here',
        },
      );
      assert.equal(emptySet.result, true, emptySet.message);
      const base = {
        file_source_list: [fromHost(IPS[0] as string, ['/data/s.txt'])],
        file_target_path: '/ok',
        target_server: { host_id_list: [ids[1]] },
      };
      const unknownSource = {
        file_list: ['/data/a'],
        account: { alias: fleet.account },
        server: { host_id_list: [999_999] },
      };
      const cases: [Record<string, unknown>, number][] = [
        [{ file_target_path: 'relative/path' }, 1241007],
        [{ file_target_path: '/a/../../etc' }, 1241007],
        [{ file_target_path: undefined }, 1241007],
        [{ file_source_list: [] }, 1241004],
        [{ file_source_list: [{ ...fromHost(IPS[0] as string, []) }] }, 1241007],
        [{ file_source_list: [fromHost(IPS[0] as string, ['relative.txt'])] }, 1241007],
        [{ file_source_list: [fromHost(IPS[0] as string, ['/x/../etc/passwd'])] }, 1241007],
        [{ file_source_list: [{ file_type: 3, file_list: ['bucket/x'] }] }, 1241005],
        [{ file_source_list: [{ file_type: 9, file_list: ['/x'] }] }, 1241005],
        [{ file_source_list: [{ file_list: ['/x'], account: { alias: fleet.account } }] }, 1241004],
        [{ file_target_name: '../x' }, 1241007],
        // The request's own fields are checked before its sources are looked up.
        [{ target_server: undefined, file_source_list: [unknownSource] }, 1241004],
        [{ account_alias: ' ', file_source_list: [unknownSource] }, 1241004],
        [
          {
            file_source_list: [
              fromHost(IPS[0] as string, ['/data/a']),
              { ...fromHost(IPS[0] as string, ['/data/b']), account: { alias: 'second-reader' } },
            ],
          },
          1241005,
        ],
        [
          {
            file_source_list: [
              {
                file_list: ['/data/a'],
                account: { alias: fleet.account },
                server: { topo_node_list: [{ id: emptySet.data.id, node_type: 'set' }] },
              },
            ],
          },
          1244029,
        ],
      ];
      for (const [patch, code] of cases) {
        const body: Record<string, unknown> = { ...base, ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        const r = await transfer(body);
        assert.equal(r.result, false, JSON.stringify(patch));
        assert.equal(r.code, code, `${JSON.stringify(patch)}: ${r.message}`);
      }
      assert.equal(exists(IPS[1] as string, '/ok'), false);
    });
  });
}
