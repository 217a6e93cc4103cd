/**
 * Where host paths live on this machine. Normally a host path is the local path; with a file
 * root every path a task reads or writes is placed under that directory (`/a/b` ->
 * `<root>/a/b`), so that several agents on one machine each see a filesystem of their own
 * (simulated fleets, tests). The root isolates paths, not privileges: a symbolic link inside
 * it is followed like anywhere else.
 */
import path from 'node:path';

export class FileRoot {
  /** `root` undefined or empty: host paths are local paths. */
  constructor(private readonly root?: string) {}

  /** The local path of an absolute host path; '..' cannot climb above the root. */
  local(hostPath: string): string {
    const normal = path.posix.resolve('/', hostPath);
    return this.root ? path.join(this.root, normal) : normal;
  }

  /** The host path of a local path produced by `local`. */
  host(localPath: string): string {
    if (!this.root) return localPath;
    const rel = path.relative(this.root, localPath);
    return '/' + rel.split(path.sep).join('/');
  }
}
