/**
 * A TCP relay in front of one server (a Jobfleet server, or PostgreSQL), through which one
 * client reaches it (an agent, or a Jobfleet server), for network faults that kill and SIGSTOP
 * cannot make: the client's links dropped (`cut`), and links that stop carrying bytes for a
 * while without closing (`stall`).
 */
import net from 'node:net';

export interface FaultProxy {
  /** http://127.0.0.1:<port>: what the client is given instead of the server's URL. */
  url: string;
  port: number;
  /**
   * Resets every link through the relay and refuses new ones for `refuseMs`: a blip, or a
   * short partition of the client. Returns how many links it reset.
   */
  cut(refuseMs?: number): number;
  /** Ends a refusal `cut` started (one of `Infinity` ms: a partition the test ends when it likes). */
  heal(): void;
  /** Stops forwarding on every link for `ms`; new links wait too. Nothing is lost, only late. */
  stall(ms: number): Promise<void>;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  server: net.Socket;
}

/** `target`: the server's URL (its host and port are what count). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const { hostname, port } = new URL(target);
  const links = new Set<Link>();
  let refusedUntil = 0;
  let stalledUntil = 0;

  const relay = (client: net.Socket) => {
    if (refusedUntil > Date.now()) {
      client.resetAndDestroy();
      return;
    }
    const server = net.connect({ host: hostname, port: Number(port) });
    const link = { client, server };
    links.add(link);
    const drop = () => {
      links.delete(link);
      client.destroy();
      server.destroy();
    };
    client.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
    client.pipe(server);
    server.pipe(client);
  };

  const listener = net.createServer({ pauseOnConnect: true }, (client) => {
    client.on('error', () => client.destroy());
    const wait = stalledUntil - Date.now();
    if (wait > 0) setTimeout(() => client.destroyed || relay(client), wait);
    else relay(client);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });

  const own = (listener.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${own}`,
    port: own,
    cut(refuseMs = 0) {
      refusedUntil = Math.max(refusedUntil, Date.now() + refuseMs);
      const n = links.size;
      for (const link of links) {
        link.client.resetAndDestroy();
        link.server.resetAndDestroy();
      }
      links.clear();
      return n;
    },
    heal() {
      refusedUntil = 0;
    },
    async stall(ms) {
      stalledUntil = Math.max(stalledUntil, Date.now() + ms);
      const held = [...links];
      // Unpiped and paused, a socket reads nothing: the kernel's buffers fill and the sender
      // blocks, as on a link that has stopped moving.
      for (const l of held) {
        l.client.unpipe(l.server).pause();
        l.server.unpipe(l.client).pause();
      }
      await new Promise((r) => setTimeout(r, ms));
      for (const l of held) {
        if (!links.has(l)) continue;
        l.client.pipe(l.server);
        l.server.pipe(l.client);
      }
    },
    close: async () => {
      for (const l of links) {
        l.client.destroy();
        l.server.destroy();
      }
      links.clear();
      await new Promise((r) => listener.close(r));
    },
  };
}
