/**
 * The comparison server for the status-query figure: answers every request with bytes
 * captured from a real Jobfleet reply. It runs on a worker thread of the bench process (its
 * own event loop, so the load generator on the main thread does not slow it down) and adds
 * nothing to the Jobfleet server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Data {
  body: Uint8Array;
  contentType: string;
}

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

export function startStaticServer(body: Buffer, contentType: string): Promise<StaticServer> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { body, contentType } satisfies Data });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (port: number) =>
      resolve({ url: `http://127.0.0.1:${port}`, close: () => worker.terminate().then(() => undefined) }),
    );
  });
}

function serve(data: Data): void {
  const body = Buffer.from(data.body);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': data.contentType, 'content-length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 72_000;
  server.listen(0, '127.0.0.1', () => parentPort?.postMessage((server.address() as AddressInfo).port));
}

if (!isMainThread) serve(workerData as Data);
