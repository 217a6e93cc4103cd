/**
 * On-disk record of each task until a server has recorded its result:
 *   <stateDir>/tasks/<key>/task.json    the run request
 *   <stateDir>/tasks/<key>/output       the output stream as sent (head, then marker + tail)
 *   <stateDir>/tasks/<key>/result.json  the finished report, once the task ended
 * Survives a server restart (resent after the next welcome) and an agent restart (results
 * resent; tasks that were running when the agent died are reported lost).
 */
import fs from 'node:fs';
import path from 'node:path';
import { RunScript, TaskFinished } from '@jobfleet/protocol';

export type FinishedReport = Omit<TaskFinished, 'v' | 'type'>;

export class TaskSpool {
  private readonly root: string;

  constructor(stateDir: string) {
    this.root = path.join(stateDir, 'tasks');
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  private dir(key: string): string {
    return path.join(this.root, key.replace(/:/g, '_'));
  }

  create(msg: RunScript): number {
    const dir = this.dir(msg.key);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'task.json'), JSON.stringify(msg), { mode: 0o600 });
    return fs.openSync(path.join(dir, 'output'), 'a', 0o600);
  }

  finish(key: string, report: FinishedReport): void {
    const file = path.join(this.dir(key), 'result.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(report), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  }

  readOutput(key: string, from: number, to: number): Buffer {
    if (to <= from) return Buffer.alloc(0);
    const fd = fs.openSync(path.join(this.dir(key), 'output'), 'r');
    try {
      const buf = Buffer.alloc(to - from);
      const n = fs.readSync(fd, buf, 0, buf.length, from);
      return buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  remove(key: string): void {
    fs.rmSync(this.dir(key), { recursive: true, force: true });
  }

  /** Tasks left by a previous run of this agent. */
  load(): { msg: RunScript; outputBytes: number; result: FinishedReport | undefined }[] {
    const out = [];
    for (const name of fs.readdirSync(this.root)) {
      const dir = path.join(this.root, name);
      try {
        const msg = RunScript.parse(JSON.parse(fs.readFileSync(path.join(dir, 'task.json'), 'utf8')));
        const outputBytes = fs.existsSync(path.join(dir, 'output'))
          ? fs.statSync(path.join(dir, 'output')).size
          : 0;
        const resultFile = path.join(dir, 'result.json');
        const result = fs.existsSync(resultFile)
          ? TaskFinished.omit({ v: true, type: true }).parse(JSON.parse(fs.readFileSync(resultFile, 'utf8')))
          : undefined;
        out.push({ msg, outputBytes, result });
      } catch {
        fs.rmSync(dir, { recursive: true, force: true }); // half-written by a crash before it was acknowledged
      }
    }
    return out;
  }
}
