/**
 * Orchestrates file steps. Bytes go from peer to peer; the server only tells each target
 * where to pull from.
 *
 * 1. Sources are prepared: each source agent resolves, hashes and offers its files
 *    (`file.serve`); files the server holds (uploads, config file contents) are offered by the
 *    server itself at /agent/v1/files. A source path that does not exist fails every target with
 *    203.
 * 2. Targets are dispatched from a queue to a seeder with a free slot. The origin (all sources
 *    together) is the first seeder; when the files are large, a target that finished offers
 *    what it received and becomes a seeder too, so N targets of a big file cost the source only
 *    `fileFanout` concurrent uploads (a swarm growing like a tree). Small files go to every
 *    target straight from the origin.
 * 3. Progress reports become file logs: a download log (mode 1) for the target and an upload
 *    log (mode 0) for the source, written in batches.
 */
import { HOLDER_BASE_URL, SERVER_SOURCE_LABEL, serverSourceUrl } from '../files/server-source.js';
import { PROTOCOL_VERSION, taskKey } from '@jobfleet/protocol';
import type {
  DownloadSource,
  FileDescriptor,
  FileProgress,
  FilesServed,
  ServeErrorKind,
} from '@jobfleet/protocol';
import type { Services } from '../services.js';
import type { FileLog } from '../store/file-store.js';
import { agentAway } from '../cluster/cluster-store.js';
import { fileLogLine } from './file-log-line.js';
import { offerToken, parseServeId, seedServeId, serverServeId, sourceServeId } from './file-tokens.js';
import { HostLabels } from './host-labels.js';
import { SeederPool } from './seeder-pool.js';
import { HostStatus } from './statuses.js';
import { parseStepSpec } from './step-spec.js';
import type { FileStepSpec } from './step-spec.js';

export interface FileTargetView {
  hostId: number;
  status: number;
  batch: number;
}

export interface FileStepView {
  stepInstanceId: number;
  executeCount: number;
  spec: FileStepSpec;
  tasks: Map<number, FileTargetView>;
}

export interface FileStepHooks {
  /** Ends a target that has not started with this host status. */
  failTarget(stepInstanceId: number, hostId: number, status: number): void;
}

interface Seeder {
  serveId: string;
  /** null for the origin */
  hostId: number | null;
  sources: DownloadSource[];
  active: number;
}

interface FileState {
  view: FileStepView;
  awaiting: Set<number>;
  origin: DownloadSource[];
  serverFiles: FileDescriptor[];
  ready: boolean;
  /**
   * Sources that offered and then came back in a new session (an agent restart loses its offers):
   * asked again, and no target is sent anywhere until each has offered the same files anew (a
   * moment: a source answers as soon as it has hashed its files).
   */
  reoffer: Set<number>;
  /** Empty until the sources are ready. */
  seeders: SeederPool<Seeder>;
  /** The seeders that are targets, by host. */
  seederOf: Map<number, Seeder>;
  /** Targets asked to re-serve what they received, whose offer has not come yet. */
  seedAsked: Set<number>;
  /** Targets waiting for a seeder, in the order they came (a Set: 100,000 of them at most). */
  queue: Set<number>;
  assigned: Map<number, Seeder>;
  slotLimit: number;
  labels: HostLabels;
  /** Cluster mode: when preparation began, and the session epoch each awaited source was asked under. */
  since: number;
  askedEpochs: Map<number, number>;
}

/** Where file log rows go: a step execution and the labels of its hosts. */
interface LogContext {
  stepInstanceId: number;
  executeCount: number;
  labels: HostLabels;
}

const MiB = 1024 * 1024;

const afterIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const logContext = (state: FileState): LogContext => ({ ...state.view, labels: state.labels });

/** Whether two file lists hold the same files: relative paths, sizes and contents. */
function sameFiles(a: readonly FileDescriptor[], b: readonly FileDescriptor[]): boolean {
  const keys = (list: readonly FileDescriptor[]) =>
    list
      .map((f) => `${f.relPath}\0${f.size}\0${f.sha256}`)
      .sort()
      .join('\n');
  return a.length === b.length && keys(a) === keys(b);
}

/** Whether targets may still download: the sources are not all ready, or targets wait or run. */
function targetsLeft(state: FileState): boolean {
  return !state.ready || state.queue.size > 0 || state.assigned.size > 0;
}

/** Every file a target receives: the sources' offers and the files the server holds. */
function stepFiles(state: FileState): FileDescriptor[] {
  return [...state.origin.flatMap((o) => o.files), ...state.serverFiles];
}

/** The source hosts that offered the origin's files. */
function originHosts(state: FileState): number[] {
  return state.origin.flatMap((o) => parseServeId(o.serveId)?.hostId ?? []);
}

/** What a failed offer means for the targets that cannot get their files. */
const SERVE_ERROR_STATUS: Record<ServeErrorKind, number> = {
  missing: HostStatus.SOURCE_FILE_NOT_EXIST,
  user_missing: HostStatus.USER_NOT_EXIST,
  unreadable: HostStatus.FILE_TRANSFER_FAILED,
  invalid: HostStatus.FILE_TRANSFER_FAILED,
};
/** Below this much data per target, every target pulls from the origin directly. */
const SWARM_THRESHOLD_BYTES = 8 * MiB;

export class FileDistribution {
  private readonly states = new Map<number, FileState>();
  /** Cluster mode: steps run elsewhere whose targets this server holds, by "step:count". */
  private readonly remote = new Map<string, LogContext>();
  private logBuffer = new Map<string, FileLog>();
  /** Cluster mode: the logging of relayed progress still under way, by target host. */
  private readonly relayedLogs = new Map<number, Promise<void>>();
  private logTimer: NodeJS.Timeout | undefined;
  /**
   * The last flush of the log buffer. Flushes run one after another: two at once could store an
   * older line of a transfer over a newer one (an upsert per transfer, the last one stands).
   */
  private flushed: Promise<void> = Promise.resolve();
  /** The flush that has not started yet: it writes every line logged before it starts. */
  private nextFlush: Promise<void> | undefined;

  constructor(
    private readonly services: Services,
    private readonly hooks: FileStepHooks,
  ) {}

  private token(serveId: string): string {
    return offerToken(this.services.secrets.serverKey, serveId);
  }

  /** Starts preparing the step's sources (once per step execution). */
  async begin(view: FileStepView): Promise<void> {
    const existing = this.states.get(view.stepInstanceId);
    if (existing && existing.view.executeCount === view.executeCount) {
      existing.view = view;
      return;
    }
    const spec = view.spec;
    const state: FileState = {
      view,
      awaiting: new Set(),
      origin: [],
      serverFiles: [],
      ready: false,
      reoffer: new Set(),
      seeders: new SeederPool(Infinity),
      seederOf: new Map(),
      seedAsked: new Set(),
      queue: new Set(),
      assigned: new Map(),
      slotLimit: Infinity,
      labels: new HostLabels(),
      since: Date.now(),
      askedEpochs: new Map(),
    };
    const inv = this.services.store.inventory;
    const targets = await inv.getHostsByIds([...view.tasks.keys()]);
    for (const h of targets) state.labels.set(h.id, `${h.cloud_id}:${h.ip}`);
    for (const source of spec.sources) {
      if (source.kind === 'server') {
        const rows = await this.services.store.files.getStoredFiles(source.files);
        for (const r of rows) {
          state.serverFiles.push({
            sourcePath: r.path,
            relPath: r.file_name,
            size: r.size ?? 0,
            sha256: r.sha256 ?? '',
            mode: 0o644,
          });
        }
        continue;
      }
      for (const h of source.hosts) {
        state.labels.set(h.hostId, `${h.cloudId}:${h.ip}`);
        state.awaiting.add(h.hostId);
      }
    }
    // Held only once built: a begin whose reads failed leaves nothing for the next one to reuse.
    this.states.set(view.stepInstanceId, state);
    for (const hostId of state.awaiting) this.askSource(state, hostId);
    this.services.hub.expect([...state.awaiting].filter((id) => !this.services.hub.isConnected(id)));
    if (state.awaiting.size === 0) this.markReady(state);
  }

  private askSource(state: FileState, hostId: number): void {
    const { view } = state;
    const spec = view.spec;
    const serveId = sourceServeId(view.stepInstanceId, view.executeCount, hostId);
    const entries = spec.sources
      .filter((s) => s.kind === 'host' && s.hosts.some((h) => h.hostId === hostId))
      .flatMap((s) => s.files.map((path) => ({ path })));
    const user =
      spec.sources.find((s) => s.kind === 'host' && s.hosts.some((h) => h.hostId === hostId))?.account
        ?.osUser ?? '';
    this.services.hub.send(hostId, {
      v: PROTOCOL_VERSION,
      type: 'file.serve',
      serveId,
      entries,
      user,
      token: this.token(serveId),
      rateLimitBytes: spec.uploadSpeedLimit * MiB,
    });
  }

  private markReady(state: FileState): void {
    state.ready = true;
    const perTarget = stepFiles(state).reduce((a, f) => a + f.size, 0);
    state.slotLimit = perTarget < SWARM_THRESHOLD_BYTES ? Infinity : this.services.config.fileFanout;
    state.seeders = new SeederPool(state.slotLimit);
    state.seeders.add({ serveId: 'origin', hostId: null, sources: state.origin, active: 0 });
    this.pump(state.view.stepInstanceId);
  }

  /** A waiting target of the current batch joins the queue. */
  enqueue(stepInstanceId: number, hostId: number): void {
    const state = this.states.get(stepInstanceId);
    if (state && !state.assigned.has(hostId)) state.queue.add(hostId);
  }

  /** Dispatches queued targets whose agents are here to seeders with a free slot. */
  pump(stepInstanceId: number): void {
    const state = this.states.get(stepInstanceId);
    if (!state?.ready || state.reoffer.size > 0) return;
    const hub = this.services.hub;
    const waiting: number[] = [];
    const absent: number[] = [];
    while (state.queue.size > 0) {
      const seeder = state.seeders.pick();
      if (!seeder) break;
      const hostId = state.queue.values().next().value as number;
      state.queue.delete(hostId);
      const task = state.view.tasks.get(hostId);
      if (!task || task.status !== HostStatus.WAITING) continue;
      // In a cluster the instruction waits in the agent's outbox wherever the agent is.
      if (!hub.isConnected(hostId) && !this.services.cluster) {
        absent.push(hostId);
        waiting.push(hostId);
        continue;
      }
      if (this.sendDownload(state, hostId, seeder)) {
        state.seeders.take(seeder);
        state.assigned.set(hostId, seeder);
      } else waiting.push(hostId);
    }
    for (const hostId of waiting) state.queue.add(hostId);
    hub.expect(absent);
  }

  private sendDownload(state: FileState, hostId: number, seeder: Seeder): boolean {
    const { view } = state;
    const spec = view.spec;
    const sources: DownloadSource[] = [...seeder.sources];
    if (seeder.hostId === null && state.serverFiles.length > 0) {
      const serveId = serverServeId(view.stepInstanceId, view.executeCount);
      const url = serverSourceUrl(this.services.hub.serverUrlFor(hostId) ?? HOLDER_BASE_URL);
      sources.push({
        url,
        serveId,
        token: this.token(serveId),
        label: SERVER_SOURCE_LABEL,
        files: state.serverFiles,
      });
    }
    return this.services.hub.send(hostId, {
      v: PROTOCOL_VERSION,
      type: 'task.download',
      key: taskKey(view.stepInstanceId, view.executeCount, hostId),
      sources,
      targetDir: spec.targetPath,
      targetName: spec.targetName,
      user: spec.account.osUser,
      strict: spec.transferMode === 1,
      rateLimitBytes: spec.downloadSpeedLimit * MiB,
      timeoutSeconds: spec.timeout,
    });
  }

  filesServed(hostId: number, msg: FilesServed): void {
    const id = parseServeId(msg.serveId);
    if (!id || id.hostId !== hostId) return;
    const state = this.states.get(id.stepInstanceId);
    if (!state || state.view.executeCount !== id.executeCount) {
      this.relayOffer(id.stepInstanceId, id.executeCount, hostId, msg);
      return;
    }
    this.offered(state, hostId, msg, id.kind);
  }

  private offered(state: FileState, hostId: number, msg: FilesServed, kind: 'src' | 'seed' | 'server'): void {
    const stepInstanceId = state.view.stepInstanceId;
    if (kind === 'seed') {
      // Only a target asked to re-serve may seed, once, and only what the origin offered: an
      // unasked offer would point the queued targets at whatever content its sender chose.
      if (!state.seedAsked.delete(hostId)) return;
      if (msg.error || !sameFiles(msg.files, stepFiles(state))) return; // a target that cannot re-serve simply is not a seeder
      const seeder: Seeder = {
        serveId: msg.serveId,
        hostId,
        sources: [
          {
            url: msg.url,
            serveId: msg.serveId,
            token: this.token(msg.serveId),
            label: state.labels.get(hostId) ?? '',
            files: msg.files,
          },
        ],
        active: 0,
      };
      state.seeders.add(seeder);
      state.seederOf.set(hostId, seeder);
      this.pump(stepInstanceId);
      return;
    }
    if (state.reoffer.delete(hostId)) {
      this.offeredAgain(state, hostId, msg);
      return;
    }
    if (!state.awaiting.delete(hostId)) return;
    if (msg.error) {
      const now = Date.now();
      for (const path of msg.error.paths.length > 0 ? msg.error.paths : ['']) {
        this.log(logContext(state), {
          mode: 0,
          hostId,
          srcHostId: hostId,
          srcPath: path,
          destHostId: 0,
          destPath: '',
          status: 5,
          size: 0,
          bytes: 0,
          speed: 0,
          at: now,
          state: 'source failed',
          detail: msg.error.message,
        });
      }
      this.failAll(state, SERVE_ERROR_STATUS[msg.error.kind]);
      return;
    }
    state.origin.push({
      url: msg.url,
      serveId: msg.serveId,
      token: this.token(msg.serveId),
      label: state.labels.get(hostId) ?? '',
      files: msg.files,
    });
    if (state.awaiting.size === 0) this.markReady(state);
  }

  /**
   * A source's offer after it came back in a new session: the targets not yet sent go to its new
   * address. Its files must be the ones it offered first; targets that have them already would
   * otherwise differ from the rest, so a source whose files changed or went fails the others.
   */
  private offeredAgain(state: FileState, hostId: number, msg: FilesServed): void {
    const at = state.origin.findIndex((o) => o.serveId === msg.serveId);
    const before = state.origin[at];
    if (!before) return;
    if (msg.error || !sameFiles(msg.files, before.files)) {
      this.services.log.warn(
        { hostId, step: state.view.stepInstanceId, error: msg.error?.message },
        'a file source came back without the files it offered; the targets not yet served fail',
      );
      this.failAll(state, msg.error ? SERVE_ERROR_STATUS[msg.error.kind] : HostStatus.FILE_TRANSFER_FAILED);
      return;
    }
    // Replaced in place: the origin seeder holds this array.
    state.origin[at] = { ...before, url: msg.url, files: msg.files };
    this.pump(state.view.stepInstanceId);
  }

  /**
   * A host of the step's swarm is in a new session: what it offered before is gone with its
   * previous agent process (a reconnect of the same process offers the same again). A source is
   * asked again and holds the origin until it answers; a seeder is dropped and asked to seed anew.
   */
  private rejoined(state: FileState, hostId: number): void {
    if (!targetsLeft(state)) return;
    const serveId = sourceServeId(state.view.stepInstanceId, state.view.executeCount, hostId);
    if (state.origin.some((o) => o.serveId === serveId)) {
      state.reoffer.add(hostId);
      this.askSource(state, hostId);
    }
    const seeder = state.seederOf.get(hostId);
    if (seeder) {
      state.seeders.remove(seeder);
      state.seederOf.delete(hostId);
      // Asked under the same serve id, a reconnected agent that still serves replaces its offer.
      if (state.queue.size > 0) this.askSeed(state, hostId);
    }
  }

  /**
   * Cluster mode: an offer for a step this server does not run goes through the database to the
   * server that does (woken by NOTIFY; its poll picks it up otherwise).
   */
  private relayOffer(stepInstanceId: number, executeCount: number, hostId: number, msg: FilesServed): void {
    const cluster = this.services.cluster;
    if (!cluster) return;
    const attempt = (left: number): void => {
      cluster.store
        .recordOffer({ stepInstanceId, executeCount, hostId, payload: JSON.stringify(msg) })
        .then(() => cluster.notify('f'))
        .catch((err: unknown) => {
          this.services.log.warn({ err, serveId: msg.serveId }, 'file offer not recorded yet');
          if (left > 0) setTimeout(() => attempt(left - 1), 1000).unref();
        });
    };
    attempt(30);
  }

  /**
   * Cluster mode, on the server running file steps: takes the offers other servers recorded for
   * them, and watches the sources it still waits for: one that reconnected anywhere is asked
   * again (offers do not outlive an agent's session), one on no server fails the step's targets.
   */
  async pollCluster(): Promise<void> {
    const cluster = this.services.cluster;
    if (!cluster || this.states.size === 0) return;
    for (const o of await cluster.store.takeOffers([...this.states.keys()])) {
      const state = this.states.get(o.stepInstanceId);
      if (!state || state.view.executeCount !== o.executeCount) continue;
      const msg = JSON.parse(o.payload) as FilesServed;
      const id = parseServeId(msg.serveId);
      if (id?.hostId === o.hostId) this.offered(state, o.hostId, msg, id.kind);
    }
    // The sources still awaited, and those that offered while targets remain (a new session of
    // one means its offer is gone with its previous agent process).
    const watched = new Map<FileState, number[]>();
    for (const state of this.states.values()) {
      const hosts = [...state.awaiting, ...(targetsLeft(state) ? originHosts(state) : [])];
      if (hosts.length > 0) watched.set(state, hosts);
    }
    if (watched.size === 0) return;
    const sessions = await cluster.store.sessions([...new Set([...watched.values()].flat())]);
    const dbNow = await cluster.store.now();
    const { heartbeatTimeoutMs, clusterAgentGraceMs } = this.services.config;
    for (const [state, hosts] of watched) {
      for (const hostId of hosts) {
        const waitedFor = state.awaiting.has(hostId) || state.reoffer.has(hostId);
        const s = sessions.get(hostId);
        if (s?.state === 'connected' && s.serverState === 'alive') {
          const asked = state.askedEpochs.get(hostId);
          state.askedEpochs.set(hostId, s.epoch);
          if (asked === undefined || asked === s.epoch) continue;
          if (state.awaiting.has(hostId)) this.askSource(state, hostId);
          else this.rejoined(state, hostId);
          continue;
        }
        if (!waitedFor || Date.now() - state.since <= heartbeatTimeoutMs) continue;
        if (!agentAway(s, dbNow, heartbeatTimeoutMs, clusterAgentGraceMs)) continue;
        this.services.log.warn(
          { hostId, step: state.view.stepInstanceId },
          'file source on no server; the targets fail',
        );
        state.awaiting.delete(hostId);
        state.reoffer.delete(hostId);
        this.failAll(state, HostStatus.FILE_TRANSFER_ERROR);
      }
    }
  }

  /** Every target that has not finished fails (a source is missing or unreachable). */
  private failAll(state: FileState, status: number): void {
    state.queue.clear();
    for (const t of state.view.tasks.values()) {
      if (t.status === HostStatus.WAITING) this.hooks.failTarget(state.view.stepInstanceId, t.hostId, status);
    }
  }

  /** A source host's agent went silent before it offered its files. */
  agentLost(hostId: number): void {
    for (const state of this.states.values()) {
      if (state.awaiting.delete(hostId) || state.reoffer.delete(hostId))
        this.failAll(state, HostStatus.FILE_TRANSFER_ERROR);
    }
  }

  /** A source that reconnects is asked again (offers do not survive an agent restart). */
  agentWelcomed(hostId: number): void {
    for (const state of this.states.values()) {
      if (state.awaiting.has(hostId)) this.askSource(state, hostId);
      // In a cluster the step's server learns of a new session from the store (pollCluster).
      else if (!this.services.cluster) this.rejoined(state, hostId);
      if (state.queue.size > 0) this.pump(state.view.stepInstanceId);
    }
  }

  progress(hostId: number, msg: FileProgress): void {
    const [stepText, countText] = msg.key.split(':');
    const state = this.states.get(Number(stepText));
    // Only a target of this step execution reports its downloads.
    if (!state || state.view.executeCount !== Number(countText) || !state.view.tasks.has(hostId)) return;
    this.logProgress(logContext(state), hostId, msg);
  }

  /**
   * Cluster mode: progress of a target whose agent is held here while another server runs the
   * step (the caller checked the task is one relayed here). The file logs are written here.
   */
  relayedProgress(hostId: number, msg: FileProgress): void {
    const [stepText, countText] = msg.key.split(':');
    // Chained per host, so reports are logged in the order they came (the last one stands).
    const logged = (this.relayedLogs.get(hostId) ?? Promise.resolve())
      .then(() => this.remoteContext(Number(stepText), Number(countText), hostId, msg.label))
      .then((ctx) => ctx && this.logProgress(ctx, hostId, msg))
      .catch((err: unknown) => this.services.log.warn({ err, key: msg.key }, 'file progress not logged'));
    this.relayedLogs.set(hostId, logged);
    void logged.then(() => {
      if (this.relayedLogs.get(hostId) === logged) this.relayedLogs.delete(hostId);
    });
  }

  /**
   * Cluster mode: the file logs of a target held here are stored before its result is, so that a
   * client that sees the step finished (on any server) reads its file logs too.
   */
  async relayedLogsStored(hostId: number): Promise<void> {
    await this.relayedLogs.get(hostId);
    await this.logsStored();
  }

  /** Labels of a step run elsewhere: its sources and the hosts its targets download from. */
  private async remoteContext(
    stepInstanceId: number,
    executeCount: number,
    targetId: number,
    sourceLabel: string,
  ): Promise<LogContext | undefined> {
    const key = `${stepInstanceId}:${executeCount}`;
    let ctx = this.remote.get(key);
    if (!ctx) {
      const step = await this.services.store.executions.getStep(stepInstanceId);
      const spec = step && parseStepSpec(step.spec);
      if (spec?.kind !== 'file') return undefined;
      ctx = { stepInstanceId, executeCount, labels: new HostLabels() };
      for (const src of spec.sources)
        for (const h of src.hosts) ctx.labels.set(h.hostId, `${h.cloudId}:${h.ip}`);
      this.remote.set(key, ctx);
      // Kept for a while after the step's last report here; a handful of entries at most.
      if (this.remote.size > 256) this.remote.delete(this.remote.keys().next().value as string);
    }
    const wanted: number[] = ctx.labels.has(targetId) ? [] : [targetId];
    const m = /^(\d+):(.+)$/.exec(sourceLabel);
    const inv = this.services.store.inventory;
    const hosts = [
      ...(await inv.getHostsByIds(wanted)),
      ...(m && ctx.labels.hostOf(sourceLabel) === undefined
        ? await inv.getHostsByCloudIps([{ cloudId: Number(m[1]), ip: m[2] ?? '' }])
        : []),
    ];
    for (const h of hosts) ctx.labels.set(h.id, `${h.cloud_id}:${h.ip}`);
    return ctx;
  }

  private logProgress(ctx: LogContext, hostId: number, msg: FileProgress): void {
    const srcHostId = ctx.labels.hostOf(msg.label) ?? 0;
    const status = msg.status === 'finished' ? 4 : msg.status === 'failed' ? 5 : 3;
    const base = {
      srcHostId,
      srcPath: msg.sourcePath,
      destHostId: hostId,
      destPath: msg.targetPath,
      size: msg.size,
      bytes: msg.bytes,
      speed: msg.speed,
      at: Date.now(),
      detail: msg.message,
    };
    this.log(ctx, {
      ...base,
      mode: 1,
      hostId,
      status,
      state:
        msg.status === 'downloading'
          ? 'downloading'
          : `download ${msg.status === 'finished' ? 'success' : 'failed'}`,
    });
    this.log(ctx, {
      ...base,
      mode: 0,
      hostId: srcHostId,
      status: status === 3 ? 2 : status,
      state:
        msg.status === 'downloading'
          ? 'uploading'
          : `upload ${msg.status === 'finished' ? 'success' : 'failed'}`,
    });
  }

  /** A target finished: free its seeder slot, and let it seed when the swarm is on. */
  targetDone(stepInstanceId: number, hostId: number, success: boolean): void {
    const state = this.states.get(stepInstanceId);
    if (!state) return;
    const seeder = state.assigned.get(hostId);
    if (seeder) {
      state.seeders.free(seeder);
      state.assigned.delete(hostId);
    }
    if (success && Number.isFinite(state.slotLimit) && state.queue.size > 0) this.askSeed(state, hostId);
    this.pump(stepInstanceId);
  }

  /** Asks a target that received every file to offer them to the targets still queued. */
  private askSeed(state: FileState, hostId: number): void {
    const serveId = seedServeId(state.view.stepInstanceId, state.view.executeCount, hostId);
    state.seedAsked.add(hostId);
    const spec = state.view.spec;
    const files = stepFiles(state);
    const dir = spec.targetPath.endsWith('/') ? spec.targetPath : `${spec.targetPath}/`;
    const entries = files.map((f) => ({
      path: `${dir}${files.length === 1 && spec.targetName ? spec.targetName : f.relPath}`,
      relPath: f.relPath,
    }));
    this.services.hub.send(hostId, {
      v: PROTOCOL_VERSION,
      type: 'file.serve',
      serveId,
      entries,
      user: spec.account.osUser,
      token: this.token(serveId),
      rateLimitBytes: 0,
    });
  }

  /** The step is over: offers are withdrawn and logs written. */
  async release(stepInstanceId: number): Promise<void> {
    const state = this.states.get(stepInstanceId);
    if (!state) return;
    this.states.delete(stepInstanceId);
    await this.services.cluster?.store.takeOffers([stepInstanceId]).catch(() => undefined);
    const { view } = state;
    for (const s of view.spec.sources) {
      for (const h of s.hosts)
        this.services.hub.send(h.hostId, {
          v: PROTOCOL_VERSION,
          type: 'file.unserve',
          serveId: sourceServeId(view.stepInstanceId, view.executeCount, h.hostId),
        });
    }
    for (const seeder of state.seeders) {
      if (seeder.hostId !== null)
        this.services.hub.send(seeder.hostId, {
          v: PROTOCOL_VERSION,
          type: 'file.unserve',
          serveId: seeder.serveId,
        });
    }
    await this.logsStored();
  }

  private log(
    ctx: LogContext,
    e: {
      mode: 0 | 1;
      hostId: number;
      srcHostId: number;
      srcPath: string;
      destHostId: number;
      destPath: string;
      status: number;
      size: number;
      bytes: number;
      speed: number;
      at: number;
      state: string;
      detail: string;
    },
  ): void {
    const row: FileLog = {
      step_instance_id: ctx.stepInstanceId,
      execute_count: ctx.executeCount,
      host_id: e.hostId,
      mode: e.mode,
      src_host_id: e.srcHostId,
      src_label: ctx.labels.get(e.srcHostId) ?? (e.srcHostId === 0 ? 'server' : ''),
      src_path: e.srcPath,
      dest_host_id: e.destHostId,
      dest_label: ctx.labels.get(e.destHostId) ?? '',
      dest_path: e.destPath,
      status: e.status,
      size: e.size,
      bytes: e.bytes,
      speed: Math.round(e.speed),
      content: fileLogLine({
        at: e.at,
        path: e.mode === 1 ? e.destPath : e.srcPath,
        size: e.size,
        bytes: e.bytes,
        speed: e.speed,
        state: e.state,
        detail: e.detail,
      }),
      updated_at: e.at,
    };
    this.logBuffer.set(
      [
        row.step_instance_id,
        row.execute_count,
        row.host_id,
        row.mode,
        row.src_label,
        row.src_path,
        row.dest_label,
        row.dest_path,
      ].join('\u0000'),
      row,
    );
    this.logTimer ??= setTimeout(() => void this.logsStored(), 200);
  }

  /**
   * Resolves once every file log line logged so far is stored: a target's result waits for it,
   * so a client that sees the step finished reads its file logs too (and its sources').
   */
  logsStored(): Promise<void> {
    if (this.logBuffer.size === 0) return this.flushed;
    clearTimeout(this.logTimer);
    this.logTimer = undefined;
    // Every target's result waits for its logs. The write starts once the messages already
    // read are handled (setImmediate) and takes every line logged until then: the targets that
    // reported together share one commit, rather than one commit each.
    if (this.nextFlush) return this.nextFlush;
    const next = this.flushed.then(afterIo).then(() => {
      this.nextFlush = undefined;
      const rows = [...this.logBuffer.values()];
      this.logBuffer = new Map();
      return this.services.store.files
        .upsertFileLogs(rows)
        .then((refused) => {
          for (const r of refused)
            this.services.log.error(
              { step: r.step_instance_id, host: r.host_id, path: r.src_path.slice(0, 200) },
              'a file log the store refused is dropped',
            );
        })
        .catch((err: unknown) => this.services.log.error({ err }, 'writing file logs failed'));
    });
    this.nextFlush = next;
    this.flushed = next;
    return next;
  }
}
