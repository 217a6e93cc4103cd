/**
 * One fan-out as a BK-JOB client sees it: fast_execute_script on N hosts running `echo`,
 * then get_job_instance_status polled until the job is finished with every host successful.
 */
import type { BkApi, FastExecuteData } from './bk-api.js';
import { waitForSuccess } from './bk-api.js';

export interface FanOutRun {
  /** From the call until the job was first seen finished (seconds). */
  totalSeconds: number;
  /** How long fast_execute_script took to answer (seconds). */
  acceptSeconds: number;
  job: FastExecuteData;
}

/** The poll interval bounds the resolution of the figure; 20 ms is small beside a second. */
const POLL_MS = 20;

export async function fanOut(
  api: BkApi,
  hostIds: number[],
  account: string,
  onAccepted?: (job: FastExecuteData, acceptSeconds: number) => void,
): Promise<FanOutRun> {
  const t0 = performance.now();
  const job = await api.fastExecuteScript(hostIds, 'echo hello', account);
  const accepted = performance.now();
  onAccepted?.(job, (accepted - t0) / 1000);
  const finishedAt = await waitForSuccess(api, job.job_instance_id, hostIds.length, {
    timeoutMs: 300_000 + hostIds.length * 30,
    pollMs: POLL_MS,
  });
  return { totalSeconds: (finishedAt - t0) / 1000, acceptSeconds: (accepted - t0) / 1000, job };
}
