/**
 * A task runner that starts nothing: every task succeeds at once with no output. The fleet
 * simulator uses it (`--executor noop`) to measure what the control plane costs without
 * the cost of starting thousands of processes on the same two cores as the server.
 */
import type { DownloadFiles, HeldTask, RunScript, ServeFiles } from '@jobfleet/protocol';
import type { TaskReports, TaskRunnerPort } from '@jobfleet/agent';

type FinishedReport = Parameters<TaskReports['finished']>[0];

export class NoopRunner implements TaskRunnerPort {
  /** Finished tasks the server has not confirmed yet; resent after a reconnect. */
  private readonly unrecorded = new Map<string, FinishedReport>();

  constructor(private readonly reports: TaskReports) {}

  /** Downloads succeed at once too, without a byte moved. */
  download(msg: DownloadFiles): void {
    this.succeed(msg.key);
  }

  run(msg: RunScript): void {
    this.succeed(msg.key);
  }

  private succeed(key: string): void {
    if (this.unrecorded.has(key)) return;
    const now = Date.now();
    const result: FinishedReport = {
      key,
      outcome: 'exited',
      exitCode: 0,
      startTime: now,
      endTime: now,
      outputBytes: 0,
      droppedBytes: 0,
      message: '',
    };
    this.unrecorded.set(key, result);
    this.reports.started(key, now);
    this.reports.finished(result);
  }

  kill(): void {
    // Tasks end as soon as they start: nothing is ever running.
  }

  held(): HeldTask[] {
    return [...this.unrecorded.keys()].map((key) => ({ key, outputBytes: 0, finished: true }));
  }

  resume(_stored: Record<string, number>, forget: readonly string[]): void {
    for (const key of forget) this.unrecorded.delete(key);
    for (const result of this.unrecorded.values()) this.reports.finished(result);
  }

  recorded(key: string): void {
    this.unrecorded.delete(key);
  }

  /** A simulated host has no files to offer: every offer is refused. */
  serve(msg: ServeFiles): void {
    this.reports.served({
      serveId: msg.serveId,
      url: 'http://127.0.0.1:9',
      files: [],
      error: { kind: 'invalid', paths: [], message: 'hosts of the noop executor serve no files' },
    });
  }

  unserve(): void {
    // Nothing is ever served.
  }

  async close(): Promise<void> {}
}
