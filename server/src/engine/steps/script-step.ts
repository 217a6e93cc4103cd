/**
 * Script steps: each target host runs the script through its agent. A SQL script runs the
 * database client instead; its account's password is opened from the store when the step's
 * tasks are about to be sent, held only while the step runs, and sent only inside the tasks.
 */
import { PROTOCOL_VERSION, taskKey } from '@jobfleet/protocol';
import type { DatabaseLogin, RunScript } from '@jobfleet/protocol';
import type { Services } from '../../services.js';
import { openStepParam } from '../sensitive-params.js';
import { SCRIPT_LANGUAGES } from '../statuses.js';
import type { StepKind, StepRun, TaskRun } from '../step-kind.js';

export class ScriptStep implements StepKind {
  /** Database logins of running SQL steps, by step instance id. */
  private readonly logins = new Map<number, DatabaseLogin>();

  constructor(private readonly services: Services) {}

  async beginBatch(step: StepRun): Promise<void> {
    const db = step.spec.kind === 'script' ? step.spec.database : undefined;
    if (!db || this.logins.has(step.stepInstanceId)) return;
    const sealed = await this.services.store.accounts.sealedPassword(db.accountId);
    let password = '';
    try {
      if (sealed) password = this.services.secretBox.open(sealed, `account:${db.accountId}`);
    } catch (err) {
      // The tasks still go out: the database refuses the login and each host says so.
      this.services.log.error(
        { account: db.accountId, reason: (err as Error).message },
        'database account password cannot be opened',
      );
    }
    this.logins.set(step.stepInstanceId, { engine: db.engine, user: db.user, password, port: db.port });
  }

  send(step: StepRun, task: TaskRun): boolean {
    const spec = step.spec;
    if (spec.kind !== 'script') return false;
    let params: string;
    try {
      params = openStepParam(this.services.secretBox, spec);
    } catch (err) {
      // Sealed under a key this server was not given: the host is never sent a wrong value.
      this.services.log.error(
        { step: step.stepInstanceId, err: (err as Error).message },
        'sensitive parameter does not open; give the key it was sealed under in serverKeysPrevious',
      );
      return false;
    }
    const login = this.logins.get(step.stepInstanceId);
    const msg: RunScript = {
      v: PROTOCOL_VERSION,
      type: 'task.run',
      key: taskKey(step.stepInstanceId, step.executeCount, task.hostId),
      language: SCRIPT_LANGUAGES[spec.language],
      script: spec.scriptContent,
      params,
      timeoutSeconds: spec.timeout,
      user: spec.account.osUser,
      logCapBytes: this.services.config.logCapBytes,
      ...(login ? { database: login } : {}),
    };
    return this.services.hub.send(task.hostId, msg);
  }

  release(step: StepRun): Promise<void> {
    this.logins.delete(step.stepInstanceId);
    return Promise.resolve();
  }
}
