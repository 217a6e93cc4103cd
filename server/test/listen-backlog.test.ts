/**
 * After a restart a whole fleet connects within seconds, faster than the server accepts. The
 * kernel holds those connections in the listening socket's backlog; past it, it drops them and
 * each dropped agent waits out TCP's retries (1, 3, 7 s). A server paused while 800 agents
 * connect (more than node's default backlog of 511) must hold every one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { startServer, stopAll } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

const CONNECTIONS = 800;
const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
let server: ServerProcess | undefined;

after(async () => {
  server?.proc.kill('SIGCONT');
  await stopAll();
});

describe('the server listening socket', () => {
  it(
    `holds ${CONNECTIONS} connections made while the server is paused`,
    {
      skip:
        somaxconn <= CONNECTIONS && `net.core.somaxconn is ${somaxconn}: the kernel caps any backlog there`,
    },
    async () => {
      const s = (server = await startServer());
      s.proc.kill('SIGSTOP');
      const sockets: net.Socket[] = [];
      try {
        // The kernel completes a handshake into the backlog without the process; one it drops
        // is retried after 1 s and again after 3 s, and the backlog stays full meanwhile.
        const connected = await Promise.all(
          Array.from({ length: CONNECTIONS }, () => {
            const socket = net.connect(s.port, '127.0.0.1');
            sockets.push(socket);
            return new Promise<boolean>((resolve) => {
              const t = setTimeout(() => resolve(false), 5_000);
              socket.once('connect', () => {
                clearTimeout(t);
                resolve(true);
              });
              socket.once('error', () => resolve(false));
            });
          }),
        );
        assert.equal(connected.filter(Boolean).length, CONNECTIONS);
      } finally {
        for (const socket of sockets) socket.destroy();
        s.proc.kill('SIGCONT');
      }
      const health = await fetch(`${s.url}/healthz`);
      assert.equal(health.status, 200);
    },
  );
});
