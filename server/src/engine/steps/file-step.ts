/** File steps: targets pull their files from peers, as `FileDistribution` arranges. */
import type { FileProgress, FilesServed } from '@jobfleet/protocol';
import type { Services } from '../../services.js';
import { FileDistribution } from '../file-distribution.js';
import type { FileStepView } from '../file-distribution.js';
import { HostStatus, isHostSuccess } from '../statuses.js';
import type { StepKind, StepRun, TaskEnd, TaskRun } from '../step-kind.js';

export class FileStep implements StepKind {
  private readonly files: FileDistribution;

  constructor(
    services: Services,
    failTarget: (stepInstanceId: number, hostId: number, status: number) => void,
  ) {
    this.files = new FileDistribution(services, { failTarget });
  }

  private view(step: StepRun): FileStepView {
    if (step.spec.kind !== 'file') throw new Error(`step ${step.stepInstanceId} is not a file step`);
    return {
      stepInstanceId: step.stepInstanceId,
      executeCount: step.executeCount,
      spec: step.spec,
      tasks: step.tasks,
    };
  }

  async beginBatch(step: StepRun): Promise<void> {
    await this.files.begin(this.view(step));
  }

  send(step: StepRun, task: TaskRun): boolean {
    this.files.enqueue(step.stepInstanceId, task.hostId);
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
