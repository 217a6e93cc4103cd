/**
 * Names and paths of the files the server holds for file steps (local uploads,
 * push_config_file contents); file-bodies.ts keeps their bytes.
 */
import crypto from 'node:crypto';
import path from 'node:path';

/** A file name a client may give: no directories, nothing hidden behind control characters. */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 1024 &&
    name !== '.' &&
    name !== '..' &&
    ![...name].some((c) => c === '/' || c === '\\' || c.charCodeAt(0) < 0x20)
  );
}

/**
 * File names reach 1,024 characters (BK-JOB's limit) but a file system takes 255 bytes per
 * name, and the server adds a suffix while it writes. A name longer than this is kept on disk
 * under its hash instead; the stored path, which clients see, keeps the name as given.
 */
const MAX_DISK_NAME_BYTES = 200;

function diskName(name: string): string {
  if (Buffer.byteLength(name, 'utf8') <= MAX_DISK_NAME_BYTES) return name;
  return `long-name-${sha256Hex(name)}`;
}

export function storedFilePath(dataDir: string, storedPath: string): string {
  const root = path.resolve(dataDir, 'files');
  const full = path.resolve(root, ...storedPath.split('/').map(diskName));
  if (!full.startsWith(root + path.sep)) throw new Error(`stored path escapes the file store: ${storedPath}`);
  return full;
}

/** <scope id>/<uuid>/<user>/<file name>, BK-JOB's shape for local upload paths. */
export function newStoredPath(scopeId: number, user: string, fileName: string): string {
  const safeUser = user.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'user';
  return `${scopeId}/${crypto.randomUUID()}/${safeUser}/${fileName}`;
}

export function sha256Hex(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
