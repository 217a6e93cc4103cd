/** Every BK-JOB v3 endpoint Jobfleet serves (plus its documented extensions). */
import type { Endpoint } from '../endpoint.js';
import { checkScript } from './check-script.js';
import { getDangerousRuleHitList } from './dangerous-rule-hits.js';
import {
  createDangerousRule,
  deleteDangerousRule,
  disableDangerousRule,
  enableDangerousRule,
  getDangerousRuleList,
  updateDangerousRule,
} from './dangerous-rules.js';
import { fastExecuteScript } from './fast-execute-script.js';
import { fastExecuteSql } from './fast-execute-sql.js';
import { fastTransferFile } from './fast-transfer-file.js';
import { generateLocalFileUploadUrl } from './generate-local-file-upload-url.js';
import { pushConfigFile } from './push-config-file.js';
import { getJobInstanceList } from './get-job-instance-list.js';
import { getJobInstanceStatus } from './get-job-instance-status.js';
import { getStepInstanceDetail } from './get-step-instance-detail.js';
import { getStepInstanceStatus } from './get-step-instance-status.js';
import { getJobInstanceCallbackList } from './job-callbacks.js';
import { batchGetJobInstanceIpLog, getJobInstanceIpLog } from './job-instance-logs.js';
import { operateJobInstance, operateStepInstance } from './operate-instance.js';
import { queryAgentInfo } from './query-agent-info.js';
import { getLatestServiceVersion } from './get-latest-service-version.js';
import { SCRIPT_LIBRARY_ENDPOINTS } from './script-library.js';
import { ACCOUNT_ENDPOINTS } from './accounts.js';
import { getJobEventStream, getScopeEventStream } from './event-streams.js';
import { getOutputDiff, getStepOutputGroups } from './output-groups.js';
import { executeJobPlan } from './execute-job-plan.js';
import { getJobInstanceGlobalVarValue } from './get-job-instance-global-var-value.js';
import {
  createJobPlan,
  deleteJobPlan,
  getJobPlanDetail,
  getJobPlanList,
  syncJobPlan,
  updateJobPlan,
} from './job-plans.js';
import {
  createJobTemplate,
  deleteJobTemplate,
  getJobTemplateDetail,
  getJobTemplateList,
  updateJobTemplate,
} from './job-templates.js';

import { getJobPlanSyncPreview } from './job-plan-sync-preview.js';
import { getHostList } from './get-host-list.js';
import { deleteCron, getCronDetail, getCronList, saveCron, updateCronStatus } from './crons.js';
import { getScopeAgents, getStepHostTable, resolveHosts } from './console-tables.js';
import { getJobInstanceOperationList } from './job-operations.js';
import { getJobInstanceVariableList } from './job-launch-variables.js';
export const ENDPOINTS: readonly Endpoint[] = [
  fastExecuteScript,
  fastExecuteSql,
  fastTransferFile,
  pushConfigFile,
  generateLocalFileUploadUrl,
  getJobInstanceStatus,
  getStepInstanceStatus,
  getStepInstanceDetail,
  getJobInstanceIpLog,
  batchGetJobInstanceIpLog,
  getJobInstanceList,
  getJobInstanceCallbackList,
  operateJobInstance,
  operateStepInstance,
  queryAgentInfo,
  createDangerousRule,
  updateDangerousRule,
  deleteDangerousRule,
  enableDangerousRule,
  disableDangerousRule,
  getDangerousRuleList,
  checkScript,
  getDangerousRuleHitList,
  getLatestServiceVersion,
  ...SCRIPT_LIBRARY_ENDPOINTS,
  ...ACCOUNT_ENDPOINTS,
  getJobEventStream,
  getScopeEventStream,
  getStepOutputGroups,
  getOutputDiff,
  executeJobPlan,
  getJobPlanList,
  getJobPlanDetail,
  getJobTemplateList,
  getJobInstanceGlobalVarValue,
  createJobTemplate,
  updateJobTemplate,
  deleteJobTemplate,
  getJobTemplateDetail,
  createJobPlan,
  updateJobPlan,
  deleteJobPlan,
  syncJobPlan,
  saveCron,
  updateCronStatus,
  getCronList,
  getCronDetail,
  deleteCron,
  getJobPlanSyncPreview,
  getHostList,
  getStepHostTable,
  resolveHosts,
  getScopeAgents,
  getJobInstanceOperationList,
  getJobInstanceVariableList,
];
