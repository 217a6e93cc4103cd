/**
 * A PostgreSQL server of one's own, from Debian's `postgresql` package: its own data directory,
 * socket directory and free port on 127.0.0.1, so that it can be restarted (or stopped
 * abruptly) without disturbing the shared test database. Run as the `postgres` OS user when
 * the caller is root (PostgreSQL refuses to run as root).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port.js';
import { tempDir } from './processes.js';

export interface PrivatePostgres {
  /** postgres://jobfleet:jobfleet@127.0.0.1:<port>/postgres */
  url: string;
  /** `immediate`: as after a crash (no checkpoint, clients cut); `fast`: a clean restart. */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)');
  return path.join(root, versions[0], 'bin');
}

function run(file: string, args: string[], asUser: string | undefined): Promise<string> {
  const [cmd, argv] = asUser ? ['runuser', ['-u', asUser, '--', file, ...args]] : [file, args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const dir = tempDir('postgres');
  const data = path.join(dir, 'data');
  const asUser = process.getuid?.() === 0 ? 'postgres' : undefined;
  if (asUser) {
    const uid = Number((await run('id', ['-u', asUser], undefined)).trim());
    const gid = Number((await run('id', ['-g', asUser], undefined)).trim());
    fs.chownSync(dir, uid, gid);
  }
  const pwFile = path.join(dir, 'pw');
  fs.writeFileSync(pwFile, 'jobfleet\n', { mode: 0o644 });
  await run(
    path.join(bin, 'initdb'),
    ['-D', data, '-U', 'jobfleet', '--pwfile', pwFile, '--auth=md5', '--no-sync', '-E', 'UTF8'],
    asUser,
  );
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c max_connections=200',
    '-c fsync=off',
    // A paused server must not hold row locks for long (docs/cluster.md).
    '-c idle_in_transaction_session_timeout=30s',
  ].join(' ');
  const pgCtl = (args: string[]) =>
    run(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'log'), ...args], asUser);
  const start = () => pgCtl(['-o', options, '-w', 'start']);
  await start();
  return {
    url: `postgres://jobfleet:jobfleet@127.0.0.1:${port}/postgres`,
    async restart(mode = 'immediate') {
      await pgCtl(['-m', mode, '-w', 'stop']);
      await start();
    },
    async stop() {
      await pgCtl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
