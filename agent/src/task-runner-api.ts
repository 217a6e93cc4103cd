/** What the connection loop needs from the task runner, and what the runner reports back. */
import type { DownloadFiles, HeldTask, RunScript, ServeFiles, TaskFinished } from '@jobfleet/protocol';
import type { FileProgress, FilesServed } from '@jobfleet/protocol';

export interface TaskReports {
  started(key: string, startTime: number): void;
  /** The task's script process has started (after any wait for the launcher). */
  spawned?(key: string): void;
  output(key: string, offset: number, data: Buffer): void;
  finished(msg: Omit<TaskFinished, 'v' | 'type'>): void;
  /** Progress of one file of a download task. */
  fileProgress(msg: Omit<FileProgress, 'v' | 'type'>): void;
  /** The answer to a `file.serve`. */
  served(msg: Omit<FilesServed, 'v' | 'type'>): void;
  /**
   * Bytes sent but still queued on the connection, undefined when there is none to send on:
   * a resend after a reconnect paces itself by it. Without it nothing is taken to queue up.
   */
  backlog?(): number | undefined;
}

export interface TaskRunnerPort {
  /** Starts the task unless this key is already known (dispatch is at-least-once). */
  run(msg: RunScript): void;
  /** Starts a download task; same key space and rules as `run`. */
  download(msg: DownloadFiles): void;
  kill(key: string): void;
  /** Tasks running, or finished but not yet recorded by a server. */
  held(): HeldTask[];
  /** Tasks held (see `held`) or files offered to peers: what a move to another server would disturb. */
  busy(): boolean;
  /**
   * After a welcome: resend output past what the server stored (paced by `backlog`, so it may
   * go on after this returns; a later call cancels it), resend finished results, drop forgotten
   * tasks.
   */
  resume(stored: Record<string, number>, forget: readonly string[]): void;
  /** The server recorded the result: the task's spool can go. */
  recorded(key: string): void;
  /** Offers files to peers; answered through `served` (the same serveId again gets the same answer). */
  serve(msg: ServeFiles): void;
  unserve(serveId: string): void;
  /** Kills every running task and stops serving files (agent shutdown). */
  close(): Promise<void>;
}

/** Why a task is stopped from outside: a terminate request, or the agent shutting down. */
export type StopReason = 'killed' | 'lost';

/** A task, as its runner (script or download) hands it out: made first, then started. */
export interface RunningTask {
  /**
   * Begins the work: called once the task's record is in the spool file, so that an agent
   * killed after the work began knows of it when it starts again (and reports it lost) rather
   * than run it a second time when the server sends it again.
   */
  start(): void;
  /** Stops the task; it then reports its end through its `done` handler. Does nothing once it ended. */
  kill(reason?: StopReason): void;
  /**
   * What the task leaves on disk while it runs can go: its result is recorded, or it is
   * forgotten, or the agent stops (the spool keeps the result). Before its end: once it ends.
   */
  release?(): void;
}
