/**
 * get_latest_service_version: the version of the job service, here Jobfleet's. BK-JOB serves it
 * as ESB and /api/v3/system/ only; Jobfleet answers on every URL form, which no client minds.
 */
import { z } from 'zod';
import { JOBFLEET_VERSION } from '../../version.js';
import { defineEndpoint } from '../endpoint.js';

export const getLatestServiceVersion = defineEndpoint({
  name: 'get_latest_service_version',
  kind: 'read',
  permission: 'read',
  scoped: false,
  input: z.object({}),
  async handle() {
    return { version: JOBFLEET_VERSION };
  },
});
