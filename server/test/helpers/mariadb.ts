/**
 * A real MariaDB server for the SQL tests, from Debian's `mariadb-server` package: its own data
 * directory, socket and free TCP port on 127.0.0.1, started per test file and stopped (data
 * removed) by `stop()`. Without the package the tests fail, saying how to install it: SQL
 * support is not tested against anything but a real server.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port.js';
import { tempDir } from './processes.js';

export interface MariaDb {
  port: number;
  /** Runs SQL as the server's root user over its socket; resolves with the tab-separated output. */
  rootQuery(sql: string): Promise<string>;
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'the SQL tests need a real MariaDB server: install it with `apt-get install -y mariadb-server mariadb-client` (.ci/run does)';

function findBinary(names: string[]): string {
  for (const name of names) {
    for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
  }
  throw new Error(`${names[0]} not found: ${INSTALL_HINT}`);
}

function run(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    // A client that exits before reading (the server not up yet, while startMariaDb waits for
    // it) makes the write fail with EPIPE; its exit status already says what went wrong.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

export async function startMariaDb(): Promise<MariaDb> {
  const daemon = findBinary(['mariadbd', 'mysqld']);
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  const client = findBinary(['mariadb', 'mysql']);
  const dir = tempDir('mariadb');
  const dataDir = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  await run(installDb, [
    '--no-defaults',
    `--datadir=${dataDir}`,
    ...asRoot,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  const port = await freePort();
  const proc: ChildProcess = spawn(
    daemon,
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${path.join(dir, 'error.log')}`,
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=16M',
      ...asRoot,
    ],
    { stdio: 'ignore' },
  );
  let exited = false;
  proc.on('exit', () => (exited = true));
  const rootQuery = (sql: string) =>
    run(client, ['--no-defaults', '-uroot', `--socket=${socket}`, '--batch', '--skip-column-names'], sql);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await rootQuery('select 1');
      break;
    } catch (err) {
      if (exited || Date.now() > deadline) {
        const log = fs.existsSync(path.join(dir, 'error.log'))
          ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8')
          : '';
        throw new Error(`MariaDB did not start: ${(err as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    port,
    rootQuery,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 20_000))]);
        if (!exited) proc.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
