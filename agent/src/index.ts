export { Agent, AGENT_VERSION } from './agent.js';
export type { AgentOptions, AgentState } from './agent.js';
export { TaskRunner } from './task-runner.js';
export { defaultStarter } from './task-launcher.js';
export type { ProcessStarter } from './task-launcher.js';
export type { TaskRunnerOptions } from './task-runner.js';
export { defaultIp, defaultStateDir, localOsType } from './identity.js';
export { StateDirInUse } from './state-dir-lock.js';
export type { TaskReports, TaskRunnerPort } from './task-runner-api.js';
