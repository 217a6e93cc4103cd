/**
 * Operating system accounts as the agent sees them: who it runs as, who a task asks for,
 * and whether that account may read or write a file by its mode bits.
 *
 * A task names an account; the agent can act as that account only when it is that account
 * already or runs as root. Lookups go through NSS (getent, id) so that directory-service
 * users count, with /etc/passwd as the fallback where those tools are missing.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface OsUser {
  uid: number;
  gid: number;
  home: string;
  name: string;
}

/** Portable user names (useradd's rule); anything else cannot exist and must not reach getent as an option. */
const USER_NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/;

function parsePasswdLine(line: string): OsUser | undefined {
  const [name, , uid, gid, , home] = line.trim().split(':');
  if (!name || !uid || !gid || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home || '/' };
}

function lookupUser(name: string): Promise<OsUser | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['passwd', name], { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => {
      // getent takes a number as a uid: an account named "0" must not resolve to root.
      if (!err) {
        const user = parsePasswdLine(stdout);
        return resolve(user?.name === name ? user : undefined);
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return resolve(undefined);
      fs.readFile('/etc/passwd', 'utf8', (readErr, text) => {
        if (readErr) return resolve(undefined);
        const line = text.split('\n').find((l) => l.startsWith(`${name}:`));
        resolve(line ? parsePasswdLine(line) : undefined);
      });
    });
  });
}

/**
 * Accounts found, by name, for USER_TTL_MS from their lookup. A root agent whose scripts run as
 * another account otherwise started `getent` (a process of its own) before every task, and a burst
 * of tasks for one account one each. A change to an account (its uid, its home) is seen within the
 * TTL (nscd, where a host runs it, keeps such entries ten times as long). Groups are not kept
 * (groupsOf): they decide file access, where a removal must count at once. A name not found is
 * asked again every time: it may be created between two jobs, and a missing account is an error,
 * not the common path. Names come from the server; the map is emptied should it ever hold
 * MAX_USERS of them.
 */
const USER_TTL_MS = 60_000;
const MAX_USERS = 1000;
const users = new Map<string, { user: Promise<OsUser | undefined>; until: number }>();

function cachedUser(name: string): Promise<OsUser | undefined> {
  const now = Date.now();
  const hit = users.get(name);
  if (hit && hit.until > now) return hit.user;
  if (users.size >= MAX_USERS) users.clear();
  const user = lookupUser(name);
  users.set(name, { user, until: now + USER_TTL_MS });
  void user.then((found) => {
    if (!found && users.get(name)?.user === user) users.delete(name);
  });
  return user;
}

let me: { uid: number; name: string } | undefined;

/** Who the agent runs as; looked up once (a passwd lookup per task otherwise). */
export function currentUser(): { uid: number; name: string } {
  if (me) return me;
  const uid = process.getuid?.() ?? -1;
  try {
    me = { uid, name: os.userInfo().username };
  } catch {
    me = { uid, name: '' }; // a uid without a passwd entry (some containers)
  }
  return me;
}

/**
 * Decides who a task acts as: `user` undefined means the agent's own account; another one
 * only when the agent is root. `error` says why the account cannot be used.
 */
export async function resolveUser(wanted: string): Promise<{ user?: OsUser; error?: string }> {
  const me = currentUser();
  if (wanted === '' || wanted === me.name) return {};
  const user = USER_NAME.test(wanted) ? await cachedUser(wanted) : undefined;
  if (!user) return { error: `user ${wanted} does not exist on this host` };
  if (user.uid === me.uid) return {};
  if (me.uid !== 0)
    return {
      error: `agent runs as ${me.name || `uid ${me.uid}`} and cannot act as ${wanted} (run the agent as root to switch users)`,
    };
  return { user };
}

/** Every group `user` belongs to (primary and supplementary). */
export function groupsOf(user: OsUser): Promise<Set<number>> {
  return new Promise((resolve) => {
    execFile('id', ['-G', user.name], { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => {
      const ids = err ? [] : stdout.trim().split(/\s+/).filter(Boolean).map(Number);
      resolve(new Set([user.gid, ...ids.filter((n) => Number.isInteger(n))]));
    });
  });
}

/** An account with its groups, for permission checks done on its behalf by a root agent. */
export interface Principal {
  uid: number;
  groups: Set<number>;
}

/**
 * Whether `who` has all of `want` (bits of 0o7: 4 read, 2 write, 1 execute) on a file with
 * `stat`, the way the kernel decides it: owner bits for the owner, else group bits for a
 * member, else the others' bits. Root passes read and write always.
 */
export function permits(stat: fs.Stats, who: Principal, want: number): boolean {
  if (who.uid === 0) return (want & 1) === 0 || (stat.mode & 0o111) !== 0 || stat.isDirectory();
  const bits =
    stat.uid === who.uid
      ? (stat.mode >> 6) & 7
      : who.groups.has(stat.gid)
        ? (stat.mode >> 3) & 7
        : stat.mode & 7;
  return (bits & want) === want;
}
