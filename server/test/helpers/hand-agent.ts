/** An agent driven by hand over a raw WebSocket, so that a test decides every frame it sends. */
import WebSocket from 'ws';
import type { ServerProcess } from './processes.js';

/** Registers as `ip`, connects and says hello; resolves once welcomed. */
export async function handAgent(
  server: Pick<ServerProcess, 'url' | 'bootstrapToken'>,
  ip: string,
  name = 'hand',
): Promise<{ ws: WebSocket; hostId: number }> {
  const host = { ip, ipv6: '', cloudId: 0, hostname: `${name}-${ip}`, osType: 'linux' };
  const reg = await fetch(`${server.url}/agent/v1/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bootstrapToken: server.bootstrapToken, host }),
  });
  const body = (await reg.json()) as { data: { token: string; hostId: number } };
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/agent/v1/link`, {
    headers: { authorization: `Bearer ${body.data.token}` },
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const welcomed = new Promise<void>((resolve) =>
    ws.on('message', (d: Buffer) => {
      if ((JSON.parse(d.toString()) as { type: string }).type === 'welcome') resolve();
    }),
  );
  ws.send(JSON.stringify({ v: 1, type: 'hello', agentVersion: name, host, held: [] }));
  await welcomed;
  return { ws, hostId: body.data.hostId };
}
