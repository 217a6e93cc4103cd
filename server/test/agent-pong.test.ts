/**
 * An agent's ping is its heartbeat. The server answers it with a pong only when it sent the
 * agent nothing for a heartbeat interval: a message the agent just got proves the server alive
 * already. Driven by a hand-made agent, so the test
 * sees every frame.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { handAgent } from './helpers/hand-agent.js';
import { stopAll, startServer } from './helpers/processes.js';

after(async () => {
  await stopAll();
});

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
    const { ws } = await handAgent(server, '127.0.0.9');
    assert.equal(await pingAnswered(ws, 1500), false);
    assert.equal(await pingAnswered(ws, 1500), false);
    assert.equal(ws.readyState, WebSocket.OPEN, 'the server keeps the connection');
    ws.close();
  });

  test('a ping after a heartbeat interval without messages is answered', async () => {
    const server = await startServer(); // 300 ms interval
    const { ws } = await handAgent(server, '127.0.0.9');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await pingAnswered(ws, 15_000), true);
    ws.close();
  });
});
