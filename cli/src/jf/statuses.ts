/** Status codes of the v3 API (server/src/engine/statuses.ts), as the CLI names and counts them. */
export const RUN_STATUS_NAMES: Record<number, string> = {
  1: 'pending',
  2: 'running',
  3: 'success',
  4: 'failed',
  5: 'skipped',
  6: 'error ignored',
  7: 'waiting for confirmation',
  8: 'terminated',
  9: 'abnormal',
  10: 'stopping',
  11: 'stopped',
  13: 'confirmation refused',
  14: 'abandoned',
  15: 'waiting for next batch',
};

export const HOST_STATUS_NAMES: Record<number, string> = {
  3: 'last success',
  5: 'waiting',
  7: 'running',
  9: 'success',
  11: 'failed',
  12: 'submit failed',
  101: 'script failed',
  102: 'timed out',
  103: 'terminated',
  104: 'non-zero exit',
  18: 'agent not installed',
  202: 'transfer failed',
  203: 'source missing',
  303: 'file timed out',
  310: 'agent abnormal',
  311: 'user missing',
  329: 'transfer error',
  399: 'task error',
  403: 'terminated',
};

const FINISHED_RUN = new Set([3, 4, 5, 6, 8, 9, 11, 13, 14]);
const TERMINATED_RUN = new Set([8, 11, 13, 14]);

export const isRunFinished = (s: number) => FINISHED_RUN.has(s);
export const isRunTerminated = (s: number) => TERMINATED_RUN.has(s);
export const isRunOk = (s: number) => s === 3 || s === 5 || s === 6;

export type HostState = 'ok' | 'failed' | 'running' | 'waiting';
export function hostState(status: number): HostState {
  if (status === 9 || status === 3) return 'ok';
  if (status === 7) return 'running';
  if (status === 5) return 'waiting';
  return 'failed';
}
