/** Every BK-JOB v3 endpoint Jobfleet serves (plus its documented extensions). */
import type { Endpoint } from '../endpoint.js';
import { fastExecuteScript } from './fast-execute-script.js';
import { getJobInstanceList } from './get-job-instance-list.js';
import { getJobInstanceStatus } from './get-job-instance-status.js';
import { getStepInstanceDetail } from './get-step-instance-detail.js';
import { getStepInstanceStatus } from './get-step-instance-status.js';
import { getJobInstanceCallbackList } from './job-callbacks.js';
import { batchGetJobInstanceIpLog, getJobInstanceIpLog } from './job-instance-logs.js';
import { queryAgentInfo } from './query-agent-info.js';

export const ENDPOINTS: readonly Endpoint[] = [
  fastExecuteScript,
  getJobInstanceStatus,
  getStepInstanceStatus,
  getStepInstanceDetail,
  getJobInstanceIpLog,
  batchGetJobInstanceIpLog,
  getJobInstanceList,
  getJobInstanceCallbackList,
  queryAgentInfo,
];
