/**
 * Runs one script as a child process that leads its own session, so that a timeout or a
 * terminate kills everything the script started (every process group of the session).
 *
 * The script is written to a private directory (0700, owned by the user it runs as, also its
 * working directory) made in the agent's script directory (see defaultScriptDir), run by its
 * interpreter with script_param appended the way BK-JOB does it (through the shell, so
 * quoting in the params works as on a command line), and the directory is removed once the
 * task's runner releases it: after the server recorded the result (or the task was
 * forgotten, or the agent stops), whichever way the script ended.
 * Not right at the end: removing a directory just made waits for the filesystem's journal to
 * commit its creation (milliseconds on a busy disk), and a database syncing on the same disk
 * at that moment, such as the server's while it stores this very result, waits with it.
 *
 * The user lookup is asynchronous (it may run getent). Writing the script and removing its
 * directory are a handful of small synchronous calls: done through the thread pool they cost
 * more (a hand-off and a wake-up per call, queued behind the spool's fdatasync) than the calls
 * themselves. `done` is called exactly once.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunScript, ScriptLanguage, TaskOutcome } from '@jobfleet/protocol';
import { resolveUser } from './os-user.js';
import type { OsUser } from './os-user.js';
import { killSession, TASK_MARK_VAR } from './process-identity.js';
import {
  OPTION_FILE,
  optionFileText,
  SQL_CANCEL_GRACE_MS,
  SQL_CLIENT_COMMAND,
  SQL_CLIENT_NAMES,
  sqlSandboxOptions,
  unsupportedEngine,
} from './sql-client.js';
import type { ProcessStarter, StartedProcess } from './task-launcher.js';
import type { RunningTask, StopReason } from './task-runner-api.js';

export interface ScriptHandlers {
  /** The script's process (and group) exists; called at most once, before any output. */
  spawned?(pid: number): void;
  output(chunk: Buffer): void;
  /** `vars`: base64 of what the script left in $JOBFLEET_VARS_OUT, when asked for. */
  done(outcome: TaskOutcome, exitCode: number, message: string, vars?: string): void;
}

/**
 * After the script's own process exited, how long to keep reading output that its
 * background children may still write to the inherited pipe before stopping to wait.
 */
const DRAIN_GRACE_MS = 500;
/** Variables a script reports back are values for later steps, not data: 1 MiB is plenty. */
const MAX_VARS_BYTES = 1024 * 1024;

interface Interpreter {
  /** Executable names, first found wins; undefined for languages that need a Windows host. */
  names: string[] | undefined;
  ext: string;
}

const INTERPRETERS: Record<ScriptLanguage, Interpreter> = {
  shell: { names: ['bash', 'sh'], ext: '.sh' },
  perl: { names: ['perl'], ext: '.pl' },
  python: { names: ['python3', 'python'], ext: '.py' },
  bat: { names: undefined, ext: '.bat' },
  powershell: { names: undefined, ext: '.ps1' },
  sql: { names: SQL_CLIENT_NAMES, ext: '.sql' },
};

/** System directories come before PATH so that a script run as another user gets an interpreter it can read. */
const SYSTEM_BIN_DIRS = ['/bin', '/usr/bin', '/usr/local/bin'];

/** Interpreters found, by the names looked for; forgotten when one fails to start. */
const found = new Map<string, string>();

/** Like findExecutable, remembered: a lookup is a few stat calls for every task otherwise. */
function interpreterFor(names: string[]): string | undefined {
  const key = names.join('\0');
  const hit = found.get(key);
  if (hit) return hit;
  const file = findExecutable(names);
  if (file) found.set(key, file);
  return file;
}

export function findExecutable(names: string[]): string | undefined {
  const dirs = [...SYSTEM_BIN_DIRS, ...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/'))];
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return candidate;
      } catch {
        /* not here */
      }
    }
  }
  return undefined;
}

let agentEnv: NodeJS.ProcessEnv | undefined;

/**
 * The agent's own settings (its bootstrap token among them) are not the script's business.
 * Read once: every read of process.env is a call into the C++ side, and the agent does not
 * change its environment while it runs.
 */
function scriptEnv(user: OsUser | undefined): NodeJS.ProcessEnv {
  if (!agentEnv) {
    agentEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('JOBFLEET_')) agentEnv[k] = v;
  }
  return user ? { ...agentEnv, HOME: user.home, USER: user.name, LOGNAME: user.name } : agentEnv;
}

/** Like a shell reports it: the exit status, or 128 + the signal's number; -1 when the script never ran. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal === null) return -1;
  return 128 + (os.constants.signals[signal] ?? 0);
}

function scriptDirPrefix(key: string): string {
  return `jobfleet-task-${key.replace(/:/g, '_')}-`;
}

/**
 * Where scripts' directories go unless the operator says otherwise: the runtime directory
 * systemd gives a service with `RuntimeDirectory=` (on tmpfs, emptied when the service stops),
 * else the system's temporary directory. A script directory lives for seconds; on a disk
 * filesystem creating and removing it goes through the journal (0.2–0.5 ms of CPU per task
 * measured on ext4, and an rmdir that waits for the journal's commit); on tmpfs, microseconds.
 */
export function defaultScriptDir(): string {
  const runtime = process.env.RUNTIME_DIRECTORY?.split(':')[0];
  return runtime && path.isAbsolute(runtime) ? runtime : os.tmpdir();
}

/**
 * Makes sure `dir` exists. Created like a temporary directory without the sticky bit: other
 * accounts need to pass through it to their own script's directory, and only the agent
 * creates entries in it.
 */
export function prepareScriptDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
}

/** Removes what script runs of `keys` left in `dir` (after an agent stop or crash). */
export function removeScriptDirs(keys: readonly string[], dir: string): void {
  if (keys.length === 0) return;
  const prefixes = new Set(keys.map(scriptDirPrefix));
  try {
    // One listing for all of them: a shared temporary directory may hold many thousands of
    // entries. mkdtemp adds six characters to the prefix.
    for (const name of fs.readdirSync(dir)) {
      if (prefixes.has(name.slice(0, -6))) removeTree(path.join(dir, name), process.getuid?.() === 0);
    }
  } catch {
    /* nothing to clean */
  }
}

class ScriptRun implements RunningTask {
  private child: StartedProcess | undefined;
  private pid: number | undefined;
  private dir: string | undefined;
  /** The account the script's directory was handed to (undefined: the agent's own). */
  private owner: OsUser | undefined;
  /** What the agent wrote into `dir`, so removing it needs no listing when the script added nothing. */
  private files: string[] = [];
  private stopReason: 'timeout' | StopReason | undefined;
  private exited = false;
  private finished = false;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    private readonly msg: RunScript,
    private readonly handlers: ScriptHandlers,
    private readonly starter: ProcessStarter,
    private readonly parentDir: string,
    private readonly mark: string,
  ) {}

  start(): void {
    void this.begin();
  }

  private async begin(): Promise<void> {
    const { msg } = this;
    if (process.platform === 'win32')
      return this.finish('unsupported', -1, 'Windows agents are not supported yet');
    if (msg.language === 'sql') {
      const why = unsupportedEngine(msg.database);
      if (why) return this.finish('unsupported', -1, why);
    }
    const names = INTERPRETERS[msg.language].names;
    const interpreter = names && interpreterFor(names);
    if (!interpreter) {
      const why = names
        ? `is not installed on this host (looked for ${names.join(', ')})`
        : 'runs only on Windows hosts';
      return this.finish('unsupported', -1, `${msg.language} ${why}`);
    }
    try {
      const who = await resolveUser(msg.user);
      if (who.error) return this.finish('user_missing', -1, who.error);
      if (this.stopReason) return this.finishStopped(null, null);
      this.writeScript(who.user);
      if (this.stopReason) return this.finishStopped(null, null);
      this.spawn(interpreter, who.user);
    } catch (err) {
      // Node's message quotes the value it refused, which may be a cipher variable's or a
      // sensitive parameter's: the result (and the spool) must not carry it.
      const refusedValue = (err as NodeJS.ErrnoException).code === 'ERR_INVALID_ARG_VALUE';
      return this.finish(
        'spawn_failed',
        -1,
        refusedValue ? 'a script parameter or variable value holds a NUL character' : (err as Error).message,
      );
    }
  }

  private scriptFile(): string {
    return path.join(this.dir as string, `script${INTERPRETERS[this.msg.language].ext}`);
  }

  private varsFile(): string {
    return path.join(this.dir as string, 'vars.out');
  }

  /** What the script left for the server in its variables file (capped; absent when it wrote none). */
  private readVars(): string | undefined {
    if (!this.msg.varsOut || !this.dir) return undefined;
    // The script's account owns the directory: only a plain file is read (not a link, not a
    // FIFO that would block the agent), and no more of it than is kept.
    let fd: number | undefined;
    try {
      const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
      fd = fs.openSync(this.varsFile(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return undefined;
      const data = Buffer.alloc(Math.min(st.size, MAX_VARS_BYTES));
      let n = 0;
      while (n < data.length) {
        const got = fs.readSync(fd, data, n, data.length - n, null);
        if (got === 0) break;
        n += got;
      }
      return data.subarray(0, n).toString('base64');
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  private writeScript(user: OsUser | undefined): void {
    this.dir = fs.mkdtempSync(path.join(this.parentDir, scriptDirPrefix(this.msg.key)));
    const file = this.scriptFile();
    this.files.push(file);
    fs.writeFileSync(file, Buffer.from(this.msg.script, 'base64'), { mode: 0o700 });
    if (this.msg.database) {
      const options = path.join(this.dir, OPTION_FILE);
      this.files.push(options);
      fs.writeFileSync(options, optionFileText(this.msg.database), { mode: 0o600 });
    }
    // The files first, the directory last: once the account owns the directory it can replace
    // an entry with a link, which a chown by path would follow (handing it any file of root's).
    if (user) for (const f of [...this.files, this.dir]) fs.lchownSync(f, user.uid, user.gid);
    this.owner = user;
  }

  /** `sh -c` arguments: the interpreter runs the script with BK-JOB's params, or the SQL client reads it. */
  private shellArgs(interpreter: string): string[] {
    if (this.msg.language === 'sql') {
      return [
        '-c',
        SQL_CLIENT_COMMAND,
        interpreter,
        path.join(this.dir as string, OPTION_FILE),
        this.scriptFile(),
        ...sqlSandboxOptions(interpreter),
      ];
    }
    // One pipe for both streams (stderr joined to stdout before anything runs) keeps their
    // order exactly as written. A syntax error in the params is reported on that pipe too.
    return ['-c', `exec 2>&1\nexec "$0" "$1" ${this.msg.params}`, interpreter, this.scriptFile()];
  }

  /**
   * What to start. Without params, and with a starter that already joins stderr to stdout on
   * one pipe, the interpreter is started directly: the `sh -c` around it would only add an exec.
   */
  private command(interpreter: string): { file: string; args: string[] } {
    if (this.msg.language !== 'sql' && this.msg.params.trim() === '' && this.starter.joinsOutput)
      return { file: interpreter, args: [interpreter, this.scriptFile()] };
    return { file: '/bin/sh', args: ['/bin/sh', ...this.shellArgs(interpreter)] };
  }

  private spawn(interpreter: string, user: OsUser | undefined): void {
    let closed = false;
    let grace: NodeJS.Timeout | undefined;
    this.child = this.starter.start(
      {
        ...this.command(interpreter),
        cwd: this.dir as string,
        env: {
          ...scriptEnv(user),
          ...this.msg.env,
          ...(this.msg.varsOut ? { JOBFLEET_VARS_OUT: this.varsFile() } : {}),
          [TASK_MARK_VAR]: this.mark,
        },
        ...(user ? { uid: user.uid, gid: user.gid } : {}),
      },
      {
        started: (pid) => {
          this.pid = pid;
          this.handlers.spawned?.(pid);
          this.timer = setTimeout(() => this.stop('timeout'), this.msg.timeoutSeconds * 1000);
          // A kill asked for while the process was being started.
          if (this.stopReason) this.stop(this.stopReason);
        },
        failed: (message) => {
          if (this.exited) return;
          // Started, then its launcher died: the process can no longer report, so it must not run on.
          if (this.pid !== undefined) {
            killSession(this.pid);
            void this.finish('lost', -1, message);
          } else {
            found.clear(); // the interpreter may have gone: look again next time
            void this.finish('spawn_failed', -1, message);
          }
        },
        output: (c) => {
          if (!this.finished) this.handlers.output(c);
        },
        exit: (code, signal) => {
          this.exited = true;
          clearTimeout(this.timer);
          if (closed) {
            void this.finishStopped(code, signal);
            return;
          }
          // A background process may keep the pipe open after the script exited; read what
          // comes for a moment, then stop waiting for it (it keeps running, like a daemon would).
          grace = setTimeout(() => {
            this.child?.stopReading();
            void this.finishStopped(code, signal);
          }, DRAIN_GRACE_MS);
          this.exitStatus = { code, signal };
        },
        closed: () => {
          closed = true;
          if (!this.exitStatus) return;
          clearTimeout(grace);
          void this.finishStopped(this.exitStatus.code, this.exitStatus.signal);
        },
      },
    );
  }

  kill(reason: StopReason = 'killed'): void {
    this.stop(reason);
  }

  release(): void {
    this.released = true;
    if (this.finished) this.removeDir();
  }

  private removeDir(): void {
    const dir = this.dir;
    this.dir = undefined;
    if (!dir) return;
    try {
      // What the agent wrote, then the directory: three calls, where a recursive removal lists
      // the directory and stats every entry first. Only a script that left files of its own
      // (or a variables file) needs the recursive removal.
      for (const f of this.files) fs.unlinkSync(f);
      fs.rmdirSync(dir);
    } catch {
      removeTree(dir, this.owner !== undefined);
    }
  }

  private stop(reason: 'timeout' | StopReason): void {
    if (this.finished || this.exited) return;
    this.stopReason ??= reason;
    const pid = this.pid;
    if (pid === undefined) return; // not started yet: start() sees stopReason and does not spawn, or `started` stops it
    if (this.msg.language === 'sql') {
      // The client cancels its statement on the server when interrupted; kill it only if it lingers.
      signalGroup(pid, 'SIGINT');
      setTimeout(() => {
        if (!this.exited) killSession(pid);
      }, SQL_CANCEL_GRACE_MS).unref();
      return;
    }
    killSession(pid);
  }

  private finishStopped(code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const exitCode = exitCodeOf(code, signal);
    switch (this.stopReason) {
      case 'timeout':
        return this.finish('timeout', exitCode, `killed after the ${this.msg.timeoutSeconds} s timeout`);
      case 'killed':
        return this.finish('killed', exitCode, 'terminated on request');
      case 'lost':
        return this.finish('lost', exitCode, 'the agent stopped while this task was running');
      case undefined:
        return this.finish('exited', exitCode, signal ? `killed by ${signal}` : '');
    }
  }

  private async finish(outcome: TaskOutcome, exitCode: number, message: string): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    const vars = this.readVars();
    this.handlers.done(outcome, exitCode, message, vars);
    if (this.released) this.removeDir();
  }
}

/**
 * Removes a directory tree. One that another account owns (or may have planted, as in the
 * shared temporary directory) is removed by `rm`, which walks it by directory descriptors
 * without following links: a removal by path as root (fs.rmSync) lists a subdirectory after
 * checking it, so an account that swaps the subdirectory for a link meanwhile had root delete
 * the files of any directory.
 */
function removeTree(dir: string, foreign: boolean): void {
  try {
    if (foreign)
      execFileSync('rm', ['-rf', '--one-file-system', '--', dir], { stdio: 'ignore', timeout: 60_000 });
    else fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* left for the temporary directory's own cleanup */
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is already gone */
  }
}

/**
 * A task that runs one script once it is started. `dir`: where the script's own directory is
 * made (it exists; see prepareScriptDir). `mark`: put in the script's environment, by which a
 * restarted agent finds its processes (see process-identity.ts).
 */
export function scriptTask(
  msg: RunScript,
  handlers: ScriptHandlers,
  starter: ProcessStarter,
  dir: string,
  mark: string,
): RunningTask {
  return new ScriptRun(msg, handlers, starter, dir, mark);
}
