/**
 * One host printing a large output: from fast_execute_script until get_job_instance_ip_log
 * returns every byte. The status is polled first (cheap); the log, which comes back whole in
 * every reply, is fetched once the job is finished and then every half second until complete.
 * The clock stops when the request that found the log complete was sent (the job's finish,
 * for the first one), so the transfer of the 100 MiB reply to the bench is not counted.
 * The status is polled every STATUS_POLL_MS: the figure is about half a second, and a coarser
 * poll (100 ms until round 12) added up to a fifth of it that the server never spent.
 */
import type { BkApi, FastExecuteData } from './bk-api.js';
import { ApiFailure, waitForSuccess } from './bk-api.js';
import { outputScript } from './shell-baselines.js';

const STATUS_POLL_MS = 10;

export async function bigOutput(
  api: BkApi,
  hostId: number,
  bytes: number,
  account: string,
): Promise<{ secs: number; job: FastExecuteData }> {
  const t0 = performance.now();
  const job = await api.fastExecuteScript([hostId], outputScript(bytes), account);
  let asked = await waitForSuccess(api, job.job_instance_id, 1, {
    timeoutMs: 600_000,
    pollMs: STATUS_POLL_MS,
  });
  const deadline = performance.now() + 120_000;
  for (;;) {
    const log = await api.ipLog(job, hostId);
    if (log.length === bytes) {
      if (!log.startsWith('jobfleet bench output line'))
        throw new ApiFailure('stored log does not hold the output');
      return { secs: (asked - t0) / 1000, job };
    }
    if (log.length > bytes) throw new ApiFailure(`stored log has ${log.length} bytes, expected ${bytes}`);
    if (performance.now() > deadline)
      throw new ApiFailure(`stored log stuck at ${log.length} of ${bytes} bytes`);
    await new Promise((r) => setTimeout(r, 500));
    asked = performance.now();
  }
}
