/**
 * A task runner that starts nothing: every task succeeds at once with no output. The fleet
 * simulator uses it (`--executor noop`) to measure what the control plane costs without
 * the cost of starting thousands of processes on the same two cores as the server.
 *
 * A script whose parameters are `sim-output FROM-TO:TEXT[:EXIT] ...` makes simulated host number
 * N (1-based, in the simulator's order) print TEXT and exit with EXIT (default 0) when N falls in
 * FROM-TO: how tests and the benchmark get a big step with several distinct outputs cheaply.
 */
import type { DownloadFiles, HeldTask, RunScript, ServeFiles } from '@jobfleet/protocol';
import type { TaskReports, TaskRunnerPort } from '@jobfleet/agent';

type FinishedReport = Parameters<TaskReports['finished']>[0];

export class NoopRunner implements TaskRunnerPort {
  /** Finished tasks the server has not confirmed yet; resent after a reconnect. */
  private readonly unrecorded = new Map<string, FinishedReport>();

  constructor(
    private readonly reports: TaskReports,
    /** This host's number in the simulated fleet (1-based), for `sim-output`. */
    private readonly hostNumber = 0,
  ) {}

  /** Downloads succeed at once too, without a byte moved, each file reported as an agent does. */
  download(msg: DownloadFiles): void {
    const dir = msg.targetDir.endsWith('/') ? msg.targetDir : `${msg.targetDir}/`;
    const files = msg.sources.flatMap((source) =>
      source.files.map((f) => ({
        key: msg.key,
        label: source.label,
        sourcePath: f.sourcePath,
        targetPath: `${dir}${f.relPath}`,
        size: f.size,
        speed: 0,
        message: '',
      })),
    );
    this.succeed(msg.key, '', 0, () => {
      for (const f of files) {
        this.reports.fileProgress({ ...f, status: 'downloading', bytes: 0 });
        this.reports.fileProgress({ ...f, status: 'finished', bytes: f.size });
      }
    });
  }

  run(msg: RunScript): void {
    const sim = simulatedOutput(msg.params, this.hostNumber);
    this.succeed(msg.key, sim?.output, sim?.exitCode);
  }

  private succeed(key: string, output = '', exitCode = 0, progress = () => undefined as void): void {
    if (this.unrecorded.has(key)) return;
    const now = Date.now();
    const bytes = Buffer.from(output);
    const result: FinishedReport = {
      key,
      outcome: 'exited',
      exitCode,
      startTime: now,
      endTime: now,
      outputBytes: bytes.length,
      droppedBytes: 0,
      message: '',
    };
    this.unrecorded.set(key, result);
    this.reports.started(key, now);
    progress();
    if (bytes.length > 0) this.reports.output(key, 0, bytes);
    this.reports.finished(result);
  }

  kill(): void {
    // Tasks end as soon as they start: nothing is ever running.
  }

  held(): HeldTask[] {
    return [...this.unrecorded.keys()].map((key) => ({ key, outputBytes: 0, finished: true }));
  }

  busy(): boolean {
    return this.unrecorded.size > 0;
  }

  resume(_stored: Record<string, number>, forget: readonly string[]): void {
    for (const key of forget) this.unrecorded.delete(key);
    for (const result of this.unrecorded.values()) this.reports.finished(result);
  }

  recorded(key: string): void {
    this.unrecorded.delete(key);
  }

  /** Offers each entry as a file of 1 KiB that no one fetches (downloads move no bytes). */
  serve(msg: ServeFiles): void {
    this.reports.served({
      serveId: msg.serveId,
      url: 'http://127.0.0.1:9',
      files: msg.entries.map((e) => ({
        sourcePath: e.path,
        relPath: e.relPath ?? e.path.slice(e.path.lastIndexOf('/') + 1),
        size: 1024,
        sha256: '0'.repeat(64),
        mode: 0o644,
      })),
    });
  }

  unserve(): void {
    // Nothing is ever served.
  }

  async close(): Promise<void> {}
}

/** The output and exit code `sim-output` rules give host number `n`, if any rule covers it. */
export function simulatedOutput(params: string, n: number): { output: string; exitCode: number } | undefined {
  const words = params.trim().split(/\s+/);
  if (words[0] !== 'sim-output') return undefined;
  for (const rule of words.slice(1)) {
    const m = /^(\d+)-(\d+):([^:]*)(?::(\d+))?$/.exec(rule);
    if (m && n >= Number(m[1]) && n <= Number(m[2]))
      return { output: `${m[3] ?? ''}\n`, exitCode: Number(m[4] ?? 0) };
  }
  return undefined;
}
