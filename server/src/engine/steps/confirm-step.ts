/**
 * Confirmation steps: no hosts; the step and its job wait at 7 until an approver continues
 * (operate_step_instance 6) or terminates (9) it. Approvers are told through the step's
 * notify channels: "webhook" POSTs a JSON body to the step's webhook URL through the job's
 * callback queue, so it is retried, allow-listed and listed like a callback.
 */
import type { Services } from '../../services.js';
import type { JobInstance } from '../../store/execution-store.js';
import type { StepKind, StepRun } from '../step-kind.js';

export type Notify = (jobInstanceId: number, url: string, payload: string) => Promise<void>;

export class ConfirmStep implements StepKind {
  constructor(
    private readonly services: Services,
    private readonly notify: Notify,
  ) {}

  async entered(step: StepRun, job: JobInstance): Promise<'wait'> {
    const store = this.services.store.executions;
    // Approvers are told before the step waits: a crash or a store error in between enters
    // the step again (told twice at worst), where a step stored waiting is never entered again.
    await this.tell(step, job);
    await store.waitForPerson(step.stepInstanceId, job.id);
    return 'wait';
  }

  private async tell(step: StepRun, job: JobInstance): Promise<void> {
    const spec = step.spec;
    if (spec.kind === 'confirm' && spec.webhookUrl && spec.notifyChannels.includes('webhook')) {
      await this.notify(
        job.id,
        spec.webhookUrl,
        JSON.stringify({
          event: 'confirmation_pending',
          bk_scope_type: job.scope_type,
          bk_scope_id: job.scope_id,
          job_instance_id: job.id,
          job_instance_name: job.name,
          step_instance_id: step.stepInstanceId,
          approvers: spec.approvers,
          message: spec.message,
        }),
      );
    }
  }

  send(): boolean {
    return false;
  }
}
