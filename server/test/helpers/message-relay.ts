/**
 * An HTTP and WebSocket relay in front of one Jobfleet server, for real agents whose messages a
 * test must see: registration and other HTTP requests pass through as they are, and every
 * message on an agent link is passed on in both directions, the agent's text messages kept (as
 * parsed JSON) in the order the server got them.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

export interface RelayedMessage {
  type: string;
  key?: string;
  [field: string]: unknown;
}

export interface MessageRelay {
  /** http://127.0.0.1:<port>: what the agent is given instead of the server's URL. */
  url: string;
  /** The agents' text messages (binary output frames are passed on, not kept). */
  readonly fromAgents: RelayedMessage[];
  close(): Promise<void>;
}

export async function startMessageRelay(target: string): Promise<MessageRelay> {
  const fromAgents: RelayedMessage[] = [];
  const links = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  const server = http.createServer((req, res) => {
    const up = http.request(
      new URL(req.url ?? '/', target),
      { method: req.method, headers: { ...req.headers, host: new URL(target).host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (agent) => {
      const url = new URL(req.url ?? '/', target);
      url.protocol = 'ws:';
      const upstream = new WebSocket(url, {
        headers: { authorization: req.headers.authorization ?? '' },
        maxPayload: 64 * 1024 * 1024,
      });
      links.add(agent).add(upstream);
      // What the agent says before the server's side is open waits for it, in order.
      const early: [WebSocket.RawData, boolean][] = [];
      agent.on('message', (data, isBinary) => {
        if (!isBinary) fromAgents.push(JSON.parse(data.toString()) as RelayedMessage);
        if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
        else early.push([data, isBinary]);
      });
      upstream.on('open', () => {
        for (const [data, isBinary] of early.splice(0)) upstream.send(data, { binary: isBinary });
      });
      // The agent's pings are its heartbeats (the relay answers them itself).
      agent.on('ping', (data) => {
        if (upstream.readyState === WebSocket.OPEN) upstream.ping(data);
      });
      upstream.on('message', (data, isBinary) => {
        if (agent.readyState === WebSocket.OPEN) agent.send(data, { binary: isBinary });
      });
      const end = () => {
        links.delete(agent);
        links.delete(upstream);
        agent.terminate();
        upstream.terminate();
      };
      agent.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end).on('unexpected-response', end);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    fromAgents,
    async close() {
      for (const ws of links) ws.terminate();
      links.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
    },
  };
}
