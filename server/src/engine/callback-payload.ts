/**
 * The body POSTed to a job's callback_url when it finishes (behaviour notes §7). BK-JOB's code
 * sends `step_instances`; its documents say `step_instance_list`. Both keys are sent, with the
 * same content, so receivers written against either work.
 */
import type { StepHead } from '../store/execution-store.js';

/**
 * How every job callback's payload begins (job_instance_id is its first key): what tells a
 * job's end callback from a confirmation notification (`{"event":...`) in the same queue.
 */
export const JOB_CALLBACK_PAYLOAD_START = '{"job_instance_id":';

export function callbackPayload(jobInstanceId: number, status: number, steps: readonly StepHead[]): string {
  const list = steps.map((s) => ({ step_instance_id: s.id, status: s.status }));
  return JSON.stringify({
    job_instance_id: jobInstanceId,
    status,
    step_instances: list,
    step_instance_list: list,
  });
}
