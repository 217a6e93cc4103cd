/**
 * Job, step and host statuses, with BK-JOB's numbers (behaviour notes §4.1, §4.4). Every
 * status decision of the engine is made here, so the rules live in one place.
 */
import type { TaskOutcome } from '@jobfleet/protocol';

/** Job and step run status (RunStatusEnum). */
export const RunStatus = {
  PENDING: 1,
  RUNNING: 2,
  SUCCESS: 3,
  FAIL: 4,
  SKIPPED: 5,
  IGNORE_ERROR: 6,
  WAITING_USER: 7,
  TERMINATED: 8,
  ABNORMAL: 9,
  STOPPING: 10,
  STOP_SUCCESS: 11,
  CONFIRM_TERMINATED: 13,
  ABANDONED: 14,
  ROLLING_WAITING: 15,
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** Job and step statuses of `finished` (behaviour notes §4.1). */
export const FINISHED_RUN_STATUSES: readonly number[] = [3, 4, 5, 6, 8, 9, 11, 13, 14];
const FINISHED_RUN: ReadonlySet<number> = new Set(FINISHED_RUN_STATUSES);

/** `finished` of get_job_instance_status. Not terminal: a retry can move a finished job on. */
export function isRunFinished(status: number): boolean {
  return FINISHED_RUN.has(status);
}

/**
 * Job statuses of a job in flight, which a server carries on with (after a restart, a takeover
 * or a store error): running, waiting for a person (a confirmation, a manual rolling batch),
 * stopping.
 */
export const IN_FLIGHT_JOB_STATUSES: readonly number[] = [
  RunStatus.RUNNING,
  RunStatus.WAITING_USER,
  RunStatus.STOPPING,
];

/** The statuses at which a job's finish is announced (callbacks): §7. */
export const CALLBACK_STATUSES: readonly number[] = [3, 4, 9, 11, 14];

export function isCallbackStatus(status: number): boolean {
  return CALLBACK_STATUSES.includes(status);
}

/** Per-host task status (ExecuteObjectTaskStatusEnum). */
export const HostStatus = {
  /** A host a cron's plan names that no longer exists: never submitted, fails the step. */
  INVALID: 2,
  LAST_SUCCESS: 3,
  WAITING: 5,
  RUNNING: 7,
  SUCCESS: 9,
  FAILED: 11,
  SUBMIT_FAILED: 12,
  SCRIPT_FAILED: 101,
  SCRIPT_TIMEOUT: 102,
  SCRIPT_TERMINATED: 103,
  SCRIPT_NOT_ZERO_EXIT: 104,
  AGENT_NOT_INSTALLED: 18,
  FILE_TRANSFER_FAILED: 202,
  SOURCE_FILE_NOT_EXIST: 203,
  FILE_TASK_TIMEOUT: 303,
  FILE_TRANSFER_ERROR: 329,
  AGENT_ABNORMAL: 310,
  USER_NOT_EXIST: 311,
  TASK_ERROR: 399,
  TERMINATE_SUCCESS: 403,
} as const;
export type HostStatus = (typeof HostStatus)[keyof typeof HostStatus];

export function isHostFinished(status: number): boolean {
  return status !== HostStatus.WAITING && status !== HostStatus.RUNNING;
}

export function isHostSuccess(status: number): boolean {
  return status === HostStatus.SUCCESS || status === HostStatus.LAST_SUCCESS;
}

/**
 * `error_code` in step_ip_result is the raw agent-layer code in BK-JOB (§3.5): 0 ok, 115 running,
 * 117 agent error, 126 terminated, -1 other. Jobfleet reports the same family of codes.
 */
export const AgentErrorCode = {
  OK: 0,
  RUNNING: 115,
  AGENT_ERROR: 117,
  TERMINATED: 126,
  TIMEOUT: 120,
  OTHER: -1,
} as const;

/** What a finished agent task means for its host. */
export function hostStatusOfOutcome(
  outcome: TaskOutcome,
  exitCode: number,
): { status: HostStatus; errorCode: number } {
  switch (outcome) {
    case 'exited':
      return exitCode === 0
        ? { status: HostStatus.SUCCESS, errorCode: AgentErrorCode.OK }
        : { status: HostStatus.SCRIPT_NOT_ZERO_EXIT, errorCode: AgentErrorCode.OK };
    case 'timeout':
      return { status: HostStatus.SCRIPT_TIMEOUT, errorCode: AgentErrorCode.TIMEOUT };
    case 'killed':
      return { status: HostStatus.TERMINATE_SUCCESS, errorCode: AgentErrorCode.TERMINATED };
    case 'user_missing':
      return { status: HostStatus.USER_NOT_EXIST, errorCode: AgentErrorCode.OTHER };
    case 'unsupported':
    case 'spawn_failed':
      return { status: HostStatus.TASK_ERROR, errorCode: AgentErrorCode.OTHER };
    case 'lost':
      return { status: HostStatus.AGENT_ABNORMAL, errorCode: AgentErrorCode.AGENT_ERROR };
    case 'transfer_failed':
      return { status: HostStatus.FILE_TRANSFER_ERROR, errorCode: AgentErrorCode.OTHER };
    case 'target_invalid':
      return { status: HostStatus.FILE_TRANSFER_FAILED, errorCode: AgentErrorCode.OTHER };
  }
}

/** A step whose hosts all finished: success only if every host succeeded (§4.3). */
export function stepStatusOfHosts(statuses: Iterable<number>): RunStatus {
  for (const s of statuses) if (!isHostSuccess(s)) return RunStatus.FAIL;
  return RunStatus.SUCCESS;
}

/** Hosts per status, as the events that start a step attempt report them. */
export function countByStatus(statuses: Iterable<number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

/** Step types of get_job_instance_status / get_step_instance_status (StepExecuteTypeEnum). */
export const StepType = { SCRIPT: 1, FILE: 2, CONFIRM: 3, SQL: 4 } as const;

/** Job types (TaskTypeEnum) and launch modes (TaskStartupModeEnum). */
export const JobType = { PLAN: 0, FAST_SCRIPT: 1, FAST_FILE: 2 } as const;
export const LaunchMode = { WEB: 1, API: 2, CRON: 3 } as const;

/** script_language numbers (ScriptTypeEnum) and the agent's names for them. */
export const SCRIPT_LANGUAGES = {
  1: 'shell',
  2: 'bat',
  3: 'perl',
  4: 'python',
  5: 'powershell',
  6: 'sql',
} as const;
export type ScriptLanguageCode = keyof typeof SCRIPT_LANGUAGES;

/** English names for result groups in get_step_instance_status. */
export const HOST_STATUS_DESC: Record<number, string> = {
  0: 'Unknown error',
  2: 'Invalid execute object',
  3: 'Last successful',
  5: 'Waiting',
  7: 'Running',
  9: 'Successful',
  11: 'Failed',
  12: 'Submit failed',
  18: 'Agent not installed',
  101: 'Script failed',
  102: 'Script timeout',
  103: 'Script terminated',
  104: 'Script returned non-zero exit code',
  202: 'File transfer failed',
  203: 'Source file does not exist',
  303: 'File task timeout',
  329: 'File transfer error',
  310: 'Agent abnormal',
  311: 'User does not exist',
  399: 'Task error',
  403: 'Terminated',
  404: 'Terminate failed',
};
