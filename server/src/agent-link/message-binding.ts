/**
 * Binds every agent message to the host that sent it. The bootstrap token is shared by a whole
 * fleet, so any registered agent could name another host's task key or offer id; a message is
 * handled only when the host it names is the connection's own host. Whether that host was given
 * the task is then the engine's check (it looks the task up under the sender's host id).
 */
import { parseTaskKey } from '@jobfleet/protocol';
import type { AgentMessage } from '@jobfleet/protocol';
import { parseServeId } from '../engine/file-tokens.js';

/** The host a message speaks for, or undefined for messages about the connection itself. */
function hostNamedBy(msg: AgentMessage): number | undefined {
  switch (msg.type) {
    case 'hello':
    case 'heartbeat':
      return undefined;
    case 'task.started':
    case 'task.output':
    case 'task.finished':
    case 'task.file':
    case 'task.report':
      return parseTaskKey(msg.key).hostId;
    case 'file.served': {
      const id = parseServeId(msg.serveId);
      // Offers of the server itself are never answered by an agent.
      return id && id.kind !== 'server' ? id.hostId : -1;
    }
  }
}

export function isBoundToSender(senderHostId: number, msg: AgentMessage): boolean {
  const named = hostNamedBy(msg);
  return named === undefined || named === senderHostId;
}
