/** File steps: targets pull their files from peers, as `FileDistribution` arranges. */
import type { FileProgress, FilesServed } from '@jobfleet/protocol';
import { checkSourcePath, checkTargetPath } from '../../api/endpoints/file-paths.js';
import type { Services } from '../../services.js';
import { FileDistribution } from '../file-distribution.js';
import { startingVars, withFilePaths } from '../job-variables.js';
import { HostStatus, isHostSuccess } from '../statuses.js';
import type { StepKind, StepRun, TaskEnd, TaskRun } from '../step-kind.js';
import type { FileStepSpec } from '../step-spec.js';

/** A step's attempt as it runs: its paths put in, or why they cannot be. */
type Resolved = { executeCount: number } & ({ spec: FileStepSpec } | { problem: string });

export class FileStep implements StepKind {
  private readonly files: FileDistribution;
  /** Steps whose paths name variables, by step instance id. */
  private readonly resolved = new Map<number, Resolved>();

  constructor(
    private readonly services: Services,
    private readonly failTarget: (stepInstanceId: number, hostId: number, status: number) => void,
  ) {
    this.files = new FileDistribution(services, { failTarget });
  }

  /**
   * The paths of a plan's file step take `${name}` of string variables as the step starts, as a
   * script step's parameters do, so a value an earlier step set reaches them (as in BK-JOB).
   * Paths those values make invalid fail the step's targets (202), as a bad target does.
   */
  private async resolve(step: StepRun): Promise<Resolved> {
    const spec = step.spec;
    if (spec.kind !== 'file') throw new Error(`step ${step.stepInstanceId} is not a file step`);
    const { executeCount } = step;
    if (!spec.pathTemplates) return { executeCount, spec };
    const held = this.resolved.get(step.stepInstanceId);
    if (held?.executeCount === executeCount) return held;
    const states = await this.services.store.plans.varStates(step.jobInstanceId);
    const run = withFilePaths(spec, startingVars(states, step.stepInstanceId, executeCount));
    let resolved: Resolved;
    try {
      const sources = run.sources.map((s, i) =>
        s.kind === 'host'
          ? {
              ...s,
              files: s.files.map((f, j) => checkSourcePath(`file_source_list[${i}].file_list[${j}]`, f)),
            }
          : s,
      );
      const targetPath = checkTargetPath('file_destination.path', run.targetPath);
      resolved = { executeCount, spec: { ...run, sources, targetPath } };
    } catch (err) {
      resolved = { executeCount, problem: (err as Error).message };
      this.services.log.warn(
        { step: step.stepInstanceId, job: step.jobInstanceId, problem: resolved.problem },
        "a file step's paths, with the values it starts with, are not valid: its targets fail",
      );
    }
    this.resolved.set(step.stepInstanceId, resolved);
    return resolved;
  }

  async beginBatch(step: StepRun): Promise<void> {
    const resolved = await this.resolve(step);
    if ('problem' in resolved) return;
    await this.files.begin({
      stepInstanceId: step.stepInstanceId,
      executeCount: step.executeCount,
      spec: resolved.spec,
      tasks: step.tasks,
    });
  }

  send(step: StepRun, task: TaskRun): boolean {
    const resolved = this.resolved.get(step.stepInstanceId);
    if (resolved && 'problem' in resolved && resolved.executeCount === step.executeCount)
      this.failTarget(step.stepInstanceId, task.hostId, HostStatus.FILE_TRANSFER_FAILED);
    else this.files.enqueue(step.stepInstanceId, task.hostId);
    return true;
  }

  batchSent(step: StepRun): void {
    this.files.pump(step.stepInstanceId);
  }

  async taskEnded(step: StepRun, hostId: number, end: TaskEnd): Promise<number> {
    // A file step's timeout is BK-JOB's file task timeout (303), not a script timeout.
    const status = end.status === HostStatus.SCRIPT_TIMEOUT ? HostStatus.FILE_TASK_TIMEOUT : end.status;
    this.files.targetDone(step.stepInstanceId, hostId, isHostSuccess(status));
    // The target's file logs are stored before its result: whoever sees it finished reads them.
    await this.files.logsStored();
    return status;
  }

  async release(step: StepRun): Promise<void> {
    this.resolved.delete(step.stepInstanceId);
    await this.files.release(step.stepInstanceId);
  }

  agentWelcomed(hostId: number): void {
    this.files.agentWelcomed(hostId);
  }

  agentLost(hostId: number): void {
    this.files.agentLost(hostId);
  }

  filesServed(hostId: number, msg: FilesServed): void {
    this.files.filesServed(hostId, msg);
  }

  progress(hostId: number, msg: FileProgress): void {
    this.files.progress(hostId, msg);
  }

  /** Cluster mode: progress of a target held here for a step another server runs. */
  relayedProgress(hostId: number, msg: FileProgress): void {
    this.files.relayedProgress(hostId, msg);
  }

  /** Cluster mode: resolves once the file logs of a target held here are stored. */
  relayedLogsStored(hostId: number): Promise<void> {
    return this.files.relayedLogsStored(hostId);
  }

  /** Cluster mode: offers recorded by other servers, and sources on no server. */
  pollCluster(): Promise<void> {
    return this.files.pollCluster();
  }
}
