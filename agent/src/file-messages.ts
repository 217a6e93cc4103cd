/**
 * Agent -> server messages of file distribution that `@jobfleet/protocol` does not define yet:
 * the answer to `file.serve` and per-file progress of a `task.download`. They are shaped
 * like the protocol's own messages (same header, zod schemas with same-named types) so that
 * they can move into protocol/src/agent-link.ts unchanged and join `AgentMessage` there.
 */
import { z } from 'zod';
import { FileDescriptor, PROTOCOL_VERSION, TaskKey } from '@jobfleet/protocol';

const header = { v: z.literal(PROTOCOL_VERSION) };

/**
 * Why an offer could not be made; the server maps it to a host status:
 *   missing      paths that do not exist, patterns that match nothing (203 source file not exist)
 *   user_missing the account does not exist or cannot be acted as (311)
 *   unreadable   files the account may not read (202)
 *   invalid      malformed entries: bad pattern, bad relPath, two files under one name (202)
 */
export const ServeErrorKind = z.enum(['missing', 'user_missing', 'unreadable', 'invalid']);
export type ServeErrorKind = z.infer<typeof ServeErrorKind>;

export const ServeError = z.object({
  kind: ServeErrorKind,
  /** The entries (as the host sees them, without the file root) the error is about. */
  paths: z.array(z.string()),
  message: z.string(),
});
export type ServeError = z.infer<typeof ServeError>;

/** The answer to `file.serve`: on error `files` is empty and nothing is served. */
export const FilesServed = z.object({
  ...header,
  type: z.literal('file.served'),
  serveId: z.string().min(1),
  /** Base URL of the agent's file server, `http://<ip>:<port>`. */
  url: z.string().url(),
  files: z.array(FileDescriptor),
  error: ServeError.optional(),
});
export type FilesServed = z.infer<typeof FilesServed>;

/** File log `status` values (BK-JOB's FileDistStatusEnum) an agent reports while it downloads. */
export const FileStatus = z.enum(['downloading', 'finished', 'failed']);
export type FileStatus = z.infer<typeof FileStatus>;

/**
 * Progress of one file of a download task: `downloading` when it starts and about once a
 * second while it runs, then one final `finished` or `failed`. Final reports are kept with
 * the task's result and sent again after a reconnect, so the server must treat a repeat of
 * (key, sourcePath, targetPath, status) as the same report.
 */
export const FileProgress = z.object({
  ...header,
  type: z.literal('task.file'),
  key: TaskKey,
  /** The source's label ("cloud:ip"). */
  label: z.string(),
  sourcePath: z.string(),
  /** Where the file goes, as the host sees it (without the agent's file root). */
  targetPath: z.string(),
  status: FileStatus,
  size: z.number().int().nonnegative(),
  /** Bytes received so far. */
  bytes: z.number().int().nonnegative(),
  /** Average bytes per second since the file started. */
  speed: z.number().int().nonnegative(),
  message: z.string(),
});
export type FileProgress = z.infer<typeof FileProgress>;

/**
 * A relative path a file may be served and stored under: '/'-separated, not absolute, no
 * empty, '.' or '..' parts, no backslashes or NUL. Checked on both sides, because a target
 * must not let a source (or a server) write outside its target directory.
 */
export function isSafeRelPath(rel: string): boolean {
  if (rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0')) return false;
  return rel.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
