/** What a test can observe of the operating system after a task: processes and temp directories. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Whether `pid` still runs. A killed process whose parent died waits as a zombie until init
 * reaps it, and init does not always do that in containers; a zombie runs nothing.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits for a condition on the world outside the runner (a process to die), polling. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills what a test left running (a background child it asked a script to start). */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** The script runner's directories for `key` that still exist (in the default script directory, or `dir`). */
export function scriptDirsOf(key: string, dir = os.tmpdir()): string[] {
  const prefix = `jobfleet-task-${key.replace(/:/g, '_')}-`;
  return fs.readdirSync(dir).filter((n) => n.startsWith(prefix));
}

/** scriptDirsOf once the server recorded the task's result: the runner removes them then. */
export function scriptDirsAfterRecorded(runner: { recorded(key: string): void }, key: string): string[] {
  runner.recorded(key);
  return scriptDirsOf(key);
}

export function tempStateDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-test-agent-state-'));
}

export function pidsIn(text: string): number[] {
  return [...text.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}
