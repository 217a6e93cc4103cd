/**
 * The agent's tasks: starts scripts, caps and spools their output, reports to the server
 * when connected, and replays what the server missed after a reconnect.
 *
 * Per task: run --> started --> output* --> finished --> (recorded: spool removed).
 * Output offsets are contiguous from 0 and `finished.outputBytes` is the total reported.
 * The spool is best effort against a full disk: the task still runs and reports live, and a
 * later resend fills what the disk did not keep with a notice of the same length.
 */
import fs from 'node:fs';
import type { HeldTask, RunScript, TaskOutcome } from '@jobfleet/protocol';
import { OutputCap } from './output-cap.js';
import { identifyProcess, killGroupIfSame } from './process-identity.js';
import { removeScriptDirs, runScript } from './script-runner.js';
import type { RunningScript } from './script-runner.js';
import type { TaskReports, TaskRunnerPort } from './task-runner-api.js';
import { TaskSpool } from './task-spool.js';
import type { FinishedReport } from './task-spool.js';

interface Task {
  readonly key: string;
  readonly startTime: number;
  /** Bytes of the output stream reported so far (and written to the spool, when it works). */
  written: number;
  fd: number | undefined;
  cap: OutputCap;
  script: RunningScript | undefined;
  result: FinishedReport | undefined;
  /** Settles once the task has a result. */
  ended: Promise<void>;
}

/** Largest output frame; bigger bursts are split so one task cannot hog the connection. */
const FRAME_BYTES = 256 * 1024;

/** Recorded keys remembered to ignore late duplicate dispatches; bounded, oldest forgotten first. */
const RECORDED_MEMORY = 10_000;

export class TaskRunner implements TaskRunnerPort {
  private readonly tasks = new Map<string, Task>();
  private readonly recordedKeys = new Set<string>();
  private readonly spool: TaskSpool;
  private closed = false;

  constructor(
    stateDir: string,
    private readonly reports: TaskReports,
  ) {
    this.spool = new TaskSpool(stateDir);
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
        // nothing of it may keep running.
        if (left.process) killGroupIfSame(left.process);
        removeScriptDirs(key);
        this.saveResult(result);
      }
      this.tasks.set(key, {
        key,
        startTime: left.startTime,
        written: result.outputBytes,
        fd: undefined,
        cap: new OutputCap(left.msg.logCapBytes),
        script: undefined,
        result,
        ended: Promise.resolve(),
      });
    }
  }

  run(msg: RunScript): void {
    if (this.closed || this.tasks.has(msg.key) || this.recordedKeys.has(msg.key)) return;
    const startTime = Date.now();
    let fd: number | undefined;
    try {
      fd = this.spool.create(msg, startTime);
    } catch {
      fd = undefined; // runs without a durable record; reported live
    }
    let settle = () => undefined as void;
    const task: Task = {
      key: msg.key,
      startTime,
      written: 0,
      fd,
      cap: new OutputCap(msg.logCapBytes),
      script: undefined,
      result: undefined,
      ended: new Promise<void>((resolve) => (settle = resolve)),
    };
    this.tasks.set(msg.key, task);
    this.reports.started(msg.key, startTime);
    task.script = runScript(msg, {
      spawned: (pid) => {
        const id = identifyProcess(pid);
        if (!id || !this.isCurrent(task)) return;
        try {
          this.spool.saveProcess(task.key, id);
        } catch {
          /* a restart could not kill it; nothing else is lost */
        }
      },
      output: (chunk) => this.append(task, task.cap.push(chunk)),
      done: (outcome, exitCode, message) => {
        this.complete(task, outcome, exitCode, message);
        settle();
      },
    });
  }

  /** A task dropped by `forget` may still be winding down; it must not touch the spool or report. */
  private isCurrent(task: Task): boolean {
    return this.tasks.get(task.key) === task;
  }

  private complete(task: Task, outcome: TaskOutcome, exitCode: number, message: string): void {
    if (!this.isCurrent(task)) return;
    this.append(task, task.cap.finish());
    this.closeSpoolFile(task);
    task.script = undefined;
    task.result = {
      key: task.key,
      outcome,
      exitCode,
      startTime: task.startTime,
      endTime: Date.now(),
      outputBytes: task.written,
      droppedBytes: task.cap.dropped,
      message,
    };
    this.saveResult(task.result);
    this.reports.finished(task.result);
  }

  private append(task: Task, bytes: Buffer): void {
    if (bytes.length === 0 || !this.isCurrent(task)) return;
    if (task.fd !== undefined) {
      try {
        this.spool.append(task.fd, bytes);
      } catch {
        this.closeSpoolFile(task); // stop at the first failure so the file never has holes inside
      }
    }
    for (let i = 0; i < bytes.length; i += FRAME_BYTES) {
      const part = bytes.subarray(i, i + FRAME_BYTES);
      this.reports.output(task.key, task.written, part);
      task.written += part.length;
    }
  }

  private closeSpoolFile(task: Task): void {
    if (task.fd === undefined) return;
    const fd = task.fd;
    task.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch {
      /* nothing more to lose */
    }
  }

  private saveResult(result: FinishedReport): void {
    try {
      this.spool.finish(result.key, result);
    } catch {
      /* kept in memory and reported; only an agent restart would lose it */
    }
  }

  kill(key: string): void {
    this.tasks.get(key)?.script?.kill('killed');
  }

  held(): HeldTask[] {
    return [...this.tasks.values()].map((t) => ({
      key: t.key,
      outputBytes: t.written,
      finished: t.result !== undefined,
    }));
  }

  resume(stored: Record<string, number>, forget: readonly string[]): void {
    for (const key of forget) {
      const t = this.tasks.get(key);
      this.tasks.delete(key);
      if (t) {
        t.script?.kill('killed');
        this.closeSpoolFile(t);
      }
      this.spool.remove(key);
    }
    for (const t of this.tasks.values()) {
      const known = stored[t.key];
      // A task the server has no offset for may have started while we were disconnected,
      // when its `started` could not be sent.
      if (known === undefined) this.reports.started(t.key, t.startTime);
      for (let off = Math.min(known ?? 0, t.written); off < t.written; off += FRAME_BYTES) {
        const end = Math.min(t.written, off + FRAME_BYTES);
        this.reports.output(t.key, off, this.spool.readOutput(t.key, off, end));
      }
      if (t.result) this.reports.finished(t.result);
    }
  }

  recorded(key: string): void {
    const t = this.tasks.get(key);
    if (t && !t.result) return; // a result we have not produced cannot have been recorded
    this.tasks.delete(key);
    this.spool.remove(key);
    this.recordedKeys.add(key);
    if (this.recordedKeys.size > RECORDED_MEMORY) {
      const oldest = this.recordedKeys.values().next().value;
      if (oldest !== undefined) this.recordedKeys.delete(oldest);
    }
  }

  /** Kills every running task and waits until each has its result spooled (reported as lost). */
  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.tasks.values()].filter((t) => !t.result);
    for (const t of running) t.script?.kill('lost');
    await Promise.all(running.map((t) => t.ended));
  }
}
