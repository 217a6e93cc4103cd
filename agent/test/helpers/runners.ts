/**
 * The TaskRunners a test file makes, each with a RecordingReports, on state directories that
 * are removed (and runners closed) by `cleanup()` in the file's `after`.
 */
import fs from 'node:fs';
import { TaskRunner } from '../../src/task-runner.js';
import type { TaskRunnerOptions } from '../../src/task-runner.js';
import { tempStateDir } from './os-state.js';
import { RecordingReports } from './recording-reports.js';

export class Runners {
  private readonly stateDirs = new Set<string>();
  private readonly runners: TaskRunner[] = [];

  /** A state directory removed at cleanup. */
  stateDir(): string {
    const dir = tempStateDir();
    this.stateDirs.add(dir);
    return dir;
  }

  /** A runner on `stateDir` (a fresh one when omitted), e.g. to restart on the same spool. */
  open(
    stateDir = this.stateDir(),
    opts: TaskRunnerOptions = {},
  ): { runner: TaskRunner; reports: RecordingReports; stateDir: string } {
    this.stateDirs.add(stateDir);
    const reports = new RecordingReports();
    const runner = new TaskRunner(stateDir, reports, opts);
    this.runners.push(runner);
    return { runner, reports, stateDir };
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.close()));
    for (const d of this.stateDirs) fs.rmSync(d, { recursive: true, force: true });
  }
}
