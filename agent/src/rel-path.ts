/**
 * A relative path a file may be served and stored under: '/'-separated, not absolute, no
 * empty, '.' or '..' parts, no backslashes or NUL. Checked on both sides, because a target
 * must not let a source (or a server) write outside its target directory.
 */
export function isSafeRelPath(rel: string): boolean {
  if (rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0')) return false;
  return rel.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
