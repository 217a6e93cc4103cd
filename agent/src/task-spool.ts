/**
 * On-disk record of each task until a server has recorded its result, kept in one journal per
 * agent (<stateDir>/spool, see SpoolJournal): the run request and when it started, the output
 * stream as sent (head, then marker + tail), the script's process while it runs (pid and start
 * time), the final per-file reports of a download task, the finished report, and finally that
 * the server recorded it. A task costs appends to one file instead of files and directories of
 * its own, and many tasks share one fdatasync (group commit).
 *
 * Callers report to the server from `afterWritten`, so whatever a server was told survives an
 * agent or server crash (resent after the next welcome; tasks that were running when the
 * agent died are reported lost); every write is fdatasync'ed shortly after, many at once.
 *
 * Segments are deleted oldest first once no unrecorded task has records in them; the few
 * small tasks still holding the oldest one when a segment fills are copied forward, so one
 * long-running task does not pin the spool. Spools of older agents (<stateDir>/tasks/<key>/)
 * are taken over at start.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import type { DownloadFiles, FileProgress, RunScript, TaskFinished } from '@jobfleet/protocol';
import {
  DownloadFilesCheck,
  FileRecordCheck,
  FinishedRecordCheck,
  RunScriptCheck,
  parseWith,
} from '@jobfleet/protocol/agent';
import type { ProcessIdentity } from './process-identity.js';
import { SpoolJournal } from './spool-journal.js';
import { claimStateDir } from './state-dir-lock.js';

export type FinishedReport = Omit<TaskFinished, 'v' | 'type'>;

/** What a task was asked to do: run a script or download files. */
export type TaskRequest = RunScript | DownloadFiles;

export type FileReport = Omit<FileProgress, 'v' | 'type'>;

// The spool is read back with the agent's own (valibot) checks of the protocol messages.
const SpooledTask = v.object({
  msg: v.variant('type', [RunScriptCheck, DownloadFilesCheck]),
  startTime: v.pipe(v.number(), v.safeInteger()),
});
const SpooledProcess = v.object({
  pid: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  started: v.string(),
});
const Keyed = v.object({ key: v.string() });
const SpooledSnapshot = v.object({
  ...SpooledTask.entries,
  process: v.optional(SpooledProcess),
  fileReports: v.array(FileRecordCheck),
  result: v.optional(FinishedRecordCheck),
});

export interface LeftTask {
  msg: TaskRequest;
  startTime: number;
  /** Bytes of output spooled. */
  outputBytes: number;
  result: FinishedReport | undefined;
  /** The script's process, when the task was running. */
  process: ProcessIdentity | undefined;
  /** Final per-file reports of a download task. */
  fileReports: FileReport[];
}

/** Record kinds, the first byte of a body. */
const enum Kind {
  Task = 1,
  Process = 2,
  Output = 3,
  File = 4,
  Result = 5,
  Removed = 6,
  /** A task's whole state, copied forward in one record (see relocate). */
  Snapshot = 7,
}

/** Where a run of output bytes lies in the journal. */
interface Extent {
  segment: number;
  pos: number;
  offset: number;
  length: number;
}

interface Entry extends LeftTask {
  extents: Extent[];
  /** Segments holding records of this task. */
  segments: Set<number>;
}

/** A segment is closed once it holds this much; big enough that rotation is rare. */
const SEGMENT_BYTES = 32 * 2 ** 20;

/** Tasks with at most this much output are copied out of the oldest segment when it pins the spool. */
const RELOCATE_MAX_BYTES = 2 ** 20;

/**
 * Stands in for output the spool failed to keep (a full disk), so that a resend still covers
 * every offset the server expects instead of leaving a gap it would wait on forever.
 */
const LOST_OUTPUT_NOTICE = Buffer.from('\n[jobfleet: output lost: the agent could not store it]\n');

function fillWithNotice(buf: Buffer): void {
  for (let i = 0; i < buf.length; i += LOST_OUTPUT_NOTICE.length) LOST_OUTPUT_NOTICE.copy(buf, i);
}

/** How long a broken spool waits before it tries to write again (a full disk being cleared). */
const REPAIR_DELAY_MS = 5000;

export type SpoolLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

function jsonBody(kind: Kind, value: unknown): Buffer[] {
  return [Buffer.of(kind), Buffer.from(JSON.stringify(value))];
}

export class TaskSpool {
  private readonly journal: SpoolJournal;
  private readonly entries = new Map<string, Entry>();
  /** Unrecorded tasks with records in each segment. */
  private readonly live = new Map<number, Set<string>>();
  private relocating = false;
  /** Unrecorded tasks with records written since the last sync started. */
  private readonly unsynced = new Set<string>();
  private readonly releaseDir: () => void = () => undefined;
  private readonly log: SpoolLog;
  /** Set while the journal is broken and a repair is due. */
  private repair: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    stateDir: string,
    opts: {
      segmentBytes?: number;
      readOnly?: boolean;
      syncDelayMs?: number;
      log?: SpoolLog;
      repairDelayMs?: number;
    } = {},
  ) {
    this.log = opts.log ?? (() => undefined);
    if (!opts.readOnly) this.releaseDir = claimStateDir(stateDir);
    this.journal = new SpoolJournal(
      path.join(stateDir, 'spool'),
      opts.segmentBytes ?? SEGMENT_BYTES,
      opts.readOnly,
      opts.syncDelayMs,
    );
    // Records of tasks the server recorded before the sync was due need no sync: the
    // server's own commit keeps the result.
    this.journal.needsSync = () => this.unsynced.size > 0;
    this.journal.onSync = () => this.unsynced.clear();
    this.journal.onBroken = (err) => {
      if (this.repair || this.closed) return;
      this.log('warn', 'the task spool cannot write: results are kept in memory only until it can', {
        err: err.message,
      });
      this.scheduleRepair(opts.repairDelayMs ?? REPAIR_DELAY_MS);
    };
    for (const rec of this.journal.scan()) {
      try {
        this.replay(rec.segment, rec.pos, rec.body);
      } catch {
        /* a record this version cannot read: skip it */
      }
    }
    this.unsynced.clear(); // read from disk: synced long ago
    if (opts.readOnly) return;
    this.adoptLegacy(path.join(stateDir, 'tasks'));
    this.collect();
  }

  /** Keys of the tasks an agent's spool holds on disk now (read only; the agent may be running). */
  static keysOnDisk(stateDir: string): string[] {
    return [...new TaskSpool(stateDir, { readOnly: true }).entries.keys()];
  }

  /** Segment files of the journal, oldest first. */
  segments(): readonly number[] {
    return this.journal.segments();
  }

  /** Tasks left by a previous run of this agent. */
  load(): LeftTask[] {
    return [...this.entries.values()].map((e) => ({
      msg: e.msg,
      startTime: e.startTime,
      outputBytes: e.outputBytes,
      result: e.result,
      process: e.process,
      fileReports: [...e.fileReports],
    }));
  }

  /** Records the request (a task of the same key left from an earlier run is replaced). */
  create(msg: TaskRequest, startTime: number): void {
    // Script parameters may be sensitive, and so are a database password and the environment
    // carrying cipher variables; a restarted agent never runs a script again (it reports it
    // lost), so none of them is written to disk.
    const kept =
      msg.type === 'task.run'
        ? {
            ...msg,
            params: '',
            env: undefined,
            ...(msg.database ? { database: { ...msg.database, password: '' } } : {}),
          }
        : msg;
    const entry = this.begin(kept, startTime);
    this.write(entry, jsonBody(Kind.Task, { msg: kept, startTime }));
  }

  /** Appends output bytes, which continue the task's stream. */
  append(key: string, bytes: Buffer): void {
    const entry = this.entries.get(key);
    if (!entry || bytes.length === 0) return;
    this.writeOutput(entry, entry.outputBytes, bytes);
  }

  /** Remembers the script's process so that a restarted agent can kill what it left running. */
  saveProcess(key: string, id: ProcessIdentity): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.process = id;
    this.write(entry, jsonBody(Kind.Process, { key, ...id }));
  }

  /** Keeps a file's final report with the task, to be resent with its result. */
  appendFileReport(key: string, report: FileReport): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.fileReports.push(report);
    this.write(entry, jsonBody(Kind.File, report));
  }

  finish(key: string, report: FinishedReport): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.result = report;
    this.write(entry, jsonBody(Kind.Result, report));
  }

  /** The server recorded the task: nothing of it needs keeping. */
  remove(key: string): void {
    if (!this.entries.has(key)) return;
    this.unlink(key);
    this.beforeAppend();
    this.journal.append(jsonBody(Kind.Removed, { key }));
    this.collect();
  }

  /** Runs `fn` once everything recorded so far is on disk. */
  afterDurable(fn: () => void): void {
    this.journal.afterDurable(fn);
  }

  /** Runs `fn` once everything recorded so far is written (not necessarily synced). */
  afterWritten(fn: () => void): void {
    this.journal.afterWritten(fn);
  }

  flushed(): Promise<void> {
    return this.journal.flushed();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.repair);
    await this.journal.close();
    this.releaseDir();
  }

  /** Exactly `to - from` bytes; what the journal does not hold is replaced by a notice. */
  readOutput(key: string, from: number, to: number): Buffer {
    const buf = Buffer.alloc(Math.max(0, to - from));
    const covered = new Uint8Array(buf.length);
    for (const x of this.entries.get(key)?.extents ?? []) {
      const lo = Math.max(from, x.offset);
      const hi = Math.min(to, x.offset + x.length);
      if (lo >= hi) continue;
      let got = 0;
      try {
        got = this.journal.read(x.segment, x.pos + (lo - x.offset), buf.subarray(lo - from, hi - from));
      } catch {
        /* unreadable: filled below */
      }
      covered.fill(1, lo - from, lo - from + got);
    }
    for (let i = 0; i < buf.length;) {
      if (covered[i]) {
        i++;
        continue;
      }
      let j = i;
      while (j < buf.length && !covered[j]) j++;
      fillWithNotice(buf.subarray(i, j));
      i = j;
    }
    return buf;
  }

  // ------------------------------------------------------------ journal records

  /** A fresh entry for a task, replacing one of the same key (left from an earlier run). */
  private begin(msg: TaskRequest, startTime: number): Entry {
    this.unlink(msg.key);
    const entry: Entry = {
      msg,
      startTime,
      outputBytes: 0,
      result: undefined,
      process: undefined,
      fileReports: [],
      extents: [],
      segments: new Set(),
    };
    this.entries.set(msg.key, entry);
    return entry;
  }

  private write(entry: Entry, parts: Buffer[]): void {
    this.beforeAppend();
    const at = this.journal.append(parts);
    this.pin(entry, at.segment);
  }

  private writeOutput(entry: Entry, offset: number, bytes: Buffer): void {
    this.beforeAppend();
    const key = Buffer.from(entry.msg.key);
    const head = Buffer.allocUnsafe(1 + 2 + key.length + 8);
    head.writeUInt8(Kind.Output, 0);
    head.writeUInt16LE(key.length, 1);
    key.copy(head, 3);
    head.writeDoubleLE(offset, 3 + key.length);
    const at = this.journal.append([head, bytes]);
    this.addExtent(entry, { segment: at.segment, pos: at.pos + head.length, offset, length: bytes.length });
    this.pin(entry, at.segment);
  }

  private addExtent(entry: Entry, x: Extent): void {
    const last = entry.extents.at(-1);
    // Records of one task are often back to back in the file: one extent for all of them.
    if (
      last &&
      last.segment === x.segment &&
      last.offset + last.length === x.offset &&
      last.pos + last.length === x.pos
    )
      last.length += x.length;
    else entry.extents.push(x);
    entry.outputBytes = Math.max(entry.outputBytes, x.offset + x.length);
  }

  private pin(entry: Entry, segment: number): void {
    this.unsynced.add(entry.msg.key);
    entry.segments.add(segment);
    let keys = this.live.get(segment);
    if (!keys) this.live.set(segment, (keys = new Set()));
    keys.add(entry.msg.key);
  }

  private unlink(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.unsynced.delete(key);
    for (const s of entry.segments) this.live.get(s)?.delete(key);
  }

  /** A full segment is about to be closed: free the oldest one of small tasks first. */
  private beforeAppend(): void {
    if (this.relocating || !this.journal.full) return;
    this.journal.rotate();
    const oldest = this.journal.segments()[0];
    if (oldest === undefined || oldest === this.journal.activeSegment) return;
    this.relocating = true;
    try {
      for (const key of [...(this.live.get(oldest) ?? [])]) {
        const entry = this.entries.get(key);
        if (entry && entry.outputBytes <= RELOCATE_MAX_BYTES) this.relocate(entry);
      }
    } finally {
      this.relocating = false;
    }
    this.collect();
  }

  /**
   * Writes a task's whole state again into the active segment, releasing the older ones. It is
   * one record, so a kill in the middle of it leaves a torn record that replay skips, and the
   * task as the older segments hold it (they are deleted only once the copy is on disk); as
   * several records, a copy cut after its first one replaced the task with a part of it.
   */
  private relocate(entry: Entry): void {
    const key = entry.msg.key;
    const output = this.readOutput(key, 0, entry.outputBytes);
    for (const s of entry.segments) this.live.get(s)?.delete(key);
    entry.segments.clear();
    entry.extents = [];
    entry.outputBytes = 0;
    const state = Buffer.from(
      JSON.stringify({
        msg: entry.msg,
        startTime: entry.startTime,
        process: entry.process,
        fileReports: entry.fileReports,
        result: entry.result,
      }),
    );
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(Kind.Snapshot, 0);
    head.writeUInt32LE(state.length, 1);
    const at = this.journal.append([head, state, output]);
    if (output.length > 0) {
      const pos = at.pos + head.length + state.length;
      this.addExtent(entry, { segment: at.segment, pos, offset: 0, length: output.length });
    }
    this.pin(entry, at.segment);
  }

  /**
   * Takes the broken journal back into use once a new segment can be created, and writes every
   * unrecorded task into it again (what was appended while it was broken is not on disk; output
   * the files lost reads back as the notice); the segments behind are deleted once that is
   * durable. Tried again until it holds.
   */
  private scheduleRepair(delayMs: number): void {
    this.repair = setTimeout(() => {
      if (this.closed) return;
      if (!this.journal.reopen()) return this.scheduleRepair(delayMs);
      this.relocating = true;
      try {
        for (const entry of this.entries.values()) this.relocate(entry);
      } finally {
        this.relocating = false;
      }
      this.collect();
      this.journal.afterDurable(() => {
        if (this.journal.broken) return this.scheduleRepair(delayMs);
        this.repair = undefined;
        this.log('info', 'the task spool writes again');
      });
    }, delayMs);
    this.repair.unref();
  }

  /** Deletes the oldest segments no unrecorded task needs, once what replaced them is on disk. */
  private collect(): void {
    const dead: number[] = [];
    for (const s of this.journal.segments()) {
      if (s === this.journal.activeSegment || (this.live.get(s)?.size ?? 0) > 0) break;
      dead.push(s);
      this.live.delete(s);
    }
    if (dead.length === 0) return;
    this.journal.afterDurable(() => {
      // Not on disk after all: a later collect finds them again once a repair's copies are.
      if (this.journal.broken) return;
      for (const s of dead) this.journal.drop(s);
    });
  }

  private replay(segment: number, pos: number, body: Buffer): void {
    const kind = body.readUInt8(0) as Kind;
    if (kind === Kind.Output) {
      const keyLen = body.readUInt16LE(1);
      const key = body.subarray(3, 3 + keyLen).toString();
      const offset = body.readDoubleLE(3 + keyLen);
      const dataAt = 3 + keyLen + 8;
      const entry = this.entries.get(key);
      if (!entry) return;
      this.addExtent(entry, { segment, pos: pos + dataAt, offset, length: body.length - dataAt });
      this.pin(entry, segment);
      return;
    }
    if (kind === Kind.Snapshot) {
      const stateEnd = 5 + body.readUInt32LE(1);
      const s = parseWith(SpooledSnapshot, JSON.parse(body.subarray(5, stateEnd).toString()));
      const entry = this.begin(s.msg, s.startTime);
      entry.process = s.process;
      entry.fileReports = s.fileReports;
      entry.result = s.result;
      if (body.length > stateEnd)
        this.addExtent(entry, { segment, pos: pos + stateEnd, offset: 0, length: body.length - stateEnd });
      this.pin(entry, segment);
      return;
    }
    const value: unknown = JSON.parse(body.subarray(1).toString());
    if (kind === Kind.Task) {
      const t = parseWith(SpooledTask, value);
      this.pin(this.begin(t.msg, t.startTime), segment);
      return;
    }
    const { key } = parseWith(Keyed, value);
    const entry = this.entries.get(key);
    if (!entry) return;
    this.pin(entry, segment);
    switch (kind) {
      case Kind.Process:
        entry.process = parseWith(SpooledProcess, value);
        return;
      case Kind.File:
        entry.fileReports.push(parseWith(FileRecordCheck, value));
        return;
      case Kind.Result:
        entry.result = parseWith(FinishedRecordCheck, value);
        return;
      case Kind.Removed:
        this.unlink(key);
        return;
    }
  }

  /** Takes over the per-task directories of an older agent's spool, then removes them. */
  private adoptLegacy(root: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(root);
    } catch {
      return;
    }
    for (const name of names) {
      const left = readLegacyTask(path.join(root, name));
      if (!left || this.entries.has(left.msg.key)) continue;
      const key = left.msg.key;
      this.create(left.msg, left.startTime);
      if (left.process) this.saveProcess(key, left.process);
      if (left.output.length > 0) this.append(key, left.output);
      for (const f of left.fileReports) this.appendFileReport(key, f);
      if (left.result) this.finish(key, left.result);
    }
    this.journal.afterDurable(() => fs.rmSync(root, { recursive: true, force: true }));
  }
}

/** One task directory of the older spool layout; undefined when it was half-written. */
function readLegacyTask(dir: string): (Omit<LeftTask, 'outputBytes'> & { output: Buffer }) | undefined {
  const read = (name: string): string | undefined => {
    try {
      return fs.readFileSync(path.join(dir, name), 'utf8');
    } catch {
      return undefined;
    }
  };
  try {
    const task = parseWith(SpooledTask, JSON.parse(read('task.json') ?? ''));
    let output: Buffer;
    try {
      output = fs.readFileSync(path.join(dir, 'output'));
    } catch {
      output = Buffer.alloc(0);
    }
    const result = read('result.json');
    const proc = read('process.json');
    const spooledProcess = proc === undefined ? undefined : v.safeParse(SpooledProcess, JSON.parse(proc));
    const files = (read('files.jsonl') ?? '').split('\n').flatMap((line) => {
      try {
        const r = v.safeParse(FileRecordCheck, JSON.parse(line));
        return r.success ? [r.output] : [];
      } catch {
        return [];
      }
    });
    return {
      ...task,
      output,
      result: result === undefined ? undefined : parseWith(FinishedRecordCheck, JSON.parse(result)),
      process: spooledProcess?.success ? spooledProcess.output : undefined,
      fileReports: files,
    };
  } catch {
    return undefined;
  }
}
