/**
 * A large file moves between two agents' runners with memory bounded by buffers, not by the
 * file: both the serving and the downloading side stream.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-test-large-'));
after(() => fs.rmSync(workDir, { recursive: true, force: true }));

const SIZE = 256 * 1024 * 1024;
const MAX_GROWTH = 64 * 1024 * 1024;

describe('Large files', () => {
  it("streams 256 MiB from source to target with the agent's RSS growing by less than 64 MiB", async () => {
    const fixture = fileURLToPath(new URL('./fixtures/large-transfer-process.js', import.meta.url));
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [fixture, workDir, String(SIZE)], { timeout: 60_000 }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
    const r = JSON.parse(stdout) as {
      outcome: string;
      message: string;
      received: number;
      sha256: string;
      growth: number;
    };
    assert.equal(r.outcome, 'exited', r.message);
    assert.equal(r.received, SIZE);
    const zeros = createHash('sha256');
    const block = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < SIZE / block.length; i++) zeros.update(block);
    assert.equal(r.sha256, zeros.digest('hex'));
    assert.ok(r.growth < MAX_GROWTH, `RSS grew by ${(r.growth / 1024 / 1024).toFixed(1)} MiB`);
  });
});
