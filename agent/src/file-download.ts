/**
 * One `task.download`: pulls the files of every source into the target directory.
 *
 * Per file: fetch into a hidden part file next to the target (`.<name>.<task>.jobfleet-part`),
 * resume with a Range request when a connection breaks (a few retries with backoff, counted
 * afresh whenever an attempt made progress), check size and sha256, set the mode (and the
 * owner, when the agent is root and acts for another account), then rename into place. A
 * file is never visible under its name half-written, and whatever way the task ends, no part
 * file is left behind once `done` is called.
 *
 * A source a server holds (an upload, say) is served by every server of a cluster: when its
 * server breaks off, the retry goes to the server the agent is connected to now, or the next one
 * of its list (the source's URL names the server that sent the task, one of the agent's list).
 * Such a source is retried until the task's timeout rather than a few times: with one server, a
 * restart of it is a pause, not a failure.
 *
 * Files are fetched one after another, in the order of the request; two files with the same
 * target path end with the later one. The task's rate limit covers all of its bytes. Every
 * file of the request gets exactly one final progress report, `finished` or `failed` (files
 * not reached because an earlier one failed are reported failed with that reason).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DownloadFiles, DownloadSource, FileDescriptor, TaskOutcome } from '@jobfleet/protocol';
import { parseTaskKey } from '@jobfleet/protocol/agent';
import { isSafeRelPath } from './rel-path.js';
import type { FileProgress } from '@jobfleet/protocol';
import type { FileRoot } from './file-root.js';
import { currentUser, groupsOf, permits, resolveUser } from './os-user.js';
import type { OsUser, Principal } from './os-user.js';
import { RateLimiter } from './rate-limiter.js';
import type { RunningTask, StopReason } from './task-runner-api.js';

export type DownloadProgress = Omit<FileProgress, 'v' | 'type' | 'key'>;

export interface DownloadHandlers {
  progress(report: DownloadProgress): void;
  done(outcome: TaskOutcome, exitCode: number, message: string): void;
}

/** Attempts after a failure without progress before a file from a peer is given up. */
const RETRIES = 4;
const BACKOFF_BASE_MS = 200;
/** The longest pause between attempts on a server's files, which are retried until the timeout. */
const SERVER_BACKOFF_MAX_MS = 5_000;
/** A connection that delivers nothing for this long is broken, even if still open. */
const STALL_MS = 30_000;
const PROGRESS_INTERVAL_MS = 1_000;

interface PlannedFile {
  source: DownloadSource;
  file: FileDescriptor;
  /** Target as the host sees it, and on this machine. */
  targetPath: string;
  local: string;
  part: string;
}

/** Ends the task with `outcome`; anything else thrown is a bug in a file step and fails the transfer. */
class TaskFailure extends Error {
  constructor(
    readonly outcome: TaskOutcome,
    message: string,
  ) {
    super(message);
  }
}

/** A failed attempt that another attempt may get past (a broken connection, a 5xx). */
class Transient extends Error {}

/**
 * The part file's name. A target name may use all 255 bytes a file system allows, leaving no
 * room for the suffix: such a name is shortened to its hash (the same on every call, so a later
 * clean-up finds the part file again).
 */
function partName(base: string, stepInstanceId: number, executeCount: number): string {
  const shown = Buffer.byteLength(base) > 200 ? createHash('sha256').update(base).digest('hex') : base;
  return `.${shown}.${stepInstanceId}-${executeCount}.jobfleet-part`;
}

function plan(msg: DownloadFiles, root: FileRoot): { files: PlannedFile[]; problem?: string } {
  const all = msg.sources.flatMap((source) => source.files.map((file) => ({ source, file })));
  const rename = msg.targetName !== '' && all.length === 1;
  const { stepInstanceId, executeCount } = parseTaskKey(msg.key);
  const bad: string[] = [];
  const files = all.map(({ source, file }) => {
    const rel = rename ? msg.targetName : file.relPath;
    if (!isSafeRelPath(rel) || (rename && rel.includes('/'))) bad.push(rel);
    const targetPath = path.posix.join(path.posix.resolve('/', msg.targetDir), rel);
    const local = root.local(targetPath);
    const part = path.join(path.dirname(local), partName(path.basename(local), stepInstanceId, executeCount));
    return { source, file, targetPath, local, part };
  });
  return bad.length > 0 ? { files, problem: `not a usable target name: ${bad.join(', ')}` } : { files };
}

/** Part files a download of `msg` may have left (an agent killed mid-transfer). */
export function removePartFiles(msg: DownloadFiles, root: FileRoot): void {
  for (const f of plan(msg, root).files) {
    try {
      fs.rmSync(f.part, { force: true });
    } catch {
      // Not a file (a directory put in its place): left alone, and no reason not to start.
    }
  }
}

function fileUrl(sourceUrl: string, source: DownloadSource, relPath: string): URL {
  const base = sourceUrl.replace(/\/+$/, '');
  return new URL(`${base}/files/${encodeURIComponent(source.serveId)}/${encodeURIComponent(relPath)}`);
}

/**
 * Where to fetch a source from after a failure at `tried`: for a source on one of the agent's
 * servers (`servers`, the connected one first), the same path on the first of them that is not
 * the one that failed; any other source is tried again where it is.
 */
export function nextSourceUrl(sourceUrl: string, tried: string, servers: readonly string[]): string {
  if (!onServer(sourceUrl, servers)) return tried;
  const candidates = servers.map((s) => {
    const u = new URL(sourceUrl);
    const server = new URL(s);
    u.protocol = server.protocol;
    u.host = server.host;
    return u.toString();
  });
  const failed = new URL(tried).toString();
  return candidates.find((u) => u !== failed) ?? tried;
}

/** Whether a source is files a server holds: it is on one of the agent's servers. */
function onServer(sourceUrl: string, servers: readonly string[]): boolean {
  const at = new URL(sourceUrl);
  return servers.some((s) => new URL(s).host === at.host);
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message;
}

/** Creates `dir` and its missing parents, each owned by `user` when given. */
/**
 * Refuses a symbolic link among the directories from `base` (the target directory, which may be
 * one) down to `dir`: the target account may own them, and an agent running as root would
 * otherwise create and write files wherever such a link points.
 */
async function assertNoLinkBelow(base: string, dir: string, shown: string): Promise<void> {
  let at = base;
  for (const part of path
    .relative(base, dir)
    .split(path.sep)
    .filter((p) => p !== '')) {
    at = path.join(at, part);
    const st = await fs.promises.lstat(at).catch(() => undefined);
    if (!st) return; // what is missing from here on, mkdirs creates
    if (st.isSymbolicLink())
      throw new TaskFailure('target_invalid', `${shown}: a directory on its way is a symbolic link`);
  }
}

async function mkdirs(dir: string, user: OsUser | undefined): Promise<void> {
  const first = await fs.promises.mkdir(dir, { recursive: true, mode: 0o755 });
  if (!first || !user) return;
  for (let d = dir; d.length >= first.length; d = path.dirname(d)) {
    await fs.promises.chown(d, user.uid, user.gid);
    if (d === first) break;
  }
}

/**
 * What the kernel would refuse the account itself, a root agent refuses for it: writing into a
 * directory it may not write (or making one there), and replacing another account's file in a
 * sticky directory (/tmp), where only the file's or the directory's owner may.
 */
async function assertMayPlace(f: PlannedFile, actor: Principal, name: string): Promise<void> {
  let dir = path.dirname(f.local);
  let stat = await fs.promises.stat(dir).catch(() => undefined);
  // The target directory exists by now, so this walk ends there at the latest.
  while (!stat && dir !== path.dirname(dir)) {
    dir = path.dirname(dir);
    stat = await fs.promises.stat(dir).catch(() => undefined);
  }
  if (!stat) return;
  const shown = path.posix.join(path.posix.dirname(f.targetPath), path.relative(path.dirname(f.local), dir));
  if (!permits(stat, actor, 3))
    throw new TaskFailure('target_invalid', `${shown} is not writable by ${name}`);
  if (dir !== path.dirname(f.local) || (stat.mode & 0o1000) === 0 || stat.uid === actor.uid) return;
  const existing = await fs.promises.lstat(f.local).catch(() => undefined);
  if (existing && existing.uid !== actor.uid)
    throw new TaskFailure(
      'target_invalid',
      `${f.targetPath} belongs to another account in a sticky directory; ${name} may not replace it`,
    );
}

interface Transfer {
  bytes: number;
  hash: ReturnType<typeof createHash>;
  fh: fs.promises.FileHandle;
}

class DownloadRun implements RunningTask {
  private readonly abort = new AbortController();
  private readonly limiter: RateLimiter;
  private stopReason: 'timeout' | StopReason | undefined;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(
    private readonly msg: DownloadFiles,
    private readonly root: FileRoot,
    private readonly handlers: DownloadHandlers,
    private readonly servers: () => readonly string[],
  ) {
    this.limiter = new RateLimiter(msg.rateLimitBytes);
  }

  start(): void {
    void this.begin();
  }

  private async begin(): Promise<void> {
    this.timer = setTimeout(() => this.stop('timeout'), this.msg.timeoutSeconds * 1000);
    const { files, problem } = plan(this.msg, this.root);
    let done = 0;
    try {
      if (problem) throw new TaskFailure('transfer_failed', problem);
      const who = await resolveUser(this.msg.user);
      if (who.error) throw new TaskFailure('user_missing', who.error);
      // Stopped before it began: nothing is made on the host.
      this.abort.signal.throwIfAborted();
      // A root agent writing for another account checks what that account may do itself.
      const actor =
        who.user && who.user.uid !== 0 && currentUser().uid === 0
          ? { uid: who.user.uid, groups: await groupsOf(who.user) }
          : undefined;
      await this.prepareTarget(who.user, actor);
      for (const f of files) {
        done++; // counted before: a file that fails reports its own failure
        await this.fetchFile(f, who.user, actor);
      }
      this.finish('exited', 0, '');
    } catch (err) {
      const [outcome, message] = this.classify(err);
      for (const f of files.slice(done))
        this.report(f, 'failed', 0, Date.now(), `not transferred: ${message}`);
      this.finish(outcome, -1, message);
    }
  }

  private classify(err: unknown): [TaskOutcome, string] {
    switch (this.stopReason) {
      case 'timeout':
        return ['timeout', `stopped after the ${this.msg.timeoutSeconds} s timeout`];
      case 'killed':
        return ['killed', 'terminated on request'];
      case 'lost':
        return ['lost', 'the agent stopped while this task was running'];
      case undefined:
        if (err instanceof TaskFailure) return [err.outcome, err.message];
        return ['transfer_failed', errorText(err)];
    }
  }

  kill(reason: StopReason = 'killed'): void {
    this.stop(reason);
  }

  private stop(reason: 'timeout' | StopReason): void {
    if (this.finished) return;
    this.stopReason ??= reason;
    this.abort.abort(new Error(`download ${reason}`));
  }

  private finish(outcome: TaskOutcome, exitCode: number, message: string): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.handlers.done(outcome, exitCode, message);
  }

  private report(
    f: PlannedFile,
    status: DownloadProgress['status'],
    bytes: number,
    since: number,
    message = '',
  ): void {
    const seconds = Math.max(0.001, (Date.now() - since) / 1000);
    this.handlers.progress({
      label: f.source.label,
      sourcePath: f.file.sourcePath,
      targetPath: f.targetPath,
      status,
      size: f.file.size,
      bytes,
      speed: Math.round(bytes / seconds),
      message,
    });
  }

  private async prepareTarget(user: OsUser | undefined, actor: Principal | undefined): Promise<void> {
    const dir = this.root.local(this.msg.targetDir);
    const shown = path.posix.resolve('/', this.msg.targetDir);
    let stat = await fs.promises.stat(dir).catch(() => undefined);
    if (stat && !stat.isDirectory()) throw new TaskFailure('target_invalid', `${shown} is not a directory`);
    if (!stat) {
      if (this.msg.strict)
        throw new TaskFailure(
          'target_invalid',
          `target directory ${shown} does not exist (strict transfer mode)`,
        );
      try {
        await mkdirs(dir, user);
        stat = await fs.promises.stat(dir);
      } catch (err) {
        throw new TaskFailure('target_invalid', `cannot create target directory ${shown}: ${errorText(err)}`);
      }
    }
    const writable = actor
      ? permits(stat, actor, 3)
      : await fs.promises.access(dir, fs.constants.W_OK | fs.constants.X_OK).then(
          () => true,
          () => false,
        );
    if (!writable)
      throw new TaskFailure(
        'target_invalid',
        `${shown} is not writable by ${this.msg.user || currentUser().name}`,
      );
  }

  private async fetchFile(
    f: PlannedFile,
    user: OsUser | undefined,
    actor: Principal | undefined,
  ): Promise<void> {
    const since = Date.now();
    const what = `${f.source.label}:${f.file.sourcePath}`;
    let t: Transfer | undefined;
    this.report(f, 'downloading', 0, since);
    const ticker = setInterval(
      () => this.report(f, 'downloading', t?.bytes ?? 0, since),
      PROGRESS_INTERVAL_MS,
    );
    try {
      try {
        await assertNoLinkBelow(this.root.local(this.msg.targetDir), path.dirname(f.local), f.targetPath);
        if (actor) await assertMayPlace(f, actor, this.msg.user);
        await mkdirs(path.dirname(f.local), user);
        // A fresh file, never one reached through a link put at the part's (predictable) name.
        await fs.promises.rm(f.part, { force: true });
        const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
        const fh = await fs.promises.open(f.part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        t = { bytes: 0, hash: createHash('sha256'), fh };
      } catch (err) {
        if (err instanceof TaskFailure) throw err;
        throw new TaskFailure('target_invalid', `cannot write ${f.targetPath}: ${errorText(err)}`);
      }
      await this.pull(f, t, what);
      if (t.bytes !== f.file.size)
        throw new TaskFailure('transfer_failed', `${what}: got ${t.bytes} bytes, expected ${f.file.size}`);
      const sum = t.hash.digest('hex');
      if (sum !== f.file.sha256)
        throw new TaskFailure(
          'transfer_failed',
          `${what}: checksum mismatch (sha256 ${sum}, expected ${f.file.sha256})`,
        );
      try {
        if (user) await t.fh.chown(user.uid, user.gid);
        // Never set-uid or set-gid: a file given to another owner must not run as that owner.
        await t.fh.chmod(f.file.mode & 0o1777);
        await t.fh.close();
        await fs.promises.rename(f.part, f.local);
      } catch (err) {
        throw new TaskFailure('target_invalid', `cannot place ${f.targetPath}: ${errorText(err)}`);
      }
      this.report(f, 'finished', t.bytes, since);
    } catch (err) {
      await t?.fh.close().catch(() => undefined);
      await fs.promises.rm(f.part, { force: true }).catch(() => undefined);
      this.report(f, 'failed', t?.bytes ?? 0, since, this.classify(err)[1]);
      throw err;
    } finally {
      clearInterval(ticker);
    }
  }

  /**
   * Fetches until the file is complete, retrying broken attempts from where they stopped. A
   * peer that keeps failing is given up after a few attempts (it is gone, or cannot serve). The
   * files a server holds are retried until the task's timeout: a server that restarts (a crash,
   * an upgrade) comes back at the same address, and the task must not fail for it.
   */
  private async pull(f: PlannedFile, t: Transfer, what: string): Promise<void> {
    const patient = onServer(f.source.url, this.servers());
    let failures = 0;
    let url = f.source.url;
    for (;;) {
      const before = t.bytes;
      try {
        return await this.attempt(f, t, url);
      } catch (err) {
        if (this.abort.signal.aborted) throw err;
        if (!(err instanceof Transient))
          throw new TaskFailure('transfer_failed', `${what}: ${errorText(err)}`);
        failures = t.bytes > before ? 1 : failures + 1;
        if (failures > RETRIES && !patient)
          throw new TaskFailure(
            'transfer_failed',
            `${what}: ${err.message} (gave up after ${failures} attempts)`,
          );
        const backoff = BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 10);
        const delay = Math.min(backoff, SERVER_BACKOFF_MAX_MS) * (0.5 + Math.random() / 2);
        // A kill or the timeout ends the pause at once.
        await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
        if (this.abort.signal.aborted) throw err;
        url = nextSourceUrl(f.source.url, url, this.servers());
      }
    }
  }

  private request(f: PlannedFile, from: number, url: string): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${f.source.token}` };
      if (from > 0) headers.range = `bytes=${from}-`;
      const req = http.get(
        fileUrl(url, f.source, f.file.relPath),
        { headers, signal: this.abort.signal },
        resolve,
      );
      req.setTimeout(STALL_MS, () => req.destroy(new Error(`no data for ${STALL_MS / 1000} s`)));
      req.on('error', (err) => reject(this.abort.signal.aborted ? err : new Transient(errorText(err))));
    });
  }

  private async attempt(f: PlannedFile, t: Transfer, url: string): Promise<void> {
    const res = await this.request(f, t.bytes, url);
    try {
      const status = res.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        let body = '';
        for await (const c of res) if (body.length < 200) body += (c as Buffer).toString('utf8');
        const text = `source answered HTTP ${status}${body.trim() ? `: ${body.trim()}` : ''}`;
        throw status >= 500 ? new Transient(text) : new Error(text);
      }
      if (status === 206) {
        const start = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1];
        if (Number(start) !== t.bytes) throw new Error(`source answered range ${start} for ${t.bytes}`);
      }
      // Every source today (an agent, a Jobfleet server) says how many bytes it sends; a
      // third-party HTTP source, when there is one, may not, and needs a rule of its own. An
      // answer that does not announce the bytes asked for (an error envelope or page sent with a
      // 200) is not written: its bytes would end up inside the file.
      const length = res.headers['content-length'];
      const expected = f.file.size - (status === 200 ? 0 : t.bytes);
      if (length === undefined || Number(length) !== expected)
        throw new Transient(
          `source answered ${length ?? 'an unknown number of'} bytes where ${expected} were asked for`,
        );
      if (status === 200 && t.bytes > 0) {
        // The source ignored the range: start over.
        t.bytes = 0;
        t.hash = createHash('sha256');
        await t.fh.truncate(0);
      }
      const chunks = (res as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          if (this.abort.signal.aborted) throw err;
          throw new Transient(`connection broken after ${t.bytes} bytes: ${errorText(err)}`);
        }
        if (next.done) break;
        const chunk = next.value;
        if (t.bytes + chunk.length > f.file.size)
          throw new Error(`source sent more than ${f.file.size} bytes`);
        await this.limiter.wait(chunk.length, this.abort.signal);
        await t.fh.write(chunk, 0, chunk.length, t.bytes);
        t.hash.update(chunk);
        t.bytes += chunk.length;
      }
      if (t.bytes < f.file.size)
        throw new Transient(`connection closed after ${t.bytes} of ${f.file.size} bytes`);
    } finally {
      res.destroy();
    }
  }
}

/**
 * A task that downloads files once it is started. `servers`: the agent's servers, the one it is
 * connected to first (none outside an agent).
 */
export function downloadTask(
  msg: DownloadFiles,
  root: FileRoot,
  handlers: DownloadHandlers,
  servers: () => readonly string[] = () => [],
): RunningTask {
  return new DownloadRun(msg, root, handlers, servers);
}
