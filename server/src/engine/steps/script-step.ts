/**
 * Script steps: each target host runs the script through its agent. A SQL script runs the
 * database client instead; its account's password is opened from the store when the step's
 * tasks are about to be sent, held only while the step runs, and sent only inside the tasks.
 * A sensitive parameter or cipher variable sealed under a key this server does not hold is
 * never guessed at: the host's task ends at once at 12 (submit failed) with error_code 1244903.
 */
import { PROTOCOL_VERSION, taskKey } from '@jobfleet/protocol';
import type { DatabaseLogin, RunScript } from '@jobfleet/protocol';
import type { Services } from '../../services.js';
import { foldReports, parseReported, scriptParamOf, shellPrelude, startingVars } from '../job-variables.js';
import type { VarState } from '../job-variables.js';
import { ERROR_CATALOGUE } from '../../api/error-catalogue.js';
import { openStepParam } from '../sensitive-params.js';
import { HostStatus, SCRIPT_LANGUAGES } from '../statuses.js';
import type { StepKind, StepRun, TaskEnd, TaskRun } from '../step-kind.js';

export class ScriptStep implements StepKind {
  /**
   * Database logins of running SQL steps, by step instance id, with the attempt they were opened
   * for: a retry opens the password again (it may have been changed to fix the failure; a server
   * that lost the step to another owner kept the old one).
   */
  private readonly logins = new Map<
    number,
    | { executeCount: number; login: DatabaseLogin }
    | { executeCount: number; unopenable: Error }
    | { executeCount: number; deleted: number }
  >();
  /**
   * step instance id -> the job's variables as the step's attempt started, and whether that
   * attempt stored what its hosts left already (it ended before a restart and ends again now)
   */
  private readonly vars = new Map<number, { executeCount: number; state: VarState; stored: boolean }>();

  /** Steps whose unopenable secret (or deleted account) was already logged. */
  private readonly failureLogged = new Set<number>();

  constructor(
    private readonly services: Services,
    private readonly failWaiting: (
      stepInstanceId: number,
      hostId: number,
      status: number,
      errorCode: number,
    ) => void,
  ) {}

  /** Ends a task whose secret does not open; logged once per step. */
  private unopenable(step: StepRun, task: TaskRun, what: string, err: unknown): true {
    return this.failTask(step, task, ERROR_CATALOGUE.SEALED_VALUE_UNOPENABLE.code, () =>
      this.services.log.error(
        { step: step.stepInstanceId, job: step.jobInstanceId, err: (err as Error).message },
        `${what} does not open; give the key it was sealed under in serverKeysPrevious`,
      ),
    );
  }

  private failTask(step: StepRun, task: TaskRun, errorCode: number, logOnce: () => void): true {
    if (!this.failureLogged.has(step.stepInstanceId)) {
      this.failureLogged.add(step.stepInstanceId);
      logOnce();
    }
    this.failWaiting(step.stepInstanceId, task.hostId, HostStatus.SUBMIT_FAILED, errorCode);
    return true;
  }

  /**
   * The variables the step's attempt starts from: the job's last stored, but not those the
   * attempt stored itself (it ended before a restart): folded into those, every host whose value
   * differs from the result counts as having changed it, and one of them replaces the value that won.
   */
  private async varsAtStart(step: StepRun): Promise<{ state: VarState; stored: boolean }> {
    const states = await this.services.store.plans.varStates(step.jobInstanceId);
    const stored = states.some(
      (s) => s.stepInstanceId === step.stepInstanceId && s.executeCount === step.executeCount,
    );
    return { state: startingVars(states, step.stepInstanceId, step.executeCount), stored };
  }

  async beginBatch(step: StepRun): Promise<void> {
    await Promise.all([this.openLogin(step), this.loadVars(step)]);
  }

  private async loadVars(step: StepRun): Promise<void> {
    if (step.spec.kind !== 'script' || !step.spec.vars) return;
    const held = this.vars.get(step.stepInstanceId);
    if (held?.executeCount === step.executeCount) return;
    this.vars.set(step.stepInstanceId, {
      executeCount: step.executeCount,
      ...(await this.varsAtStart(step)),
    });
  }

  private async openLogin(step: StepRun): Promise<void> {
    const db = step.spec.kind === 'script' ? step.spec.database : undefined;
    if (!db || this.logins.get(step.stepInstanceId)?.executeCount === step.executeCount) return;
    const { executeCount } = step;
    const sealed = await this.services.store.accounts.sealedPassword(db.accountId);
    // Deleted after the job was submitted (a job not started yet, a step after a confirmation).
    if (sealed === undefined) {
      this.logins.set(step.stepInstanceId, { executeCount, deleted: db.accountId });
      return;
    }
    try {
      // A password that does not open is never guessed at: an empty one could log in as another
      // database user.
      if (!sealed) throw new Error(`database account ${db.accountId} has no password stored`);
      const password = this.services.secretBox.open(sealed, `account:${db.accountId}`);
      this.logins.set(step.stepInstanceId, {
        executeCount,
        login: { engine: db.engine, user: db.user, password, port: db.port },
      });
    } catch (err) {
      this.logins.set(step.stepInstanceId, { executeCount, unopenable: err as Error });
    }
  }

  send(step: StepRun, task: TaskRun): boolean {
    const spec = step.spec;
    if (spec.kind !== 'script') return false;
    let params: string;
    try {
      params = openStepParam(this.services.secretBox, spec);
    } catch (err) {
      return this.unopenable(step, task, 'sensitive parameter', err);
    }
    const held = this.logins.get(step.stepInstanceId);
    if (held && 'unopenable' in held)
      return this.unopenable(step, task, 'database password', held.unopenable);
    if (held && 'deleted' in held)
      return this.failTask(step, task, ERROR_CATALOGUE.ACCOUNT_NOT_EXIST.code, () =>
        this.services.log.warn(
          { step: step.stepInstanceId, job: step.jobInstanceId },
          `database account ${held.deleted} was deleted after the job was submitted: its hosts fail`,
        ),
      );
    const login = held && 'login' in held ? held.login : undefined;
    const vars = this.vars.get(step.stepInstanceId);
    if (vars) params = scriptParamOf(params, vars.state);
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
    if (vars && msg.language === 'shell') {
      let shell: ReturnType<typeof shellPrelude>;
      try {
        shell = shellPrelude(vars.state, task.hostId, this.services.secretBox);
      } catch (err) {
        return this.unopenable(step, task, 'cipher variable', err);
      }
      const { prelude, env } = shell;
      msg.script = Buffer.concat([Buffer.from(prelude), Buffer.from(spec.scriptContent, 'base64')]).toString(
        'base64',
      );
      msg.env = env;
      msg.varsOut = true;
    }
    return this.services.hub.send(task.hostId, msg);
  }

  async taskEnded(step: StepRun, hostId: number, end: TaskEnd): Promise<number> {
    if (end.vars !== undefined && this.vars.has(step.stepInstanceId)) {
      await this.services.store.plans.putHostVars(
        step.stepInstanceId,
        step.executeCount,
        hostId,
        JSON.stringify(parseReported(end.vars)),
      );
    }
    return end.status;
  }

  endsWithResults(step: StepRun): boolean {
    return !this.vars.has(step.stepInstanceId);
  }

  /** Records the variables as the step left them, for the steps after it and for get_job_instance_global_var_value. */
  async release(step: StepRun): Promise<void> {
    this.logins.delete(step.stepInstanceId);
    this.failureLogged.delete(step.stepInstanceId);
    const held = this.vars.get(step.stepInstanceId);
    if (!held) return;
    this.vars.delete(step.stepInstanceId);
    if (held.stored) return;
    const reports = await this.services.store.plans.hostVars(step.stepInstanceId, step.executeCount);
    const state = foldReports(
      held.state,
      reports.map((r) => ({ hostId: r.hostId, values: JSON.parse(r.body) as Record<string, string> })),
    );
    await this.services.store.plans.addVarState(
      step.jobInstanceId,
      step.stepInstanceId,
      step.executeCount,
      JSON.stringify(state),
    );
  }
}
