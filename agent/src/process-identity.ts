/**
 * Finds the processes of an earlier run of the agent again after a restart, to kill what its
 * unfinished tasks left running. Two ways:
 * - a script's pid plus its start time, spooled once it started (after a restart the pid alone
 *   may belong to an unrelated process by now);
 * - the mark every task's processes carry in their environment ($JOBFLEET_TASK), for a script
 *   whose pid never reached the spool: the agent (and its launcher with it) died in the
 *   milliseconds between starting it and writing the pid down.
 * Linux only (/proc); elsewhere nothing is recorded and nothing is killed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot, field 22 of /proc/<pid>/stat. */
  started: string;
}

/** The environment variable that carries a task's mark into every process of its script. */
export const TASK_MARK_VAR = 'JOBFLEET_TASK';

/**
 * A task's mark: opaque, and distinct between agents on one host, which may run tasks of the
 * same key for different servers (the key is the server's step, attempt and host).
 */
export function taskMark(stateDir: string, key: string): string {
  return createHash('sha256')
    .update(`${path.resolve(stateDir)}\0${key}`)
    .digest('hex')
    .slice(0, 32);
}

/** Holds one /proc/<pid>/stat (a few hundred bytes; field 22 is well within the first 4 KiB). */
const statBuf = Buffer.allocUnsafe(4096);

interface ProcessStat {
  pgid: number;
  sid: number;
  /** As in ProcessIdentity. */
  started: string;
}

function readStat(pid: number | 'self'): ProcessStat | undefined {
  const file = `/proc/${pid}/stat`;
  // A short task is often gone (reaped by the launcher) by the time the agent learns its pid;
  // asking first spares the thrown error of a failed open, which costs more than the read.
  if (!fs.existsSync(file)) return undefined;
  let n: number;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      n = fs.readSync(fd, statBuf, 0, statBuf.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const stat = statBuf.toString('latin1', 0, n);
  // The command name (field 2) may contain spaces and parentheses; fields after it do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [pgid, sid, started] = [fields[2], fields[3], fields[19]];
  if (pgid === undefined || sid === undefined || started === undefined) return undefined;
  return { pgid: Number(pgid), sid: Number(sid), started };
}

export function identifyProcess(pid: number): ProcessIdentity | undefined {
  const started = readStat(pid)?.started;
  return started === undefined ? undefined : { pid, started };
}

/** Kills the process group led by `id` if that process still is the one recorded. */
export function killGroupIfSame(id: ProcessIdentity): boolean {
  if (readStat(id.pid)?.started !== id.started) return false;
  return killGroup(id.pid);
}

function killGroup(pgid: number): boolean {
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

interface MarkedProcess extends ProcessStat {
  pid: number;
}

const MARK_PREFIX = `\0${TASK_MARK_VAR}=`;

/** The value of the mark in a process's environment, if it has one the agent may read. */
function markOf(pid: string): string | undefined {
  let env: string;
  try {
    env = '\0' + fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return undefined; // gone, or another account's process and the agent is not root
  }
  const at = env.indexOf(MARK_PREFIX);
  if (at < 0) return undefined;
  const from = at + MARK_PREFIX.length;
  const end = env.indexOf('\0', from);
  return env.slice(from, end < 0 ? env.length : end);
}

/**
 * Kills, for each mark, the session of the task that carries it: every process group of it that
 * a marked process belongs to. The session is the one the task's recorded process led, else the
 * one of the earliest started marked process: the script's first process, which leads its
 * session (see task-launcher.ts) while it runs. Processes that left the session (daemons)
 * are left alone, as when the task ends; so are processes whose environment the agent may not
 * read (all are readable when it runs as root, as an agent that runs scripts as other accounts
 * does) and any in the agent's own session (an agent started by a task of its own state
 * directory). One pass over /proc for all marks; returns how many groups it signalled.
 */
export function killMarkedSessions(marks: ReadonlyMap<string, ProcessIdentity | undefined>): number {
  if (marks.size === 0) return 0;
  const own = readStat('self');
  const found = new Map<string, MarkedProcess[]>();
  for (const pid of processIds()) {
    const mark = markOf(pid);
    if (mark === undefined || !marks.has(mark)) continue;
    const stat = readStat(Number(pid));
    if (!stat || stat.sid === own?.sid) continue;
    const procs = found.get(mark) ?? [];
    procs.push({ pid: Number(pid), ...stat });
    found.set(mark, procs);
  }
  let signalled = 0;
  for (const [mark, procs] of found) {
    const session = marks.get(mark)?.pid ?? earliest(procs).sid;
    const groups = new Set(procs.filter((p) => p.sid === session).map((p) => p.pgid));
    for (const pgid of groups) if (killGroup(pgid)) signalled++;
  }
  return signalled;
}

/** Sessions whose other process groups are looked for in the next pass over /proc. */
const pendingSessions = new Set<number>();

/**
 * Kills every process group of the session `sid` leads: a task's script leads its own session,
 * and what it starts in groups of their own (`timeout`, a shell's background jobs under `set -m`)
 * stays in it, where a kill of the script's group alone missed them. Its session id is not
 * reused while any process of the session lives, so nothing else is hit.
 *
 * The script's own group goes at once; the others are found in one pass over /proc for every
 * session asked for in the same turn of the event loop. A terminate reaches all of a job's
 * tasks together: a pass each read every process's stat once per task, which for a few
 * thousand tasks in one process (the bench's simulated fleet) took minutes.
 */
export function killSession(sid: number): void {
  killGroup(sid);
  if (pendingSessions.size === 0) setImmediate(killPendingSessions);
  pendingSessions.add(sid);
}

function killPendingSessions(): void {
  const sessions = new Set(pendingSessions);
  pendingSessions.clear();
  const groups = new Set<number>();
  for (const pid of processIds()) {
    const stat = readStat(Number(pid));
    if (stat && sessions.has(stat.sid)) groups.add(stat.pgid);
  }
  for (const pgid of groups) killGroup(pgid);
}

function processIds(): string[] {
  try {
    return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
}

function earliest(procs: MarkedProcess[]): MarkedProcess {
  return procs.reduce((a, b) => (Number(b.started) < Number(a.started) ? b : a));
}
