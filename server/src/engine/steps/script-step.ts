/** Script steps: each target host runs the script through its agent. */
import { PROTOCOL_VERSION, taskKey } from '@jobfleet/protocol';
import type { RunScript } from '@jobfleet/protocol';
import type { Services } from '../../services.js';
import { SCRIPT_LANGUAGES } from '../statuses.js';
import type { StepKind, StepRun, TaskRun } from '../step-kind.js';

export class ScriptStep implements StepKind {
  constructor(private readonly services: Services) {}

  send(step: StepRun, task: TaskRun): boolean {
    const spec = step.spec;
    if (spec.kind !== 'script') return false;
    const msg: RunScript = {
      v: PROTOCOL_VERSION,
      type: 'task.run',
      key: taskKey(step.stepInstanceId, step.executeCount, task.hostId),
      language: SCRIPT_LANGUAGES[spec.language],
      script: spec.scriptContent,
      params: spec.scriptParam,
      timeoutSeconds: spec.timeout,
      user: spec.account.osUser,
      logCapBytes: this.services.config.logCapBytes,
    };
    return this.services.hub.send(task.hostId, msg);
  }
}
