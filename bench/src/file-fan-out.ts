/**
 * P6: one large file from one host to many, agent to agent, against cp writing the same bytes
 * to as many files on the same disk. Each agent has its own file root under the bench's temp
 * directory, so the copies land on the same disk as cp's.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { BkApi } from './bk-api.js';
import { waitForSuccess } from './bk-api.js';

const MiB = 1024 * 1024;

/** Writes `bytes` of incompressible data (a random block repeated) to `file`. */
export function writeSourceFile(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const block = crypto.randomBytes(MiB);
  const fd = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < bytes; written += MiB)
      fs.writeSync(fd, block, 0, Math.min(MiB, bytes - written));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Seconds from submission until every target has the file, verified by its agent. */
export async function transferOnce(
  api: BkApi,
  sourceHostId: number,
  targets: number[],
  account: string,
): Promise<number> {
  const t0 = performance.now();
  const job = await api.transferFile(sourceHostId, '/data/p6.bin', '/p6/', targets, account);
  const done = await waitForSuccess(api, job.job_instance_id, targets.length, {
    timeoutMs: 900_000,
    pollMs: 100,
  });
  return (done - t0) / 1000;
}

/** Seconds for `copies` sequential cp of the file, flushed to disk like the agents' copies. */
export function cpBaseline(file: string, copies: number, workDir: string): number {
  const dir = fs.mkdtempSync(path.join(workDir, 'cp-'));
  const t0 = performance.now();
  for (let i = 0; i < copies; i++) execFileSync('cp', [file, path.join(dir, `copy-${i}`)]);
  execFileSync('sync', ['-f', dir]);
  const secs = (performance.now() - t0) / 1000;
  fs.rmSync(dir, { recursive: true, force: true });
  return secs;
}
