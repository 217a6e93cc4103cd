/**
 * What the same work costs without Jobfleet, measured on this machine in the same run:
 * the floor (plain `sh` processes started by `xargs -P`), the peers (pdsh's exec module,
 * ansible ad-hoc over the local connection) and `dd` for writing bytes to disk.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Parallelism of the floor and of pdsh: two per core keeps every core busy while others wait on exec. */
export const FANOUT = os.cpus().length * 2;

export interface Timed {
  ms: number;
}

/** Runs `sh -c script` and resolves with its wall time; rejects on a non-zero exit. */
export function timeShell(
  script: string,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const proc = spawn('sh', ['-c', script], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: opts.env ?? process.env,
    });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - start;
      if (code === 0) resolve({ ms });
      else reject(new Error(`\`${script.slice(0, 120)}\` exited ${code ?? signal}: ${err.trim()}`));
    });
  });
}

/** N `sh -c 'echo i'` processes, FANOUT at a time: the least a fan-out of N echoes can cost here. */
export function floor(hosts: number): Promise<Timed> {
  return timeShell(`seq 1 ${hosts} | xargs -P ${FANOUT} -I{} sh -c 'echo {}' > /dev/null`);
}

export function installed(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** Installs pdsh and ansible-core from the distribution (only with --install-peers). */
export function installPeers(log: (line: string) => void): void {
  if (installed('pdsh') && installed('ansible')) return;
  log('installing pdsh and ansible-core with apt-get…');
  const r = spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pdsh ansible-core'],
    { stdio: 'ignore', timeout: 600_000 },
  );
  if (r.status !== 0)
    log(`peer install failed (exit ${r.status ?? r.signal}); peers will be reported as not installed`);
}

/** pdsh's exec module: one `sh -c 'echo <host>'` per target, FANOUT at a time. */
export function pdsh(hosts: number): Promise<Timed> {
  return timeShell(`pdsh -R exec -f ${FANOUT} -w 'h[1-${hosts}]' sh -c 'echo %h' > /dev/null`);
}

/**
 * ansible ad-hoc, every target on the local connection, with the raw module: the cheapest
 * ad-hoc path (no Python module shipped per host), so the peer is shown at its fastest.
 */
export function ansible(hosts: number, workDir: string): Promise<Timed> {
  const inventory = path.join(workDir, `ansible-${hosts}.ini`);
  const lines = ['[all]'];
  for (let i = 1; i <= hosts; i++)
    lines.push(`h${i} ansible_connection=local ansible_python_interpreter=/usr/bin/python3`);
  fs.writeFileSync(inventory, lines.join('\n') + '\n');
  return timeShell(`ansible all -i ${inventory} -f ${FANOUT} -m raw -a 'echo hi' > /dev/null`, {
    env: {
      ...process.env,
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_LOCAL_TEMP: path.join(workDir, 'ansible-tmp'),
    },
  });
}

/** The shell pipeline that prints exactly `bytes` bytes of text, used by the big-output figure and by dd. */
export function outputScript(bytes: number): string {
  return `yes 'jobfleet bench output line 0123456789 abcdefghijklmnopqrstuvwxyz' | head -c ${bytes}`;
}

/** The same bytes written to a file on the same disk by dd, flushed to it before dd exits. */
export async function dd(bytes: number, workDir: string): Promise<Timed> {
  const file = path.join(workDir, 'dd-output');
  try {
    return await timeShell(
      `${outputScript(bytes)} | dd of=${file} bs=1M iflag=fullblock conv=fdatasync status=none`,
    );
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export function versionOf(command: string): string {
  const r = spawnSync('sh', ['-c', `${command} 2>&1 | head -1`], { encoding: 'utf8' });
  return r.stdout.trim();
}
