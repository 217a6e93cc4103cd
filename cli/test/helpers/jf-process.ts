/**
 * Running `jf` as a real process (stdout and stderr piped, as in a script) against a test fleet,
 * and the server's test helpers, loaded from their compiled place (they are not part of its
 * package API).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type * as FleetModule from '../../../server/test/helpers/fleet.js';
import type * as ProcessesModule from '../../../server/test/helpers/processes.js';
import type * as ApiModule from '../../../server/test/helpers/api-client.js';

export const REPO = path.resolve(import.meta.dirname, '../../../..');
export const { startFleet } = (await import(
  path.join(REPO, 'server/dist/test/helpers/fleet.js')
)) as typeof FleetModule;
export const { RESTART_HEARTBEAT_ENV, stopAll, tempDir } = (await import(
  path.join(REPO, 'server/dist/test/helpers/processes.js')
)) as typeof ProcessesModule;
export const { admin, post } = (await import(
  path.join(REPO, 'server/dist/test/helpers/api-client.js')
)) as typeof ApiModule;

const JF = path.join(REPO, 'cli', 'bin', 'jf.js');
export const JOBFLEET = path.join(REPO, 'cli', 'bin', 'jobfleet.js');
export const ESC = '\u001b';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to jf's standard input (else it is empty). */
  input?: string;
  /** Close the reading end of jf's stdout at once, as `| head -0` would. */
  closeStdout?: boolean;
  /** Called once jf runs, e.g. to signal it. */
  started?: (p: ChildProcess) => void;
  /** The program to run instead of jf (e.g. the jobfleet command). */
  bin?: string;
}

/** Runs jf with `env` on top of `base`; resolves when it exits. */
export function runJf(
  base: Record<string, string>,
  args: string[],
  env: Record<string, string> = {},
  opts: RunOptions = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [opts.bin ?? JF, ...args], {
      env: { ...base, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdin.end(opts.input ?? '');
    if (opts.closeStdout) p.stdout.destroy();
    else p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    opts.started?.(p);
  });
}

/** One clear line on stderr, nothing on stdout. */
export function oneErrorLine(r: Run, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}
