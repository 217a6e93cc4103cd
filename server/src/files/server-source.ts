/**
 * Where a target downloads the files a server holds (local uploads, push_config_file contents):
 * from the server holding the target's agent, at the address the agent reached it by. Every
 * server can serve them (file-bodies.ts), so in a cluster the job's owner need not know which
 * server that is: the holder puts its own address into the instruction as it sends it.
 */
import type { ServerMessage } from '@jobfleet/protocol';

export const SERVER_SOURCE_LABEL = 'server';

/** Stands for the holder's address until the holder sends the instruction. */
export const HOLDER_BASE_URL = 'http://agent-holder.invalid';

/** The base URL agents fetch `<base>/files/<serveId>/<name>` from: the route is under /agent/v1. */
export function serverSourceUrl(holderBase: string): string {
  return `${holderBase}/agent/v1`;
}

/** The message as the server holding the agent (reached at `holderBase`) sends it. */
export function addressedByHolder(msg: ServerMessage, holderBase: string): ServerMessage {
  if (msg.type !== 'task.download') return msg;
  return {
    ...msg,
    sources: msg.sources.map((s) =>
      s.label === SERVER_SOURCE_LABEL ? { ...s, url: serverSourceUrl(holderBase) } : s,
    ),
  };
}
