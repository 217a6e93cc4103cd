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

function startTicks(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after it do not.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
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
