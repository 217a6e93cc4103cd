/**
 * Turns a `file.serve` request into an offer: the files it names, each with the relative path
 * it is served under, its size, mode and sha256.
 *
 * Entries (host paths, resolved under the file root):
 *   "/a/b.txt"          one file, served as "b.txt" (a directory named without '/' is served
 *                       like "/a/b/")
 *   "/a/dir/"           every regular file below it, served as "dir/<relative path>"; empty
 *                       directories are not carried (a descriptor is a file)
 *   "/a/REGEX:<re>"     the regular files directly in /a whose names match <re>
 *   {path, relPath}     a file (or tree) served under the given relative path
 * Symbolic links to files are served as the file; links to directories are not descended,
 * so a link cycle cannot make an offer endless.
 *
 * Files are hashed by streaming them, a few at a time, so a large offer neither holds the
 * event loop nor memory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FileDescriptor, ServeFiles } from '@jobfleet/protocol';
import { isSafeRelPath } from './rel-path.js';
import type { ServeError, ServeErrorKind } from '@jobfleet/protocol';
import type { FileRoot } from './file-root.js';
import { currentUser, groupsOf, permits, resolveUser } from './os-user.js';
import type { Principal } from './os-user.js';

export interface OfferedFile {
  /** Where the file is on this machine (under the file root). */
  localPath: string;
  descriptor: FileDescriptor;
}

export interface FileOffer {
  serveId: string;
  token: string;
  rateLimitBytes: number;
  /** By relPath. */
  files: Map<string, OfferedFile>;
}

export type OfferResult = { offer: FileOffer; error?: undefined } | { offer?: undefined; error: ServeError };

const REGEX_PART = '/REGEX:';
/** Files hashed at once: enough to overlap disk waits, few enough not to thrash a disk. */
const HASH_CONCURRENCY = 4;
const HASH_BUFFER_BYTES = 256 * 1024;

interface Found {
  localPath: string;
  relPath: string;
  stat: fs.Stats;
}

class OfferError extends Error {
  constructor(
    readonly kind: ServeErrorKind,
    readonly paths: string[],
    message: string,
  ) {
    super(message);
  }
}

async function statOrUndefined(p: string): Promise<fs.Stats | undefined> {
  try {
    return await fs.promises.stat(p);
  } catch {
    return undefined;
  }
}

/** Regular files below `dir` (following links to files, not to directories), relative to it. */
async function walk(dir: string, prefix: string, out: Found[]): Promise<void> {
  for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const localPath = path.join(dir, e.name);
    const relPath = prefix === '' ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) {
      await walk(localPath, relPath, out);
    } else if (e.isFile() || e.isSymbolicLink()) {
      const stat = await statOrUndefined(localPath);
      if (stat?.isFile()) out.push({ localPath, relPath, stat });
    }
  }
}

async function expand(
  entry: ServeFiles['entries'][number],
  root: FileRoot,
  missing: string[],
): Promise<Found[]> {
  const found: Found[] = [];
  const at = entry.path.lastIndexOf(REGEX_PART);
  // An entry with its relPath names one received file to re-serve, so a file that is itself
  // named "REGEX:..." is taken as it is, not as a pattern.
  if (entry.relPath === undefined && at >= 0 && !entry.path.slice(at + REGEX_PART.length).includes('/')) {
    const dir = root.local(entry.path.slice(0, at) || '/');
    let re: RegExp;
    try {
      re = new RegExp(entry.path.slice(at + REGEX_PART.length));
    } catch (err) {
      throw new OfferError(
        'invalid',
        [entry.path],
        `bad pattern in ${entry.path}: ${(err as Error).message}`,
      );
    }
    const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => re.test(n)).sort()) {
      const localPath = path.join(dir, name);
      const stat = await statOrUndefined(localPath);
      if (stat?.isFile())
        found.push({ localPath, relPath: entry.relPath ? `${entry.relPath}/${name}` : name, stat });
    }
    if (found.length === 0) missing.push(entry.path);
    return found;
  }
  const localPath = root.local(entry.path);
  const stat = await statOrUndefined(localPath);
  if (!stat || (!stat.isFile() && !stat.isDirectory()) || (entry.path.endsWith('/') && !stat.isDirectory())) {
    missing.push(entry.path);
    return found;
  }
  const name = path.posix.basename(path.posix.resolve('/', entry.path));
  const relPath = entry.relPath ?? name;
  if (stat.isFile()) return [{ localPath, relPath, stat }];
  await walk(localPath, relPath, found);
  return found;
}

/**
 * Hashes the first `size` bytes (the size offered, which is what the file server sends), through
 * one reused buffer: streaming chunks would leave a file's worth of garbage behind. A file that
 * grows meanwhile (a log still written) is offered as it was when listed; one that shrank fails.
 */
async function sha256(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
  const fh = await fs.promises.open(file, 'r');
  try {
    for (let at = 0; at < size;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - at), at);
      if (bytesRead === 0) throw new Error(`${file} shrank while it was being offered`);
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Who reads the files: undefined means the agent itself (the kernel decides at open). */
async function readerOf(user: string): Promise<Principal | undefined> {
  const who = await resolveUser(user);
  if (who.error) throw new OfferError('user_missing', [], who.error);
  if (!who.user || currentUser().uid !== 0) return undefined;
  return { uid: who.user.uid, groups: await groupsOf(who.user) };
}

async function readable(f: Found, reader: Principal | undefined): Promise<boolean> {
  if (reader) return permits(f.stat, reader, 4);
  try {
    await fs.promises.access(f.localPath, fs.constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

export async function resolveOffer(msg: ServeFiles, root: FileRoot): Promise<OfferResult> {
  try {
    const reader = await readerOf(msg.user);
    const perEntry = await Promise.all(
      msg.entries.map(async (e) => {
        const none: string[] = [];
        return { found: await expand(e, root, none), none };
      }),
    );
    // In the order of the request, whichever entry finished first.
    const missing = perEntry.flatMap((r) => r.none);
    const found = perEntry.flatMap((r) => r.found);
    if (missing.length > 0)
      throw new OfferError('missing', missing, `no such file or no match: ${missing.join(', ')}`);
    const bad = found.filter((f) => !isSafeRelPath(f.relPath)).map((f) => f.relPath);
    if (bad.length > 0) throw new OfferError('invalid', bad, `not a usable relative path: ${bad.join(', ')}`);
    const byRel = new Map<string, Found>();
    for (const f of found) {
      const other = byRel.get(f.relPath);
      if (other && other.localPath !== f.localPath) {
        const paths = [root.host(other.localPath), root.host(f.localPath)];
        throw new OfferError('invalid', paths, `${paths.join(' and ')} would both be served as ${f.relPath}`);
      }
      byRel.set(f.relPath, f);
    }
    const unique = [...byRel.values()];
    const denied: string[] = [];
    for (const f of unique) if (!(await readable(f, reader))) denied.push(root.host(f.localPath));
    if (denied.length > 0)
      throw new OfferError(
        'unreadable',
        denied,
        `not readable by ${msg.user || currentUser().name}: ${denied.join(', ')}`,
      );
    const files = new Map<string, OfferedFile>();
    const hashes = await mapLimited(unique, HASH_CONCURRENCY, (f) => sha256(f.localPath, f.stat.size));
    unique.forEach((f, i) => {
      files.set(f.relPath, {
        localPath: f.localPath,
        descriptor: {
          sourcePath: root.host(f.localPath),
          relPath: f.relPath,
          size: f.stat.size,
          sha256: hashes[i] as string,
          mode: f.stat.mode & 0o7777,
        },
      });
    });
    return { offer: { serveId: msg.serveId, token: msg.token, rateLimitBytes: msg.rateLimitBytes, files } };
  } catch (err) {
    if (err instanceof OfferError)
      return { error: { kind: err.kind, paths: err.paths, message: err.message } };
    // A file vanished or became unreadable between listing and hashing.
    return { error: { kind: 'unreadable', paths: [], message: (err as Error).message } };
  }
}
