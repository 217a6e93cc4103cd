/** Every BK-JOB v3 endpoint Jobfleet serves. */
import type { Endpoint } from '../endpoint.js';
import { queryAgentInfo } from './query-agent-info.js';

export const ENDPOINTS: readonly Endpoint[] = [queryAgentInfo];
