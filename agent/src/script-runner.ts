/**
 * Runs one script as a child process in its own process group, so that a timeout or a
 * terminate kills everything the script started.
 *
 * The script is written to a private temporary directory (0700), run by its interpreter with
 * script_param appended the way BK-JOB does it (through the shell, so quoting in the params
 * works as on a command line), and removed afterwards.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunScript, TaskOutcome } from '@jobfleet/protocol';

export interface ScriptHandlers {
  output(chunk: Buffer): void;
  done(outcome: TaskOutcome, exitCode: number, message: string): void;
}

export interface RunningScript {
  kill(): void;
}

const INTERPRETERS: Record<string, { linux: string[] | undefined; ext: string }> = {
  shell: { linux: ['/bin/bash', '/bin/sh'], ext: '.sh' },
  perl: { linux: ['/usr/bin/perl', '/usr/local/bin/perl'], ext: '.pl' },
  python: { linux: ['/usr/bin/python3', '/usr/local/bin/python3', '/usr/bin/python'], ext: '.py' },
  bat: { linux: undefined, ext: '.bat' },
  powershell: { linux: undefined, ext: '.ps1' },
  sql: { linux: undefined, ext: '.sql' },
};

function findInterpreter(language: string): string | undefined {
  const candidates = INTERPRETERS[language]?.linux;
  if (!candidates) return undefined;
  return candidates.find((c) => fs.existsSync(c));
}

interface OsUser {
  uid: number;
  gid: number;
  home: string;
  name: string;
}

function lookupUser(name: string): OsUser | undefined {
  try {
    const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    const [user, , uid, gid, , home] = line.split(':');
    if (!user || uid === undefined || gid === undefined) return undefined;
    return { name: user, uid: Number(uid), gid: Number(gid), home: home ?? '/' };
  } catch {
    return undefined;
  }
}

/** Decides who the script runs as: the agent's own user, or another one when the agent is root. */
function resolveUser(wanted: string): { user?: OsUser; error?: string } {
  const me = os.userInfo();
  if (wanted === '' || wanted === me.username) return {};
  const user = lookupUser(wanted);
  if (!user) return { error: `user ${wanted} does not exist on this host` };
  if (me.uid !== 0)
    return {
      error: `agent runs as ${me.username} and cannot run scripts as ${wanted} (run the agent as root to switch users)`,
    };
  return { user };
}

export function runScript(msg: RunScript, handlers: ScriptHandlers): RunningScript {
  const noop: RunningScript = { kill: () => undefined };
  if (process.platform === 'win32') {
    handlers.done('unsupported', -1, 'Windows agents are not supported yet');
    return noop;
  }
  const interpreter = findInterpreter(msg.language);
  if (!interpreter) {
    const why = INTERPRETERS[msg.language]?.linux
      ? 'is not installed on this host'
      : 'runs only on Windows hosts';
    handlers.done('unsupported', -1, `${msg.language} ${why}`);
    return noop;
  }
  const who = resolveUser(msg.user);
  if (who.error) {
    handlers.done('user_missing', -1, who.error);
    return noop;
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-task-'));
  const file = path.join(dir, `script${INTERPRETERS[msg.language]?.ext ?? ''}`);
  fs.writeFileSync(file, Buffer.from(msg.script, 'base64'), { mode: 0o700 });
  if (who.user) {
    fs.chownSync(dir, who.user.uid, who.user.gid);
    fs.chownSync(file, who.user.uid, who.user.gid);
  }
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });

  const env: NodeJS.ProcessEnv = { ...process.env };
  if (who.user) Object.assign(env, { HOME: who.user.home, USER: who.user.name, LOGNAME: who.user.name });

  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', `exec "${interpreter}" "$0" ${msg.params}`, file], {
      cwd: who.user?.home && fs.existsSync(who.user.home) ? who.user.home : dir,
      env,
      detached: true, // own process group: kill(-pid) reaches every descendant
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(who.user ? { uid: who.user.uid, gid: who.user.gid } : {}),
    });
  } catch (err) {
    cleanup();
    handlers.done('spawn_failed', -1, (err as Error).message);
    return noop;
  }

  let finished = false;
  let reason: 'timeout' | 'killed' | undefined;
  const killGroup = () => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const timer = setTimeout(() => {
    reason = 'timeout';
    killGroup();
  }, msg.timeoutSeconds * 1000);

  child.stdout?.on('data', (c: Buffer) => handlers.output(c));
  child.stderr?.on('data', (c: Buffer) => handlers.output(c));

  const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    cleanup();
    if (spawnError) return handlers.done('spawn_failed', -1, spawnError.message);
    if (reason === 'timeout')
      return handlers.done('timeout', code ?? 137, `killed after ${msg.timeoutSeconds} s timeout`);
    if (reason === 'killed') return handlers.done('killed', code ?? 137, 'terminated on request');
    const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
    handlers.done('exited', exitCode, signal ? `killed by ${signal}` : '');
  };

  child.on('error', (err) => finish(null, null, err));
  child.on('exit', (code, signal) => {
    // A background process may keep stdout open after the script exited; give the pipes a
    // moment to drain, then stop waiting for them.
    const grace = setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      finish(code, signal);
    }, 500);
    child.on('close', () => {
      clearTimeout(grace);
      finish(code, signal);
    });
  });

  return {
    kill() {
      if (finished) return;
      reason ??= 'killed';
      killGroup();
    },
  };
}
