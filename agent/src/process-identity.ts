/**
 * Names a process so that a later run of the agent can find it again: its pid plus its start
 * time, because after a restart the pid alone may belong to an unrelated process by now.
 * Linux only (/proc); elsewhere nothing is recorded and nothing is killed.
 */
import fs from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot, field 22 of /proc/<pid>/stat. */
  started: string;
}

/** Holds one /proc/<pid>/stat (a few hundred bytes; field 22 is well within the first 4 KiB). */
const statBuf = Buffer.allocUnsafe(4096);

function startTicks(pid: number): string | undefined {
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
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

export function identifyProcess(pid: number): ProcessIdentity | undefined {
  const started = startTicks(pid);
  return started === undefined ? undefined : { pid, started };
}

/** Kills the process group led by `id` if that process still is the one recorded. */
export function killGroupIfSame(id: ProcessIdentity): boolean {
  if (startTicks(id.pid) !== id.started) return false;
  try {
    process.kill(-id.pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
