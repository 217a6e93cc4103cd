/**
 * On-disk record of each task until a server has recorded its result:
 *   <stateDir>/tasks/<key>/task.json    the run request and when it started
 *   <stateDir>/tasks/<key>/output       the output stream as sent (head, then marker + tail)
 *   <stateDir>/tasks/<key>/process.json the script's process while it runs (pid and start time)
 *   <stateDir>/tasks/<key>/result.json  the finished report, once the task ended
 *   <stateDir>/tasks/<key>/files.jsonl  final per-file reports of a download task, one a line
 * Survives a server restart (resent after the next welcome) and an agent restart (results
 * resent; tasks that were running when the agent died are reported lost).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DownloadFiles, RunScript, TaskFinished } from '@jobfleet/protocol';
import { FileProgress } from '@jobfleet/protocol';
import type { ProcessIdentity } from './process-identity.js';

export type FinishedReport = Omit<TaskFinished, 'v' | 'type'>;

/** What a task was asked to do: run a script or download files. */
export const TaskRequest = z.discriminatedUnion('type', [RunScript, DownloadFiles]);
export type TaskRequest = z.infer<typeof TaskRequest>;

export type FileReport = Omit<FileProgress, 'v' | 'type'>;

const SpooledTask = z.object({ msg: TaskRequest, startTime: z.number().int() });
const SpooledFileReport = FileProgress.omit({ v: true, type: true });
const SpooledResult = TaskFinished.omit({ v: true, type: true });
const SpooledProcess = z.object({ pid: z.number().int().positive(), started: z.string() });

export interface LeftTask {
  msg: TaskRequest;
  startTime: number;
  /** Bytes in the output file. */
  outputBytes: number;
  result: FinishedReport | undefined;
  /** The script's process, when the task was running. */
  process: ProcessIdentity | undefined;
  /** Final per-file reports of a download task. */
  fileReports: FileReport[];
}

/**
 * Stands in for output the spool failed to keep (a full disk), so that a resend still covers
 * every offset the server expects instead of leaving a gap it would wait on forever.
 */
const LOST_OUTPUT_NOTICE = Buffer.from('\n[jobfleet: output lost: the agent could not store it]\n');

function fillWithNotice(buf: Buffer): void {
  for (let i = 0; i < buf.length; i += LOST_OUTPUT_NOTICE.length) LOST_OUTPUT_NOTICE.copy(buf, i);
}

/** Lines that do not parse (the last one, cut by a crash) are skipped. */
function readFileReports(dir: string): FileReport[] {
  const file = path.join(dir, 'files.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        const r = SpooledFileReport.safeParse(JSON.parse(line));
        return r.success ? [r.data] : [];
      } catch {
        return [];
      }
    });
}

export class TaskSpool {
  private readonly root: string;

  constructor(stateDir: string) {
    this.root = path.join(stateDir, 'tasks');
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  private dir(key: string): string {
    return path.join(this.root, key.replace(/:/g, '_'));
  }

  /** Records the request and returns the descriptor the output is appended to. */
  create(msg: TaskRequest, startTime: number): number {
    const dir = this.dir(msg.key);
    fs.rmSync(dir, { recursive: true, force: true }); // leftovers of a forgotten run of this key
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Script parameters may be sensitive, and so is a database password; a restarted agent never
    // runs a script again (it reports it lost), so neither is written to disk.
    const kept =
      msg.type === 'task.run'
        ? { ...msg, params: '', ...(msg.database ? { database: { ...msg.database, password: '' } } : {}) }
        : msg;
    fs.writeFileSync(path.join(dir, 'task.json'), JSON.stringify({ msg: kept, startTime }), { mode: 0o600 });
    return fs.openSync(path.join(dir, 'output'), 'a', 0o600);
  }

  /** Appends all of `bytes` (a write to a regular file may be partial). */
  append(fd: number, bytes: Buffer): void {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done);
  }

  /** Remembers the script's process so that a restarted agent can kill what it left running. */
  saveProcess(key: string, id: ProcessIdentity): void {
    fs.writeFileSync(path.join(this.dir(key), 'process.json'), JSON.stringify(id), { mode: 0o600 });
  }

  /** Keeps a file's final report with the task, to be resent with its result. */
  appendFileReport(key: string, report: FileReport): void {
    fs.appendFileSync(path.join(this.dir(key), 'files.jsonl'), JSON.stringify(report) + '\n', {
      mode: 0o600,
    });
  }

  finish(key: string, report: FinishedReport): void {
    const file = path.join(this.dir(key), 'result.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(report), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  }

  /** Exactly `to - from` bytes; what the file does not hold is replaced by a notice. */
  readOutput(key: string, from: number, to: number): Buffer {
    const buf = Buffer.alloc(Math.max(0, to - from));
    let got = 0;
    try {
      const fd = fs.openSync(path.join(this.dir(key), 'output'), 'r');
      try {
        while (got < buf.length) {
          const n = fs.readSync(fd, buf, got, buf.length - got, from + got);
          if (n === 0) break;
          got += n;
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      /* missing or unreadable: filled below */
    }
    if (got < buf.length) fillWithNotice(buf.subarray(got));
    return buf;
  }

  remove(key: string): void {
    fs.rmSync(this.dir(key), { recursive: true, force: true });
  }

  /** Tasks left by a previous run of this agent. */
  load(): LeftTask[] {
    const out: LeftTask[] = [];
    for (const name of fs.readdirSync(this.root)) {
      const dir = path.join(this.root, name);
      try {
        const task = SpooledTask.parse(JSON.parse(fs.readFileSync(path.join(dir, 'task.json'), 'utf8')));
        const outputFile = path.join(dir, 'output');
        const outputBytes = fs.existsSync(outputFile) ? fs.statSync(outputFile).size : 0;
        const resultFile = path.join(dir, 'result.json');
        const result = fs.existsSync(resultFile)
          ? SpooledResult.parse(JSON.parse(fs.readFileSync(resultFile, 'utf8')))
          : undefined;
        const processFile = path.join(dir, 'process.json');
        const proc = fs.existsSync(processFile)
          ? SpooledProcess.safeParse(JSON.parse(fs.readFileSync(processFile, 'utf8'))).data
          : undefined;
        out.push({ ...task, outputBytes, result, process: proc, fileReports: readFileReports(dir) });
      } catch {
        fs.rmSync(dir, { recursive: true, force: true }); // half-written by a crash before it was acknowledged
      }
    }
    return out;
  }
}
