/**
 * The chaos run's file jobs: a file on one agent (and, for some jobs, an upload the server
 * stores) pushed to other agents, and what the checker holds them to: every target ends with
 * byte-exact copies and no part file, the job succeeds. A job one of whose hosts had its agent
 * killed while it ran may fail instead, but a target reported successful still has exact copies.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { post } from '../helpers/api-client.js';
import { waitJobFinished } from '../helpers/cluster.js';
import type { Cluster } from '../helpers/cluster.js';
import { hostStatuses } from '../helpers/fleet.js';

export interface FileJob {
  jobId: number;
  tag: string;
  source: string;
  targets: string[];
  /** Each file's name in the target directory, with its SHA-256. */
  files: { name: string; sha: string }[];
  submittedAt: number;
}

/** Whether the agent of host `ip` was killed while a job submitted at `from` and ended at `to` ran. */
export type KilledWhile = (ip: string, from: number, to: number) => boolean;

/** Host paths of each agent's file root on this machine. */
export type FileRoot = (ip: string, hostPath: string) => string;

export const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Each file in `dir` holds exactly its bytes (SHA-256), and no part file is left there. */
export function checkDelivered(dir: string, files: { name: string; sha: string }[], what: string): void {
  for (const file of files) {
    const at = path.join(dir, file.name);
    assert.ok(fs.existsSync(at), `${what}: ${file.name} missing`);
    assert.equal(sha(fs.readFileSync(at)), file.sha, `${what}: ${file.name}`);
  }
  const parts = fs.readdirSync(dir).filter((n) => n.endsWith('.jobfleet-part'));
  assert.deepEqual(parts, [], `${what}: part files left`);
}
let seq = 0;

/** The directory a file job delivers into, on every target. */
const inbox = (tag: string) => `/inbox/${tag}/`;

export async function submitFileJob(
  c: Cluster,
  via: number,
  root: FileRoot,
  job: { source: string; targets: string[]; bytes: number; upload: boolean },
): Promise<FileJob> {
  const f = c.via(via);
  const tag = `file${process.pid}-${++seq}`;
  const submittedAt = Date.now();
  const local = crypto.randomBytes(job.bytes);
  const held = root(job.source, `/data/${tag}.bin`);
  fs.mkdirSync(path.dirname(held), { recursive: true });
  fs.writeFileSync(held, local);
  const files = [{ name: `${tag}.bin`, sha: sha(local) }];
  const sources: Record<string, unknown>[] = [
    {
      file_list: [`/data/${tag}.bin`],
      server: { host_id_list: [c.hostIds.get(job.source)] },
      account: { alias: c.account },
    },
  ];
  if (job.upload) {
    const name = `${tag}-upload.bin`;
    const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
      f.server.url,
      'generate_local_file_upload_url',
      { ...f.scope, file_name_list: [name] },
      f.creds,
    );
    const entry = urls.data?.url_map[name];
    if (!urls.result || !entry) throw new Error(`upload URL refused: ${urls.message}`);
    const bytes = crypto.randomBytes(Math.ceil(job.bytes / 2));
    const up = (await (await fetch(entry.upload_url, { method: 'PUT', body: bytes })).json()) as {
      result: boolean;
      message: string;
    };
    if (!up.result) throw new Error(`upload refused: ${up.message}`);
    files.push({ name, sha: sha(bytes) });
    sources.push({ file_type: 2, file_list: [entry.path] });
  }
  const r = await post<{ job_instance_id: number }>(
    f.server.url,
    'fast_transfer_file',
    {
      ...f.scope,
      account_alias: f.account,
      file_source_list: sources,
      file_target_path: inbox(tag),
      target_server: { host_id_list: job.targets.map((ip) => c.hostIds.get(ip)) },
    },
    f.creds,
  );
  if (!r.result) throw new Error(`file job refused: ${r.message}`);
  return { jobId: r.data.job_instance_id, tag, submittedAt, ...job, files };
}

/**
 * The checker's invariants for a file job. `killedWhile` tells whether a host's agent was killed
 * while the job could run on it: only then may the job fail.
 */
export async function checkFileJob(
  c: Cluster,
  job: FileJob,
  root: FileRoot,
  killedWhile: KilledWhile,
): Promise<void> {
  const st = await waitJobFinished(c, job.jobId, 120_000);
  const end = Number(st.job_instance.end_time ?? Date.now());
  const statuses = hostStatuses(st);
  const exposed = [job.source, ...job.targets].some((ip) => killedWhile(ip, job.submittedAt, end));
  let allDone = true;
  for (const ip of job.targets) {
    const status = statuses.get(c.hostIds.get(ip) ?? 0);
    if (status !== 9) {
      allDone = false;
      assert.ok(
        exposed,
        `file job ${job.jobId}: target ${ip} ended ${status}; no agent of the job was killed`,
      );
      continue;
    }
    checkDelivered(root(ip, inbox(job.tag)), job.files, `file job ${job.jobId} on ${ip}`);
  }
  assert.equal(st.job_instance.status, allDone ? 3 : 4, `file job ${job.jobId} final status`);
}
