/**
 * Where a run's CPU went, read from /proc: the server, the simulator processes, the task
 * launchers they started, the scripts (the launchers' reaped children) and PostgreSQL's
 * processes. Taken before and after a fan-out, the difference says what each part of the
 * per-task path cost; it holds still on a shared machine where wall times do not. The machine's
 * own counters say what the run could not use: time the hypervisor gave to other guests
 * (steal), time the cores sat idle or waited for the disk.
 */
import fs from 'node:fs';
import type { Store } from './results.js';

export interface CpuSplit {
  server: number;
  simulators: number;
  launchers: number;
  scripts: number;
  /** On the PostgreSQL pass: every `postgres` process on this machine (the bench's database server is its only one). */
  postgres: number;
  machine: MachineCpu;
}

/** Seconds summed over all cores, from the first line of /proc/stat. */
export interface MachineCpu {
  busy: number;
  idle: number;
  iowait: number;
  steal: number;
}

export const NO_MACHINE_TIME: MachineCpu = { busy: 0, idle: 0, iowait: 0, steal: 0 };

export function addMachineTime(a: MachineCpu, b: MachineCpu): MachineCpu {
  return {
    busy: a.busy + b.busy,
    idle: a.idle + b.idle,
    iowait: a.iowait + b.iowait,
    steal: a.steal + b.steal,
  };
}

const TICK_SECONDS = 1 / 100;

interface Stat {
  comm: string;
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
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  const n = (i: number) => Number(f[i]) * TICK_SECONDS;
  return {
    comm: text.slice(text.indexOf('(') + 1, close),
    ppid: Number(f[1]),
    own: n(11) + n(12),
    children: n(13) + n(14),
  };
}

function readMachine(): MachineCpu {
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user)
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const t = (i: number) => (f[i] ?? 0) * TICK_SECONDS;
  return { busy: t(0) + t(1) + t(2) + t(5) + t(6), idle: t(3), iowait: t(4), steal: t(7) };
}

/**
 * CPU seconds so far of the server, the simulators, their children, their children's reaped
 * children and PostgreSQL, and the machine's counters.
 */
export function cpuSplit(serverPid: number, simulatorPids: readonly number[], store: Store): CpuSplit {
  const machine = readMachine();
  const byParent = new Map<number, number[]>();
  const stats = new Map<number, Stat>();
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (!s) continue;
    stats.set(pid, s);
    const list = byParent.get(s.ppid) ?? [];
    list.push(pid);
    byParent.set(s.ppid, list);
  }
  // The backends live and gone: a backend that exited (the pool closes idle connections) is
  // in its parent's reaped children, the postmaster's, the one postgres process whose parent
  // is not one.
  let postgres = 0;
  for (const s of store === 'postgres' ? stats.values() : []) {
    if (s.comm !== 'postgres') continue;
    postgres += s.own;
    if (stats.get(s.ppid)?.comm !== 'postgres') postgres += s.children;
  }
  const out: CpuSplit = {
    server: stats.get(serverPid)?.own ?? 0,
    simulators: 0,
    launchers: 0,
    scripts: 0,
    postgres,
    machine,
  };
  for (const pid of simulatorPids) {
    out.simulators += stats.get(pid)?.own ?? 0;
    for (const child of byParent.get(pid) ?? []) {
      const s = stats.get(child);
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
    postgres: after.postgres - before.postgres,
    machine: {
      busy: after.machine.busy - before.machine.busy,
      idle: after.machine.idle - before.machine.idle,
      iowait: after.machine.iowait - before.machine.iowait,
      steal: after.machine.steal - before.machine.steal,
    },
  };
}

export function describeCpu(c: CpuSplit, tasks: number, store: Store): string {
  const ms = (s: number) => ((s * 1000) / tasks).toFixed(2);
  const total = c.server + c.simulators + c.launchers + c.scripts + c.postgres;
  const pg = store === 'postgres' ? `, postgres ${ms(c.postgres)}` : '';
  return `CPU per task (ms): server ${ms(c.server)}, simulators ${ms(c.simulators)}, launchers ${ms(c.launchers)}, scripts ${ms(c.scripts)}${pg}, total ${ms(total)}; ${describeMachine(c.machine)}`;
}

/** Shares of the cores' time over the run: what the processes got, and what they could not have. */
export function describeMachine(m: MachineCpu): string {
  const all = m.busy + m.idle + m.iowait + m.steal;
  const pct = (x: number) => `${all > 0 ? Math.round((100 * x) / all) : 0} %`;
  return `machine: ${pct(m.busy)} busy, ${pct(m.steal)} stolen by the hypervisor, ${pct(m.iowait)} waiting for the disk, ${pct(m.idle)} idle`;
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
