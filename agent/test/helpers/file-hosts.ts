/**
 * Hosts for file distribution tests: each is a TaskRunner with its own file root and its
 * file server on its own loopback address, as agents of a fleet on one machine would be.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DownloadFiles, DownloadSource, ServeEntry, ServeFiles } from '@jobfleet/protocol';
import { TaskRunner } from '../../src/task-runner.js';
import { tempStateDir } from './os-state.js';
import { RecordingReports, newKey } from './recording-reports.js';
import type { ServedAnswer } from './recording-reports.js';

export interface FileHost {
  ip: string;
  root: string;
  stateDir: string;
  runner: TaskRunner;
  reports: RecordingReports;
  /** The local path of a host path. */
  local(hostPath: string): string;
}

const made: FileHost[] = [];

export function fileHost(
  ip: string,
  opts: { root?: string; stateDir?: string; servers?: () => readonly string[]; port?: number } = {},
): FileHost {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), `jobfleet-test-root-${ip}-`));
  const stateDir = opts.stateDir ?? tempStateDir();
  const reports = new RecordingReports();
  const runner = new TaskRunner(stateDir, reports, {
    fileRoot: root,
    fileHost: ip,
    ...(opts.port !== undefined ? { filePort: opts.port } : {}),
    ...(opts.servers ? { servers: opts.servers } : {}),
  });
  const host = { ip, root, stateDir, runner, reports, local: (p: string) => path.join(root, p) };
  made.push(host);
  return host;
}

export async function closeFileHosts(): Promise<void> {
  await Promise.all(made.map((h) => h.runner.close()));
  for (const h of made.splice(0)) {
    fs.rmSync(h.root, { recursive: true, force: true });
    fs.rmSync(h.stateDir, { recursive: true, force: true });
  }
}

/** Writes a file at a host path of `host`; content given, or that many random bytes. */
export function put(
  host: FileHost,
  hostPath: string,
  content: string | Buffer | number,
  mode = 0o644,
): Buffer {
  const data = typeof content === 'number' ? randomBytes(content) : Buffer.from(content);
  const file = host.local(hostPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data, { mode });
  fs.chmodSync(file, mode);
  return data;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

let nextServe = 1;

export function serveMsg(
  entries: (string | ServeEntry)[],
  opts: Partial<Omit<ServeFiles, 'v' | 'type' | 'entries'>> = {},
): ServeFiles {
  return {
    v: 1,
    type: 'file.serve',
    serveId: opts.serveId ?? `serve-${process.pid}-${nextServe++}`,
    entries: entries.map((e) => (typeof e === 'string' ? { path: e } : e)),
    user: opts.user ?? '',
    token: opts.token ?? randomBytes(16).toString('hex'),
    rateLimitBytes: opts.rateLimitBytes ?? 0,
  };
}

export interface Offer {
  msg: ServeFiles;
  answer: ServedAnswer;
  source: DownloadSource;
}

/** Asks `host` to serve `entries` and waits for its answer. */
export async function offer(
  host: FileHost,
  entries: (string | ServeEntry)[],
  opts: Partial<Omit<ServeFiles, 'v' | 'type' | 'entries'>> = {},
): Promise<Offer> {
  const msg = serveMsg(entries, opts);
  host.runner.serve(msg);
  const answer = await host.reports.servedAnswer(msg.serveId);
  const source: DownloadSource = {
    url: answer.url,
    serveId: msg.serveId,
    token: msg.token,
    label: `0:${host.ip}`,
    files: answer.files,
  };
  return { msg, answer, source };
}

export function downloadMsg(
  sources: DownloadSource[],
  targetDir: string,
  opts: Partial<Omit<DownloadFiles, 'v' | 'type' | 'sources' | 'targetDir'>> = {},
): DownloadFiles {
  return {
    v: 1,
    type: 'task.download',
    key: opts.key ?? newKey(),
    sources,
    targetDir,
    targetName: opts.targetName ?? '',
    user: opts.user ?? '',
    strict: opts.strict ?? false,
    rateLimitBytes: opts.rateLimitBytes ?? 0,
    timeoutSeconds: opts.timeoutSeconds ?? 60,
  };
}

/** Part files (and anything else hidden) left below `dir`. */
export function partFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.endsWith('.jobfleet-part'));
}
