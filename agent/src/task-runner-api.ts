/** What the connection loop needs from the task runner, and what the runner reports back. */
import type { HeldTask, RunScript, TaskFinished } from '@jobfleet/protocol';

export interface TaskReports {
  started(key: string, startTime: number): void;
  output(key: string, offset: number, data: Buffer): void;
  finished(msg: Omit<TaskFinished, 'v' | 'type'>): void;
}

export interface TaskRunnerPort {
  /** Starts the task unless this key is already known (dispatch is at-least-once). */
  run(msg: RunScript): void;
  kill(key: string): void;
  /** Tasks running, or finished but not yet recorded by a server. */
  held(): HeldTask[];
  /** After a welcome: resend output past what the server stored, resend finished results, drop forgotten tasks. */
  resume(stored: Record<string, number>, forget: readonly string[]): void;
  /** The server recorded the result: the task's spool can go. */
  recorded(key: string): void;
  /** Kills every running task (agent shutdown). */
  close(): Promise<void>;
}
