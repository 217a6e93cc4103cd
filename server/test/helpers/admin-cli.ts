/** Runs `jobfleet admin ...` against a test server and returns the `data` it prints. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI } from './processes.js';

const run = promisify(execFile);

export async function adminCli<T = Record<string, unknown>>(
  server: { url: string; adminToken: string },
  ...args: string[]
): Promise<T> {
  const { stdout } = await run(process.execPath, [
    CLI,
    'admin',
    '--server',
    server.url,
    '--admin-token',
    server.adminToken,
    ...args,
  ]);
  return JSON.parse(stdout) as T;
}
