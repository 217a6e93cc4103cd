/**
 * The agent's tasks: starts scripts, caps and spools their output, reports to the server
 * when connected, and replays what the server missed after a reconnect.
 */
import fs from 'node:fs';
import type { HeldTask, RunScript } from '@jobfleet/protocol';
import { OutputCap } from './output-cap.js';
import { runScript } from './script-runner.js';
import type { RunningScript } from './script-runner.js';
import type { TaskReports, TaskRunnerPort } from './task-runner-api.js';
import { TaskSpool } from './task-spool.js';
import type { FinishedReport } from './task-spool.js';

interface Task {
  key: string;
  /** Bytes of the output stream written to the spool (and sent, when connected). */
  written: number;
  fd: number | undefined;
  cap: OutputCap | undefined;
  script: RunningScript | undefined;
  result: FinishedReport | undefined;
}

/** Largest output frame; bigger bursts are split so one task cannot hog the connection. */
const FRAME_BYTES = 256 * 1024;

export class TaskRunner implements TaskRunnerPort {
  private readonly tasks = new Map<string, Task>();
  private readonly spool: TaskSpool;

  constructor(
    stateDir: string,
    private readonly reports: TaskReports,
  ) {
    this.spool = new TaskSpool(stateDir);
    for (const left of this.spool.load()) {
      const result: FinishedReport = left.result ?? {
        key: left.msg.key,
        outcome: 'lost',
        exitCode: -1,
        startTime: Date.now(),
        endTime: Date.now(),
        outputBytes: left.outputBytes,
        droppedBytes: 0,
        message: 'the agent restarted while this task was running',
      };
      if (!left.result) this.spool.finish(left.msg.key, result);
      this.tasks.set(left.msg.key, {
        key: left.msg.key,
        written: left.outputBytes,
        fd: undefined,
        cap: undefined,
        script: undefined,
        result,
      });
    }
  }

  run(msg: RunScript): void {
    if (this.tasks.has(msg.key)) return;
    const task: Task = {
      key: msg.key,
      written: 0,
      fd: this.spool.create(msg),
      cap: new OutputCap(msg.logCapBytes),
      script: undefined,
      result: undefined,
    };
    this.tasks.set(msg.key, task);
    const startTime = Date.now();
    this.reports.started(msg.key, startTime);
    task.script = runScript(msg, {
      output: (chunk) => this.append(task, task.cap?.push(chunk) ?? Buffer.alloc(0)),
      done: (outcome, exitCode, message) => {
        this.append(task, task.cap?.finish() ?? Buffer.alloc(0));
        if (task.fd !== undefined) fs.closeSync(task.fd);
        task.fd = undefined;
        task.script = undefined;
        task.result = {
          key: msg.key,
          outcome,
          exitCode,
          startTime,
          endTime: Date.now(),
          outputBytes: task.written,
          droppedBytes: task.cap?.dropped ?? 0,
          message,
        };
        task.cap = undefined;
        this.spool.finish(msg.key, task.result);
        this.reports.finished(task.result);
      },
    });
  }

  private append(task: Task, bytes: Buffer): void {
    if (bytes.length === 0 || task.fd === undefined) return;
    fs.writeSync(task.fd, bytes);
    for (let i = 0; i < bytes.length; i += FRAME_BYTES) {
      const part = bytes.subarray(i, i + FRAME_BYTES);
      this.reports.output(task.key, task.written, part);
      task.written += part.length;
    }
  }

  kill(key: string): void {
    this.tasks.get(key)?.script?.kill();
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
      t?.script?.kill();
      if (t?.fd !== undefined) fs.closeSync(t.fd);
      this.tasks.delete(key);
      this.spool.remove(key);
    }
    for (const t of this.tasks.values()) {
      const from = stored[t.key] ?? 0;
      for (let off = from; off < t.written; off += FRAME_BYTES) {
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
  }

  async close(): Promise<void> {
    for (const t of this.tasks.values()) t.script?.kill();
  }
}
