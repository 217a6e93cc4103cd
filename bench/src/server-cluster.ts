/**
 * Several Jobfleet servers in cluster mode on one PostgreSQL database, all on this machine
 * (docs/cluster.md): what P9 compares with one server, and what holds a scale fleet larger
 * than one process's open-file limit allows.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { startServer } from './processes.js';
import type { Secrets, ServerHandle } from './processes.js';

export interface ServerCluster {
  servers: ServerHandle[];
  stop(): Promise<void>;
}

/**
 * `count` servers with `--cluster` on `databaseUrl`, sharing secrets and the server key. The
 * first migrates the database; the others then join it together. `args` go to every server.
 */
export async function startCluster(opts: {
  count: number;
  secrets: Secrets;
  databaseUrl: string;
  tmpRoot: string;
  args?: string[];
}): Promise<ServerCluster> {
  const serverKey = crypto.randomBytes(32).toString('base64');
  const args = ['--cluster', 'true', '--server-key', serverKey, ...(opts.args ?? [])];
  const start = () =>
    startServer({ secrets: opts.secrets, databaseUrl: opts.databaseUrl, tmpRoot: opts.tmpRoot, args });
  const servers: ServerHandle[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    for (const s of servers) fs.rmSync(s.dataDir, { recursive: true, force: true });
  };
  try {
    servers.push(await start());
    const rest = await Promise.allSettled(Array.from({ length: opts.count - 1 }, start));
    for (const r of rest) if (r.status === 'fulfilled') servers.push(r.value);
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (err) {
    await stop();
    throw err;
  }
  return { servers, stop };
}
