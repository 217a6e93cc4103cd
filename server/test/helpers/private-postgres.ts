/**
 * A PostgreSQL server of a test's own (Debian's binaries, a temporary data directory, a free
 * port on 127.0.0.1), for tests that restart or stop PostgreSQL without disturbing anyone else's
 * database. Needs root (the server runs as the postgres OS user) or to be the postgres user.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface PrivatePostgres {
  /** postgres://jobfleet@127.0.0.1:PORT/postgres */
  url: string;
  restart(mode?: 'fast' | 'immediate'): void;
  stop(): void;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && path.join(root, versions[0], 'bin');
}

export function privatePostgresAvailable(): boolean {
  return binDir() !== undefined && (process.getuid?.() === 0 || os.userInfo().username === 'postgres');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  if (!bin) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql');
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-test-pg-'));
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  const run = (cmd: string, args: string[]) =>
    asRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { stdio: 'pipe' })
      : execFileSync(path.join(bin, cmd), args, { stdio: 'pipe' });
  const data = path.join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'jobfleet', '--no-sync']);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
  const log = path.join(dir, 'log');
  const ctl = (...args: string[]) => run('pg_ctl', ['-D', data, '-l', log, '-o', opts, '-w', ...args]);
  ctl('start');
  return {
    url: `postgres://jobfleet@127.0.0.1:${port}/postgres`,
    restart: (mode = 'immediate') => ctl('-m', mode, 'restart'),
    stop: () => {
      try {
        ctl('-m', 'immediate', 'stop');
      } catch {
        // already stopped
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
