/**
 * get_host_list (Jobfleet extension): the hosts of the scope with their agents, for the
 * console's fleet table and for scripts that need the inventory without the admin API. Agent
 * status is live as query_agent_info reports it (1 only while the agent is connected here and
 * heartbeating). Filters: `keyword` (a substring of the IP, IPv6 or host name, any case),
 * `agent_status` (0 or 1), `os_type`. A page holds at most 10,000 hosts, so a fleet table can
 * load a large business in a few calls; `agent_status_count` counts every host that matched
 * the keyword and OS, whatever the status filter and page.
 */
import { z } from 'zod';
import { hostView } from '../../admin/admin-routes.js';
import { defineEndpoint } from '../endpoint.js';
import { zInt } from '../input-types.js';
import { liveAgentStatus } from './live-agent-status.js';

const MAX_LENGTH = 10_000;

export const getHostList = defineEndpoint({
  name: 'get_host_list',
  kind: 'read',
  permission: 'read',
  input: z.object({
    keyword: z.string().max(256).nullish(),
    agent_status: zInt.pipe(z.union([z.literal(0), z.literal(1)])).nullish(),
    os_type: z.enum(['linux', 'windows']).nullish(),
    start: zInt.pipe(z.number().min(0)).optional(),
    length: zInt.pipe(z.number().min(1)).optional(),
  }),
  async handle(ctx, input) {
    const inv = ctx.services.store.inventory;
    const filters = { keyword: input.keyword?.trim(), osType: input.os_type ?? undefined };
    const found = (await Promise.all(ctx.scope.bizIds.map((bizId) => inv.findHostStatuses(bizId, filters))))
      .flat()
      .map((h) => ({ id: h.id, agent_status: liveAgentStatus(ctx, h) }));
    if (ctx.scope.bizIds.length > 1) found.sort((a, b) => a.id - b.id);
    const ok = found.filter((h) => h.agent_status === 1).length;
    const matched =
      input.agent_status === undefined || input.agent_status === null
        ? found
        : found.filter((h) => h.agent_status === input.agent_status);
    const start = input.start ?? 0;
    const length = Math.min(input.length ?? 1000, MAX_LENGTH);
    const page = matched.slice(start, start + length);
    // The page's rows are read after the statuses: a host removed or moved out of the scope in
    // between is left out, and each host shows the live status it was counted with.
    const inScope = new Set(ctx.scope.bizIds);
    const rows = new Map(
      (await inv.getHostsByIds(page.map((h) => h.id)))
        .filter((h) => h.biz_id !== null && inScope.has(h.biz_id))
        .map((h) => [h.id, h]),
    );
    return {
      start,
      length,
      total: matched.length,
      agent_status_count: { normal: ok, abnormal: found.length - ok },
      data: page.flatMap((h) => {
        const row = rows.get(h.id);
        return row ? [{ ...hostView(row), agent_status: h.agent_status }] : [];
      }),
    };
  },
});
