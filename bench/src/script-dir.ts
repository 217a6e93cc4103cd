import fs from 'node:fs';

/**
 * A new script directory on /dev/shm where that is a tmpfs, for agents the bench starts: a
 * deployed agent's default is systemd's $RUNTIME_DIRECTORY, a tmpfs under /run, and this
 * machine's /run and /tmp are on its disk, where every script's directory is a journalled create
 * and remove. Every script still gets a directory of its own inside it. `undefined` where there
 * is no /dev/shm (the agent's default then applies).
 */
export function tmpfsScriptDir(): string | undefined {
  try {
    if (!fs.statSync('/dev/shm').isDirectory()) return undefined;
    return fs.mkdtempSync('/dev/shm/jobfleet-bench-scripts-');
  } catch {
    return undefined;
  }
}
