/** BK-JOB's status numbers (server/src/engine/statuses.ts) as the console shows them. */

export type Tone = 'ok' | 'fail' | 'run' | 'wait';

const RUN: Record<number, [string, Tone]> = {
  1: ['Pending', 'wait'],
  2: ['Running', 'run'],
  3: ['Success', 'ok'],
  4: ['Failed', 'fail'],
  5: ['Skipped', 'wait'],
  6: ['Ignored error', 'ok'],
  7: ['Waiting for confirmation', 'run'],
  8: ['Terminated', 'fail'],
  9: ['Abnormal', 'fail'],
  10: ['Stopping', 'run'],
  11: ['Stopped', 'fail'],
  13: ['Confirmation refused', 'fail'],
  14: ['Abandoned', 'fail'],
  15: ['Waiting for next batch', 'run'],
};

const HOST: Record<number, [string, Tone]> = {
  2: ['Invalid host', 'fail'],
  3: ['Last success', 'ok'],
  5: ['Waiting', 'wait'],
  7: ['Running', 'run'],
  9: ['Success', 'ok'],
  11: ['Failed', 'fail'],
  12: ['Submit failed', 'fail'],
  18: ['Agent not installed', 'fail'],
  101: ['Script failed', 'fail'],
  102: ['Timed out', 'fail'],
  103: ['Terminated', 'fail'],
  104: ['Non-zero exit', 'fail'],
  202: ['File transfer failed', 'fail'],
  203: ['Source file missing', 'fail'],
  303: ['File task timed out', 'fail'],
  310: ['Agent abnormal', 'fail'],
  311: ['User does not exist', 'fail'],
  329: ['File transfer error', 'fail'],
  399: ['Task error', 'fail'],
  403: ['Terminated', 'fail'],
};

export const RUN_STATUSES = Object.keys(RUN).map(Number);

export function runStatus(n: number): { label: string; tone: Tone } {
  const [label, tone] = RUN[n] ?? [`Status ${n}`, 'wait'];
  return { label, tone };
}

export function hostStatus(n: number): { label: string; tone: Tone } {
  const [label, tone] = HOST[n] ?? [`Status ${n}`, 'fail'];
  return { label, tone };
}

const FINISHED_RUN = new Set([3, 4, 5, 6, 8, 9, 11, 13, 14]);

/** Job statuses of a job in flight: running, waiting for a person, stopping. */
export const RUNNING_JOB_STATUSES: readonly number[] = [2, 7, 10];

/**
 * Job statuses of a job that ended without success: failed, abnormal, stopped, confirmation
 * refused, abandoned. (8, BK-JOB's old "terminated", is never set by the engine.)
 */
export const FAILED_JOB_STATUSES: readonly number[] = [4, 9, 11, 13, 14];

export function isRunFinished(n: number): boolean {
  return FINISHED_RUN.has(n);
}

export function isHostFinished(n: number): boolean {
  return n !== 5 && n !== 7;
}

export function isHostFailed(n: number): boolean {
  return hostStatus(n).tone === 'fail';
}

export const STEP_TYPES: Record<number, string> = { 1: 'Script', 2: 'File', 3: 'Confirmation', 4: 'SQL' };

export const LANGUAGES: { id: number; name: string; mode: string }[] = [
  { id: 1, name: 'Shell', mode: 'shell' },
  { id: 2, name: 'Bat', mode: 'bat' },
  { id: 3, name: 'Perl', mode: 'perl' },
  { id: 4, name: 'Python', mode: 'python' },
  { id: 5, name: 'PowerShell', mode: 'powershell' },
];

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function formatTime(ms: number | null | undefined): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
