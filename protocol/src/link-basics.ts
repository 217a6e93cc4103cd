/**
 * The parts of the agent protocol that need no schema library: the version, task keys and
 * the HTTP paths. The agent loads only these and `agent-checks.ts`; zod (agent-link.ts) is
 * for the server, which validates everything an agent sends.
 */

export const PROTOCOL_VERSION = 1;

/** `<stepInstanceId>:<executeCount>:<hostId>`. */
export const TASK_KEY_PATTERN = /^\d+:\d+:\d+$/;

export function taskKey(stepInstanceId: number, executeCount: number, hostId: number): string {
  return `${stepInstanceId}:${executeCount}:${hostId}`;
}

export function parseTaskKey(key: string): { stepInstanceId: number; executeCount: number; hostId: number } {
  const [s, e, h] = key.split(':').map(Number);
  return { stepInstanceId: s ?? 0, executeCount: e ?? 0, hostId: h ?? 0 };
}

/** HTTP paths the agent uses on a server. */
export const AGENT_REGISTER_PATH = '/agent/v1/register';
export const AGENT_LINK_PATH = '/agent/v1/link';
