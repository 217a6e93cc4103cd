/**
 * The agent status every read of the API reports (query_agent_info, get_host_list,
 * resolve_hosts): 1 only while the host's agent is connected and heartbeating, 0 otherwise. The
 * stored status alone can still say 1 for an agent whose connection dropped a moment ago; in a
 * cluster the stored status is the shared one, kept by every server's sweep (see the hub).
 */
import type { Host } from '../../store/inventory-store.js';
import type { EndpointContext } from '../endpoint.js';

export function liveAgentStatus(ctx: EndpointContext, host: Pick<Host, 'id' | 'agent_status'>): 0 | 1 {
  return ctx.services.hub.agentOnline(host) ? 1 : 0;
}
