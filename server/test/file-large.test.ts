/**
 * A 1 GiB file to 3 targets through the server (a local upload, the one path where bytes do
 * pass through it): the server streams, so its peak memory grows by far less than the file.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { post } from './helpers/api-client.js';
import { startFleet, waitFinished, stopFleets } from './helpers/fleet.js';

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

function memoryOf(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** 1 GiB of a repeating random block, generated as it is sent, with its sha256. */
function payload(): { stream: Readable; sha256: Promise<string> } {
  const block = crypto.randomBytes(MiB);
  const hash = crypto.createHash('sha256');
  let sent = 0;
  let done: (v: string) => void = () => undefined;
  const sha256 = new Promise<string>((r) => (done = r));
  const stream = new Readable({
    read() {
      if (sent >= GiB) {
        done(hash.digest('hex'));
        this.push(null);
        return;
      }
      hash.update(block);
      sent += block.length;
      this.push(block);
    },
  });
  return { stream, sha256 };
}

async function fileSha(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

after(stopFleets);

test('1 GiB to 3 targets through the server grows its memory by less than 64 MiB', async () => {
  const fleet = await startFleet('sqlite', 3, { fileRoots: true });
  const pid = fleet.server.proc.pid ?? 0;
  const before = memoryOf(pid);
  const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
    fleet.server.url,
    'generate_local_file_upload_url',
    { ...fleet.scope, file_name_list: ['big.img'] },
    fleet.creds,
  );
  const entry = urls.data.url_map['big.img'];
  assert.ok(entry);
  const { stream, sha256 } = payload();
  const up = await fetch(entry.upload_url, {
    method: 'PUT',
    body: Readable.toWeb(stream) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  const upBody = (await up.json()) as {
    result: boolean;
    data: { size: number; sha256: string };
    message: string;
  };
  assert.equal(upBody.result, true, upBody.message);
  assert.equal(upBody.data.size, GiB);
  assert.equal(upBody.data.sha256, await sha256);

  const r = await post<{ job_instance_id: number }>(
    fleet.server.url,
    'fast_transfer_file',
    {
      ...fleet.scope,
      account_alias: fleet.account,
      file_source_list: [{ file_type: 2, file_list: [entry.path] }],
      file_target_path: '/images/',
      target_server: { host_id_list: [...fleet.hostIds.values()] },
    },
    fleet.creds,
  );
  assert.equal(r.result, true, r.message);
  const st = await waitFinished(fleet, r.data.job_instance_id, 240_000);
  assert.equal(st.job_instance.status, 3, JSON.stringify(st.step_instance_list));
  const after = memoryOf(pid);
  const grown = after.peak - before.rss;
  assert.ok(grown < 64 * MiB, `server peak memory grew by ${(grown / MiB).toFixed(1)} MiB`);
  for (const root of fleet.fileRoots.values()) {
    const file = path.join(root, 'images', 'big.img');
    assert.equal(fs.statSync(file).size, GiB);
    assert.equal(await fileSha(file), await sha256);
    fs.rmSync(file);
  }
  fs.rmSync(path.join(fleet.server.dataDir, 'files'), { recursive: true, force: true });
});
