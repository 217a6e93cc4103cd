/**
 * A TCP relay in front of one server, through which one agent reaches it, for network faults
 * that kill and SIGSTOP cannot make: the host's link dropped (`cut`), and a link that stops
 * carrying bytes for a while without closing (`stall`).
 */
import net from 'node:net';

export interface FaultProxy {
  /** http://127.0.0.1:<port>: what the agent is given instead of the server's URL. */
  url: string;
  /**
   * Resets every link through the relay and refuses new ones for `refuseMs`: a blip, or a
   * short partition of the host. Returns how many links it reset.
   */
  cut(refuseMs?: number): number;
  /** Stops forwarding on every link for `ms`; new links wait too. Nothing is lost, only late. */
  stall(ms: number): Promise<void>;
  close(): Promise<void>;
}

interface Link {
  agent: net.Socket;
  server: net.Socket;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const { hostname, port } = new URL(target);
  const links = new Set<Link>();
  let refusedUntil = 0;
  let stalledUntil = 0;

  const relay = (agent: net.Socket) => {
    if (refusedUntil > Date.now()) {
      agent.resetAndDestroy();
      return;
    }
    const server = net.connect({ host: hostname, port: Number(port) });
    const link = { agent, server };
    links.add(link);
    const drop = () => {
      links.delete(link);
      agent.destroy();
      server.destroy();
    };
    agent.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
    agent.pipe(server);
    server.pipe(agent);
  };

  const listener = net.createServer({ pauseOnConnect: true }, (agent) => {
    agent.on('error', () => agent.destroy());
    const wait = stalledUntil - Date.now();
    if (wait > 0) setTimeout(() => agent.destroyed || relay(agent), wait);
    else relay(agent);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });

  return {
    url: `http://127.0.0.1:${(listener.address() as net.AddressInfo).port}`,
    cut(refuseMs = 0) {
      refusedUntil = Math.max(refusedUntil, Date.now() + refuseMs);
      const n = links.size;
      for (const link of links) {
        link.agent.resetAndDestroy();
        link.server.resetAndDestroy();
      }
      links.clear();
      return n;
    },
    async stall(ms) {
      stalledUntil = Math.max(stalledUntil, Date.now() + ms);
      const held = [...links];
      // Unpiped and paused, a socket reads nothing: the kernel's buffers fill and the sender
      // blocks, as on a link that has stopped moving.
      for (const l of held) {
        l.agent.unpipe(l.server).pause();
        l.server.unpipe(l.agent).pause();
      }
      await new Promise((r) => setTimeout(r, ms));
      for (const l of held) {
        if (!links.has(l)) continue;
        l.agent.pipe(l.server);
        l.server.pipe(l.agent);
      }
    },
    close: async () => {
      for (const l of links) {
        l.agent.destroy();
        l.server.destroy();
      }
      links.clear();
      await new Promise((r) => listener.close(r));
    },
  };
}
