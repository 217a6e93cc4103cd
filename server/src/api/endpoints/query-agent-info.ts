/** query_agent_info (behaviour notes §3.23): agent status of hosts in the scope; only under /api/v3/system/. */
import { z } from 'zod';
import { defineEndpoint } from '../endpoint.js';
import { zLong } from '../input-types.js';
import { liveAgentStatus } from './live-agent-status.js';

export const queryAgentInfo = defineEndpoint({
  name: 'query_agent_info',
  kind: 'write',
  permission: 'read',
  // POST only, as BK-JOB serves it, but it changes nothing: no audit entry.
  audited: false,
  systemOnly: true,
  input: z.object({ host_id_list: z.array(zLong).max(5000, 'holds more than 5000 hosts') }),
  async handle(ctx, input) {
    const hosts = await ctx.services.store.inventory.getHostsByIds([...new Set(input.host_id_list)]);
    const visible = hosts.filter(
      (h) => h.agent_id !== null && h.biz_id !== null && ctx.scope.bizIds.includes(h.biz_id),
    );
    return {
      agent_info_list: visible.map((h) => ({
        bk_host_id: h.id,
        status: liveAgentStatus(ctx, h),
        version: h.agent_version,
      })),
    };
  },
});
