/**
 * An agent's ping is its heartbeat. The server answers it with a pong only when it sent the
 * agent nothing for a heartbeat interval: a message the agent just got proves the server alive
 * already. Driven by a hand-made agent, so the test
 * sees every frame.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { stopAll, startServer, TEST_SECRETS } from './helpers/processes.js';
import type { ServerProcess } from './helpers/processes.js';

after(async () => {
  await stopAll();
});

const HOST = { ip: '127.0.0.9', ipv6: '', cloudId: 0, hostname: 'hand', osType: 'linux' };

/** Registers, connects and says hello; resolves once welcomed. */
async function handAgent(server: ServerProcess): Promise<WebSocket> {
  const reg = await fetch(`${server.url}/agent/v1/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bootstrapToken: TEST_SECRETS.bootstrapToken, host: HOST }),
  });
  const { data } = (await reg.json()) as { data: { token: string } };
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/agent/v1/link`, {
    headers: { authorization: `Bearer ${data.token}` },
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const welcomed = new Promise<void>((resolve) =>
    ws.on('message', (d: Buffer) => {
      if ((JSON.parse(d.toString()) as { type: string }).type === 'welcome') resolve();
    }),
  );
  ws.send(JSON.stringify({ v: 1, type: 'hello', agentVersion: 'hand', host: HOST, held: [] }));
  await welcomed;
  return ws;
}

/** Pings once; true if a pong came within `ms`. */
function pingAnswered(ws: WebSocket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.off('pong', onPong);
      resolve(false);
    }, ms);
    const onPong = () => {
      clearTimeout(timer);
      resolve(true);
    };
    ws.once('pong', onPong);
    ws.ping();
  });
}

describe('pongs to agent pings', () => {
  test('a ping right after a message from the server is not answered, and the connection stays', async () => {
    // A heartbeat interval far longer than the test: the welcome is "just sent" throughout.
    const server = await startServer({
      env: { JOBFLEET_HEARTBEAT_INTERVAL_MS: '60000', JOBFLEET_HEARTBEAT_TIMEOUT_MS: '600000' },
    });
    const ws = await handAgent(server);
    assert.equal(await pingAnswered(ws, 1500), false);
    assert.equal(await pingAnswered(ws, 1500), false);
    assert.equal(ws.readyState, WebSocket.OPEN, 'the server keeps the connection');
    ws.close();
  });

  test('a ping after a heartbeat interval without messages is answered', async () => {
    const server = await startServer(); // 300 ms interval
    const ws = await handAgent(server);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await pingAnswered(ws, 15_000), true);
    ws.close();
  });
});
