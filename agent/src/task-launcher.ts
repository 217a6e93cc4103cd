/**
 * Starts task processes without forking the agent.
 *
 * `spawn` forks the calling process, and a fork costs time in proportion to the caller's
 * memory (4 ms from a 50 MiB process, 7.5 ms from 158 MiB, here), on the agent's only thread.
 * The launcher is a small process that the agent starts once, on its first script, and that
 * starts every task; it relays each task's output and exit status over its stdout. Two speak
 * the same protocol: launcher/task-launcher.py where the host has python3 (its children start
 * with vfork, which copies nothing of the launcher: 1,000 hosts' `echo` took about half the
 * time it took through perl here), else launcher/task-launcher.pl (perl from Debian's
 * essential perl-base), which forks. Hosts with neither start tasks with `spawn` as before
 * (`directStarter`).
 *
 * Kill and timeout do not go through the launcher: every task leads its own process group and
 * the agent signals the group by its pid, as before. If the agent dies, the launcher sees its
 * stdin close, kills the process group of every task still running and exits: the agent's next
 * start reports them lost and kills what is left of them (see process-identity.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { outputBuffer } from '@jobfleet/protocol/agent';
import { findExecutable } from './script-runner.js';

export interface StartRequest {
  file: string;
  /** argv[0] included. */
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

/** What a started process reports; `exit` and `closed` come once each, in either order. */
export interface ProcessEvents {
  started(pid: number): void;
  failed(message: string): void;
  output(chunk: Buffer): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
  /** Its output pipe reached end of file (every writer closed it). */
  closed(): void;
}

export interface StartedProcess {
  /** Stops reading its output (background processes may hold the pipe open for ever). */
  stopReading(): void;
}

export interface ProcessStarter {
  /** True when a process's stderr goes to the same pipe as its stdout (their order is kept). */
  readonly joinsOutput: boolean;
  start(req: StartRequest, events: ProcessEvents): StartedProcess;
  close(): void;
}

/**
 * The launchers, in the order they are preferred: the interpreters looked for, the script each
 * runs, and the check that the interpreter found can run it (asked once, at the first task).
 */
export const LAUNCHERS = [
  {
    names: ['python3'],
    script: fileURLToPath(new URL('../../launcher/task-launcher.py', import.meta.url)),
    usable: (python: string) =>
      spawnSync(python, ['-c', 'import sys; sys.exit(sys.version_info < (3, 9))'], { stdio: 'ignore' })
        .status === 0,
  },
  {
    names: ['perl'],
    script: fileURLToPath(new URL('../../launcher/task-launcher.pl', import.meta.url)),
    usable: () => true,
  },
] as const;
const HEADER = 1 + 4 + 4;

interface FrameHead {
  kind: string;
  id: number;
}

function signalName(n: number): NodeJS.Signals | null {
  const entry = Object.entries(os.constants.signals).find(([, num]) => num === n);
  return entry ? (entry[0] as NodeJS.Signals) : null;
}

/** An idle launcher must not keep the agent's process alive (as a running task does). */
function holdOpen(proc: ChildProcess, on: boolean): void {
  for (const handle of [proc, proc.stdin, proc.stdout]) {
    const h = handle as { ref?: () => void; unref?: () => void } | null;
    if (on) h?.ref?.();
    else h?.unref?.();
  }
}

function requestFrame(fields: string[]): Buffer {
  const payload = Buffer.from(fields.join('\0'));
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(payload.length);
  return Buffer.concat([len, payload]);
}

/** One launcher process, started on first use and again after it died. */
export class TaskLauncher implements ProcessStarter {
  readonly joinsOutput = true;
  private proc: ChildProcess | undefined;
  private readonly tasks = new Map<number, { events: ProcessEvents; exited: boolean; closed: boolean }>();
  private nextId = 1;
  /** The frame being read: its header (kept in `headBuf` while incomplete), and its data. */
  private readonly headBuf = Buffer.alloc(HEADER);
  private headFill = 0;
  private head: FrameHead = { kind: '', id: 0 };
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(
    private readonly interpreter: string,
    private readonly script: string,
  ) {}

  start(req: StartRequest, events: ProcessEvents): StartedProcess {
    const env = Object.entries(req.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    const given = [req.cwd, ...env, req.file, ...req.args];
    // Fields are NUL-separated: one inside a value would shift the rest (which program runs, say).
    // Refused as spawn() refuses it, so that both starters fail such a task alike.
    if (given.some((f) => f.includes('\0')))
      throw new TypeError('a task argument or environment value holds a NUL character');
    const proc = this.launcher();
    const id = this.nextId++;
    const task = { events, exited: false, closed: false };
    this.tasks.set(id, task);
    holdOpen(proc, true);
    proc.stdin?.write(
      requestFrame([
        'run',
        String(id),
        req.cwd,
        req.uid === undefined ? '' : String(req.uid),
        req.gid === undefined ? '' : String(req.gid),
        String(env.length),
        ...env,
        req.file,
        ...req.args,
      ]),
    );
    return {
      stopReading: () => {
        if (this.proc !== proc || !this.tasks.has(id)) return;
        proc.stdin?.write(requestFrame(['drop', String(id)]));
        task.closed = true;
        this.forgetIfDone(id, task);
      },
    };
  }

  close(): void {
    this.proc?.stdin?.end();
    this.proc = undefined;
  }

  private launcher(): ChildProcess {
    if (this.proc) return this.proc;
    const proc = spawn(this.interpreter, [this.script], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc = proc;
    this.headFill = 0;
    this.body = undefined;
    proc.stdout?.on('data', (chunk: Buffer) => this.onData(chunk));
    // An agent that stops or dies closes the pipe; a write racing that is of no consequence.
    proc.stdin?.on('error', () => undefined);
    proc.on('error', () => this.lost(proc, 'could not start the task launcher'));
    proc.on('exit', () => this.lost(proc, 'the task launcher stopped'));
    return proc;
  }

  /** The launcher died: its tasks can no longer report (their processes are left to the caller to kill). */
  private lost(proc: ChildProcess, why: string): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    for (const t of tasks) t.events.failed(why);
  }

  /**
   * Frames of a task printing fast are up to a MiB and arrive in pipe reads of 64 KiB. A frame
   * that a read holds whole is handed on as a part of it; a longer one is assembled, each read
   * copied once into a buffer of the frame's length (output into an `outputBuffer`, whose
   * frame to the server is then laid around it without another copy).
   */
  private onData(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const body = this.body;
      if (body) {
        const n = chunk.copy(body, this.bodyFill, at);
        at += n;
        this.bodyFill += n;
        if (this.bodyFill < body.length) return;
        this.body = undefined;
        this.onFrame(this.head, body);
        continue;
      }
      let head: Buffer;
      if (this.headFill === 0 && chunk.length - at >= HEADER) {
        head = chunk.subarray(at, at + HEADER);
        at += HEADER;
      } else {
        const n = chunk.copy(this.headBuf, this.headFill, at, at + HEADER - this.headFill);
        at += n;
        this.headFill += n;
        if (this.headFill < HEADER) return;
        this.headFill = 0;
        head = this.headBuf;
      }
      this.head = { kind: String.fromCharCode(head[0] ?? 0), id: head.readUInt32BE(1) };
      const len = head.readUInt32BE(5);
      if (chunk.length - at >= len) {
        this.onFrame(this.head, chunk.subarray(at, at + len));
        at += len;
        continue;
      }
      this.body = this.head.kind === 'O' ? outputBuffer(len) : Buffer.allocUnsafe(len);
      this.bodyFill = 0;
    }
  }

  private onFrame({ kind, id }: FrameHead, data: Buffer): void {
    const task = this.tasks.get(id);
    if (!task) return;
    const t = task.events;
    switch (kind) {
      case 'P':
        t.started(Number(data.toString()));
        return;
      case 'O':
        t.output(data);
        return;
      case 'X': {
        const [how, n] = data.toString().split(' ');
        task.exited = true;
        this.forgetIfDone(id, task);
        if (how === 'exit') t.exit(Number(n), null);
        else t.exit(null, signalName(Number(n)));
        return;
      }
      case 'C':
        task.closed = true;
        this.forgetIfDone(id, task);
        t.closed();
        return;
      case 'F':
        task.exited = task.closed = true;
        this.forgetIfDone(id, task);
        t.failed(data.toString());
        return;
    }
  }

  private forgetIfDone(id: number, task: { exited: boolean; closed: boolean }): void {
    if (!task.exited || !task.closed) return;
    this.tasks.delete(id);
    if (this.tasks.size === 0 && this.proc) holdOpen(this.proc, false);
  }
}

/** `spawn` from the agent itself: for hosts without python3 or perl. */
export const directStarter: ProcessStarter = {
  joinsOutput: false,
  start(req, events) {
    const child = spawn(req.file, req.args.slice(1), {
      argv0: req.args[0],
      cwd: req.cwd,
      env: req.env,
      detached: true, // own process group: kill(-pid) reaches every descendant
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(req.uid !== undefined ? { uid: req.uid } : {}),
      ...(req.gid !== undefined ? { gid: req.gid } : {}),
    });
    let exited = false;
    child.stdout?.on('data', (c: Buffer) => events.output(c));
    child.stderr?.on('data', (c: Buffer) => events.output(c));
    child.on('error', (err) => {
      if (!exited) events.failed(err.message);
    });
    child.on('exit', (code, signal) => {
      exited = true;
      events.exit(code, signal);
    });
    child.on('close', () => events.closed());
    if (child.pid !== undefined) events.started(child.pid);
    return {
      stopReading: () => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      },
    };
  },
  close() {},
};

let chosen: { interpreter: string; script: string } | null | undefined;

/** A launcher when this host has python3 or perl, else `spawn` from the agent. */
export function defaultStarter(): ProcessStarter {
  if (chosen === undefined) {
    chosen = null;
    for (const l of LAUNCHERS) {
      const interpreter = fs.existsSync(l.script) ? findExecutable([...l.names]) : undefined;
      if (interpreter && l.usable(interpreter)) {
        chosen = { interpreter, script: l.script };
        break;
      }
    }
  }
  return chosen ? new TaskLauncher(chosen.interpreter, chosen.script) : directStarter;
}
