/**
 * Where a run's CPU went, read from /proc: the server, the simulator processes, the task
 * launchers they started, and the scripts (the launchers' reaped children). Taken before and
 * after a fan-out, the difference says what each part of the per-task path cost; it holds still
 * on a shared machine where wall times do not.
 */
import fs from 'node:fs';

export interface CpuSplit {
  server: number;
  simulators: number;
  launchers: number;
  scripts: number;
}

const TICK_SECONDS = 1 / 100;

interface Stat {
  ppid: number;
  /** utime + stime, seconds. */
  own: number;
  /** cutime + cstime (reaped children), seconds. */
  children: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i]) * TICK_SECONDS;
  return { ppid: Number(f[1]), own: n(11) + n(12), children: n(13) + n(14) };
}

/** CPU seconds so far of the server, the simulators, their children and their children's reaped children. */
export function cpuSplit(serverPid: number, simulatorPids: readonly number[]): CpuSplit {
  const byParent = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (!s) continue;
    const list = byParent.get(s.ppid) ?? [];
    list.push(pid);
    byParent.set(s.ppid, list);
  }
  const out: CpuSplit = { server: readStat(serverPid)?.own ?? 0, simulators: 0, launchers: 0, scripts: 0 };
  for (const pid of simulatorPids) {
    out.simulators += readStat(pid)?.own ?? 0;
    for (const child of byParent.get(pid) ?? []) {
      const s = readStat(child);
      if (!s) continue;
      out.launchers += s.own;
      out.scripts += s.children;
    }
  }
  return out;
}

export function cpuSince(before: CpuSplit, after: CpuSplit): CpuSplit {
  return {
    server: after.server - before.server,
    simulators: after.simulators - before.simulators,
    launchers: after.launchers - before.launchers,
    scripts: after.scripts - before.scripts,
  };
}

export function describeCpu(c: CpuSplit, tasks: number): string {
  const ms = (s: number) => ((s * 1000) / tasks).toFixed(2);
  const total = c.server + c.simulators + c.launchers + c.scripts;
  return `CPU per task (ms): server ${ms(c.server)}, simulators ${ms(c.simulators)}, launchers ${ms(c.launchers)}, scripts ${ms(c.scripts)}, total ${ms(total)}`;
}

/** How the server received task results so far (combined `task.report` or `task.finished`), from its metrics. */
export async function taskResultCounts(serverUrl: string): Promise<string> {
  try {
    const text = await (await fetch(`${serverUrl}/metrics`)).text();
    const lines = text.split('\n').filter((l) => l.startsWith('jobfleet_agent_task_results_total{'));
    return `task results received: ${lines.map((l) => l.replace('jobfleet_agent_task_results_total', '')).join(', ') || 'none counted'}`;
  } catch (err) {
    return `task results received: unknown (${(err as Error).message})`;
  }
}
