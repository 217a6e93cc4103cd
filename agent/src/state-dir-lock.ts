/**
 * One agent per state directory. Two agents sharing one (a copied unit file, a second agent
 * started by hand with the same --ip) would replay, resend and delete each other's spooled
 * results and register as one host. The directory holds `agent.lock`, naming the process that
 * uses it by pid and start time (see process-identity.ts): a lock whose process is gone, or
 * whose pid now belongs to another process, is stale and taken over, so a kill -9 never leaves
 * the directory locked. The same process may claim it again (a runner reopened in one process;
 * an agent that is pid 1 of its container at every start).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import { identifyProcess } from './process-identity.js';

export class StateDirInUse extends Error {}

const LOCK_FILE = 'agent.lock';

const Holder = v.object({ pid: v.pipe(v.number(), v.safeInteger()), started: v.string() });

function holderOf(file: string): v.InferOutput<typeof Holder> | undefined {
  try {
    const parsed = v.safeParse(Holder, JSON.parse(fs.readFileSync(file, 'utf8')));
    return parsed.success ? parsed.output : undefined;
  } catch {
    return undefined; // gone, or torn by a crash while it was written: stale
  }
}

/** Claims `stateDir` for this process; the returned function gives it up. */
export function claimStateDir(stateDir: string): () => void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, LOCK_FILE);
  const me = identifyProcess(process.pid);
  const body = JSON.stringify({ pid: process.pid, started: me?.started ?? '' });
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, body, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const holder = holderOf(file);
    if (holder && holder.pid !== process.pid && identifyProcess(holder.pid)?.started === holder.started)
      throw new StateDirInUse(
        `another agent (pid ${holder.pid}) uses the state directory ${path.resolve(stateDir)}: give each agent its own --state-dir`,
      );
    fs.rmSync(file, { force: true });
  }
  return () => {
    if (holderOf(file)?.pid === process.pid) fs.rmSync(file, { force: true });
  };
}
