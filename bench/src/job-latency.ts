/**
 * P7: the latency of one small job as a BK-JOB client sees it. fast_execute_script on one host
 * running `echo`, then get_job_instance_status polled (without per-host results) until it says
 * finished; the time from the call until the reply that said so arrived. The baseline is the
 * same `sh -c 'echo hello'` started and reaped by the bench process itself.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { ProcessStarter } from '@jobfleet/agent';
import type { BkApi } from './bk-api.js';
import { waitForSuccess } from './bk-api.js';

/** The poll interval bounds the resolution of the figure; a client that wants speed polls this often. */
export const P7_POLL_MS = 2;

export async function oneHostJob(api: BkApi, hostId: number, account: string): Promise<number> {
  const t0 = performance.now();
  const job = await api.fastExecuteScript([hostId], 'echo hello', account);
  const finishedAt = await waitForSuccess(api, job.job_instance_id, 1, {
    timeoutMs: 60_000,
    pollMs: P7_POLL_MS,
  });
  return finishedAt - t0;
}

/** Milliseconds to start `sh -c 'echo hello'` and see it exit, from this process. */
export function spawnEcho(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = spawn('sh', ['-c', 'echo hello'], { stdio: ['ignore', 'pipe', 'ignore'] });
    proc.stdout.resume();
    proc.on('error', reject);
    proc.on('close', (code) =>
      code === 0 ? resolve(performance.now() - t0) : reject(new Error(`sh exited ${code}`)),
    );
  });
}

/**
 * Between P7.launch's starts and the baseline's: a host waiting for its next job. Longer than the
 * launcher's 10 ms of idleness before it forks a spare, so that the fork is over before the
 * next start or baseline (a real host waits seconds between jobs, not milliseconds).
 */
export const LAUNCH_PAUSE_MS = 20;

/**
 * Milliseconds from asking an agent's task starter (its launcher, as a real agent uses it) for
 * `sh -c 'echo hello'` until it reported the exit and the end of the output. Each call gets an
 * environment of its own, as an agent's tasks do (each carries its mark).
 */
export function launchEcho(starter: ProcessStarter, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let exited = false;
    let closed = false;
    const done = () => {
      if (exited && closed) resolve(performance.now() - t0);
    };
    starter.start(
      {
        file: '/bin/sh',
        args: ['sh', '-c', 'echo hello'],
        cwd: os.tmpdir(),
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', JOBFLEET_TASK: String(n) },
      },
      {
        started: () => undefined,
        failed: (message) => reject(new Error(message)),
        output: () => undefined,
        exit: (code) => {
          if (code !== 0) reject(new Error(`sh exited ${code}`));
          exited = true;
          done();
        },
        closed: () => {
          closed = true;
          done();
        },
      },
    );
  });
}
