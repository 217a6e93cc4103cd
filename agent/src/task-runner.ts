/**
 * The agent's tasks: starts scripts and downloads, caps and spools their output, reports to
 * the server when connected, and replays what the server missed after a reconnect, paced by the
 * connection (see output-resend.ts). It also owns the agent's file server, which serves files to
 * peers for their downloads.
 *
 * Per task: run|download --> started --> output* --> finished --> (recorded: spool and script
 * directory removed).
 * Download tasks write no output; their per-file reports go out live, and the final one of
 * each file is spooled with the task and resent with its result.
 * Output offsets are contiguous from 0 and `finished.outputBytes` is the total reported.
 * Every report goes out once what it reports is written to the spool (so it survives the agent
 * being killed): everything the tasks had to say in one turn of the event loop is one write,
 * and the spool syncs those writes in the background, one fdatasync for all of them (group
 * commit). The sync does not hold a report back: a power loss before it completes loses the
 * record whether or not it was reported, and a server that has it is better off.
 * The spool is best effort against a full disk: the task still runs and reports live, and a
 * later resend fills what the disk did not keep with a notice of the same length.
 */
import type { DownloadFiles, HeldTask, RunScript, ServeFiles, TaskOutcome } from '@jobfleet/protocol';
import { downloadTask, removePartFiles } from './file-download.js';
import type { DownloadProgress } from './file-download.js';
import { FileRoot } from './file-root.js';
import { FileServer } from './file-server.js';
import { OutputCap } from './output-cap.js';
import { OutputResend } from './output-resend.js';
import { identifyProcess, killGroupIfSame, killMarkedSessions, taskMark } from './process-identity.js';
import type { ProcessIdentity } from './process-identity.js';
import { defaultScriptDir, prepareScriptDir, removeScriptDirs, scriptTask } from './script-runner.js';
import { defaultStarter } from './task-launcher.js';
import type { ProcessStarter } from './task-launcher.js';
import type { RunningTask, TaskReports, TaskRunnerPort } from './task-runner-api.js';
import { TaskSpool } from './task-spool.js';
import type { FileReport, FinishedReport, SpoolLog, TaskRequest } from './task-spool.js';

export interface TaskRunnerOptions {
  /** Host paths of file tasks are placed under this directory (see FileRoot); default none. */
  fileRoot?: string;
  /** Where the file server listens: the host's ip (default 127.0.0.1) and port (default 0, any). */
  fileHost?: string;
  filePort?: number;
  /**
   * What starts script processes. Default: a launcher process of this runner's own, started on
   * its first script (see task-launcher.ts). Several runners in one process may share one.
   */
  starter?: ProcessStarter;
  /** The agent's servers, the connected one first: any of them serves the files a server holds. */
  servers?: () => readonly string[];
  /**
   * Where each script gets its private directory (created if missing); default
   * defaultScriptDir(): systemd's runtime directory of the service, else the temporary directory.
   */
  scriptDir?: string;
  /** Where the runner says what an operator should know (its spool failing to write). */
  log?: SpoolLog;
}

interface Task {
  readonly key: string;
  readonly startTime: number;
  /** Bytes of the output stream so far (spooled, and reported once written). */
  written: number;
  /**
   * Live reports of output below this offset are dropped: a resend sent that part already, or
   * (Infinity) is still sending, or sends the result too. Live output overtaking a resend would
   * reach the server as a gap, which it drops.
   */
  liveFrom: number;
  cap: OutputCap;
  running: RunningTask | undefined;
  /** Removes what the task left on disk (see RunningTask.release). */
  release?: () => void;
  result: FinishedReport | undefined;
  /** Final per-file reports (download tasks), resent with the result. */
  fileReports: FileReport[];
  /** Settles once the task has a result. */
  ended: Promise<void>;
  settle: () => void;
}

/**
 * Largest output frame (what the launcher reads from a task's pipe at once); bigger bursts are
 * split so one task cannot hog the connection for long.
 */
const FRAME_BYTES = 1024 * 1024;

/** Download tasks write no output; the cap only has to exist. */
const DOWNLOAD_LOG_CAP = 64 * 1024;

/**
 * Keys of tasks the server is done with (recorded or forgotten), to ignore late duplicate
 * dispatches; bounded, the oldest dropped first. Memory is enough: a restarted agent opens a new
 * session, a server sends a task only under the session it read the task unfinished in, and the
 * new session is stored after the result was (the agent keeps a result until told it is).
 */
const RECORDED_MEMORY = 10_000;

export class TaskRunner implements TaskRunnerPort {
  private readonly tasks = new Map<string, Task>();
  private readonly recordedKeys = new Set<string>();
  private readonly spool: TaskSpool;
  private readonly root: FileRoot;
  private readonly files: FileServer;
  private closed = false;
  private starter: ProcessStarter | undefined;
  private readonly scriptDir: string;
  /** The resend started by the last welcome. */
  private resend: OutputResend | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly reports: TaskReports,
    private readonly opts: TaskRunnerOptions = {},
  ) {
    this.spool = new TaskSpool(stateDir, opts.log ? { log: opts.log } : {});
    this.scriptDir = opts.scriptDir ?? defaultScriptDir();
    prepareScriptDir(this.scriptDir);
    this.root = new FileRoot(opts.fileRoot);
    this.files = new FileServer({
      host: opts.fileHost ?? '127.0.0.1',
      port: opts.filePort ?? 0,
      root: this.root,
    });
    const scripts: string[] = [];
    const unfinished = new Map<string, ProcessIdentity | undefined>();
    for (const left of this.spool.load()) {
      const key = left.msg.key;
      const result: FinishedReport = left.result ?? {
        key,
        outcome: 'lost',
        exitCode: -1,
        startTime: left.startTime,
        endTime: Date.now(),
        outputBytes: left.outputBytes,
        droppedBytes: 0,
        message: 'the agent restarted while this task was running',
      };
      if (!left.result) {
        // The script may have outlived the agent; the server will treat the task as gone, so
        // nothing of it may keep running, and a download's part files are garbage now.
        if (left.process) killGroupIfSame(left.process);
        if (left.msg.type === 'task.run') unfinished.set(taskMark(stateDir, key), left.process);
        else removePartFiles(left.msg, this.root);
        this.saveResult(result);
      }
      // Finished or not, the spool holds all that counts of it now.
      if (left.msg.type === 'task.run') scripts.push(key);
      this.tasks.set(key, {
        key,
        startTime: left.startTime,
        written: result.outputBytes,
        liveFrom: 0,
        cap: new OutputCap(left.msg.type === 'task.run' ? left.msg.logCapBytes : DOWNLOAD_LOG_CAP),
        running: undefined,
        result,
        fileReports: left.fileReports,
        ended: Promise.resolve(),
        settle: () => undefined,
      });
    }
    killMarkedSessions(unfinished);
    removeScriptDirs(scripts, this.scriptDir);
  }

  run(msg: RunScript): void {
    const task = this.begin(msg, msg.logCapBytes);
    if (!task) return;
    this.starter ??= this.opts.starter ?? defaultStarter();
    const running = scriptTask(
      msg,
      {
        spawned: (pid) => {
          if (this.isCurrent(task)) this.reports.spawned?.(task.key);
          const id = identifyProcess(pid);
          if (!id || !this.isCurrent(task)) return;
          try {
            this.spool.saveProcess(task.key, id);
          } catch {
            /* a restart could not kill it; nothing else is lost */
          }
        },
        output: (chunk) => this.append(task, task.cap.push(chunk)),
        done: (outcome, exitCode, message, vars) => this.complete(task, outcome, exitCode, message, vars),
      },
      this.starter,
      this.scriptDir,
      taskMark(this.stateDir, msg.key),
    );
    task.running = running;
    task.release = () => running.release?.();
    this.startWhenSpooled(running);
  }

  download(msg: DownloadFiles): void {
    const task = this.begin(msg, DOWNLOAD_LOG_CAP);
    if (!task) return;
    task.running = downloadTask(
      msg,
      this.root,
      {
        progress: (p) => this.fileProgress(task, p),
        done: (outcome, exitCode, message) => this.complete(task, outcome, exitCode, message),
      },
      this.opts.servers,
    );
    this.startWhenSpooled(task.running);
  }

  /**
   * Starts a task once its record is in the spool file (the page cache survives the agent being
   * killed). Started before, an agent killed in between would come back knowing nothing of a
   * script already running, and run it a second time when the server sends it again. A kill
   * meanwhile is kept by the task and ends it before it begins.
   */
  private startWhenSpooled(running: RunningTask): void {
    this.spool.afterWritten(() => running.start());
  }

  /** Registers and spools a new task, or returns undefined for a key already known. */
  private begin(msg: TaskRequest, logCapBytes: number): Task | undefined {
    if (this.closed || this.tasks.has(msg.key) || this.recordedKeys.has(msg.key)) return undefined;
    const startTime = Date.now();
    this.spool.create(msg, startTime);
    let settle = () => undefined as void;
    const task: Task = {
      key: msg.key,
      startTime,
      written: 0,
      liveFrom: 0,
      cap: new OutputCap(logCapBytes),
      running: undefined,
      result: undefined,
      fileReports: [],
      ended: new Promise<void>((resolve) => (settle = resolve)),
      settle: () => settle(),
    };
    this.tasks.set(msg.key, task);
    this.spool.afterWritten(() => this.reports.started(msg.key, startTime));
    return task;
  }

  private fileProgress(task: Task, progress: DownloadProgress): void {
    if (!this.isCurrent(task)) return;
    const report: FileReport = { key: task.key, ...progress };
    if (report.status !== 'downloading') {
      task.fileReports.push(report);
      this.spool.appendFileReport(task.key, report);
    }
    this.spool.afterWritten(() => {
      // A finished download whose result a resend sends: it sends the final reports before it.
      if (task.liveFrom !== Infinity) this.reports.fileProgress(report);
    });
  }

  /** A task dropped by `forget` may still be winding down; it must not touch the spool or report. */
  private isCurrent(task: Task): boolean {
    return this.tasks.get(task.key) === task;
  }

  private complete(task: Task, outcome: TaskOutcome, exitCode: number, message: string, vars?: string): void {
    // Settled first, but awaiting code resumes only after this (synchronous) method spooled the result.
    task.settle();
    if (!this.isCurrent(task)) return;
    for (const part of task.cap.finish()) this.append(task, part);
    task.running = undefined;
    task.result = {
      key: task.key,
      outcome,
      exitCode,
      startTime: task.startTime,
      endTime: Date.now(),
      outputBytes: task.written,
      droppedBytes: task.cap.dropped,
      message,
      ...(vars !== undefined ? { vars } : {}),
    };
    this.saveResult(task.result);
    const result = task.result;
    this.spool.afterWritten(() => {
      if (task.liveFrom !== Infinity) this.reports.finished(result);
    });
  }

  private append(task: Task, bytes: Buffer): void {
    if (bytes.length === 0 || !this.isCurrent(task)) return;
    this.spool.append(task.key, bytes);
    for (let i = 0; i < bytes.length; i += FRAME_BYTES) {
      // Not a part of it when it fits: its frame may be laid around it (see outputBuffer).
      const part = bytes.length <= FRAME_BYTES ? bytes : bytes.subarray(i, i + FRAME_BYTES);
      const offset = task.written;
      this.spool.afterWritten(() => {
        if (offset >= task.liveFrom) this.reports.output(task.key, offset, part);
      });
      task.written += part.length;
    }
  }

  private saveResult(result: FinishedReport): void {
    this.spool.finish(result.key, result);
  }

  kill(key: string): void {
    this.tasks.get(key)?.running?.kill('killed');
  }

  held(): HeldTask[] {
    return [...this.tasks.values()].map((t) => ({
      key: t.key,
      outputBytes: t.written,
      finished: t.result !== undefined,
    }));
  }

  busy(): boolean {
    return this.tasks.size > 0 || this.files.offering();
  }

  resume(stored: Record<string, number>, forget: readonly string[]): void {
    // What the last connection's resend did not send, the server says it lacks.
    this.resend?.cancel();
    for (const key of forget) {
      const t = this.tasks.get(key);
      this.tasks.delete(key);
      t?.running?.kill('killed');
      t?.release?.();
      this.spool.remove(key);
      // The server has its result, or no such task in flight: a key names one attempt, so a
      // `task.run` of it arriving later (a cluster's outbox sends a task again under each new
      // session until it reads it finished) is a stale one and must not run it a second time.
      this.remember(key);
    }
    const owed: { key: string; from: number }[] = [];
    for (const t of this.tasks.values()) {
      const known = stored[t.key];
      // A task the server has no offset for may have started while we were disconnected,
      // when its `started` could not be sent.
      if (known === undefined) this.reports.started(t.key, t.startTime);
      t.liveFrom = Infinity;
      owed.push({ key: t.key, from: Math.min(known ?? 0, t.written) });
    }
    // Read up to what each task has when its frame is due: the spool reads back what it has not
    // written yet too.
    const resend: OutputResend = new OutputResend(
      {
        written: (key) => this.tasks.get(key)?.written,
        read: (key, from, to) => this.spool.readOutput(key, from, to),
        send: (key, offset, data) => this.reports.output(key, offset, data),
        caughtUp: (key) => this.caughtUp(key, resend),
        backlog: () => (this.reports.backlog ? this.reports.backlog() : 0),
      },
      { frameBytes: FRAME_BYTES },
    );
    this.resend = resend;
    resend.start(owed);
  }

  /** A resend sent all of the task's output: it streams live again, or its result follows. */
  private caughtUp(key: string, resend: OutputResend): void {
    const t = this.tasks.get(key);
    if (!t) return;
    const result = t.result;
    if (!result) {
      t.liveFrom = t.written;
      return;
    }
    // Its live result may be waiting for the same write: `liveFrom` stays at Infinity so that
    // only this one goes out.
    const files = [...t.fileReports];
    this.spool.afterWritten(() => {
      // Cancelled: the next welcome's resend sends it, after the output that connection lacks.
      if (!resend.active || !this.isCurrent(t)) return;
      for (const f of files) this.reports.fileProgress(f);
      this.reports.finished(result);
    });
  }

  recorded(key: string): void {
    const t = this.tasks.get(key);
    if (t && !t.result) return; // a result we have not produced cannot have been recorded
    t?.release?.();
    this.tasks.delete(key);
    this.spool.remove(key);
    this.remember(key);
  }

  private remember(key: string): void {
    this.recordedKeys.add(key);
    if (this.recordedKeys.size > RECORDED_MEMORY) {
      const oldest = this.recordedKeys.values().next().value;
      if (oldest !== undefined) this.recordedKeys.delete(oldest);
    }
  }

  serve(msg: ServeFiles): void {
    if (this.closed) return;
    void this.files.serve(msg).then(
      (answer) => this.reports.served(answer),
      (err: Error) =>
        // Only the listener can fail here (its port taken): the offer cannot be made.
        this.reports.served({
          serveId: msg.serveId,
          url: 'http://0.0.0.0',
          files: [],
          error: { kind: 'unreadable', paths: [], message: `file server unavailable: ${err.message}` },
        }),
    );
  }

  unserve(serveId: string): void {
    this.files.unserve(serveId);
  }

  /** Base URL of the file server (starts it); what `served` reports. */
  fileServerUrl(): Promise<string> {
    return this.files.url();
  }

  /** Resolves once everything the tasks said so far is on disk (and reported). */
  flushed(): Promise<void> {
    return this.spool.flushed();
  }

  /** Kills every running task, waits until each has its result spooled (reported as lost), stops serving. */
  async close(): Promise<void> {
    this.closed = true;
    this.resend?.cancel();
    const running = [...this.tasks.values()].filter((t) => !t.result);
    for (const t of running) t.running?.kill('lost');
    await Promise.all([...running.map((t) => t.ended), this.files.close()]);
    for (const t of this.tasks.values()) t.release?.();
    if (this.starter !== this.opts.starter) this.starter?.close();
    await this.spool.close();
  }
}
