/**
 * This server as one member of a cluster on one PostgreSQL database (cluster mode only).
 *
 * - Liveness: a fresh `server_node` row per process start, renewed every heartbeat on the
 *   database clock. A heartbeat that finds the row dead means others took this server's work:
 *   it stops at once (the process exits; a supervisor starts a new one with a new id).
 * - Self-fence: without a successful heartbeat for `clusterSelfFenceMs` it answers /healthz 503
 *   and drops its agents (so they move), before anyone may declare it dead.
 * - Sweeper: marks silent servers dead, but only while its own heartbeats succeed and it has
 *   been connected for a dead-after period (after a PostgreSQL restart every row looks old).
 * - Takeover: claims unfinished jobs of dead servers and carries them on from the store.
 * - Delivery: messages for agents go through the `agent_command` outbox; the server holding an
 *   agent's session sends them (pulled every `clusterPollMs`, sooner when NOTIFY wakes it).
 * Correctness never rests on local belief: the fence trigger refuses writes of a dead server,
 * and results carry their agent session's epoch.
 */
import { sql } from 'kysely';
import pg from 'pg';
import type { ServerMessage } from '@jobfleet/protocol';
import { parseTaskKey } from '@jobfleet/protocol';
import type { Services } from '../services.js';
import { AWAY_FULL_SWEEP_MS, ClusterStore } from './cluster-store.js';
import { SessionBatch } from './session-batch.js';
import { startHourlyPrune } from '../hourly-prune.js';
import type { ClaimedCommand, NewCommand } from './cluster-store.js';

const CHANNEL = 'jobfleet_cluster';
const COMMAND_PURPOSE = 'agent-command';
/** Messages for agents that go through the outbox (anything else is an answer on the socket). */
export const RELAYED_TYPES = new Set([
  'task.run',
  'task.kill',
  'task.download',
  'file.serve',
  'file.unserve',
]);
const CLAIM_BATCH = 500;
const TAKEOVER_BATCH = 50;
/** How often each server looks for callbacks lost with servers that died (see sweep). */
const LOST_CALLBACK_LOOK_MS = 10 * 60_000;
/** What a poll does: claim commands for agents held here, the owner's full check, recount steps. */
interface Wake {
  claim?: boolean;
  full?: boolean;
  steps?: number[];
}
const EVERYTHING: Wake = { claim: true, full: true };
/** NOTIFY payloads stay well below PostgreSQL's 8000 bytes. */
const NAMED_PAYLOAD_MAX = 4000;

export class ClusterNode {
  readonly store: ClusterStore;
  private readonly sessions: SessionBatch;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastBeatOk = performance.now();
  /** Since when heartbeats succeed without a failure in between. */
  private okSince = performance.now();
  private beatFailing = false;
  private fencedForGood = false;
  private draining = false;
  private stopped = false;
  private listener: pg.Client | undefined;
  private outbox: NewCommand[] = [];
  private leftovers: { stop(): void } | undefined;
  private flushing = false;
  private ticking = false;
  private tickAgain = false;
  private pending = { claim: false, full: false, steps: new Set<number>() };
  private sweeping = false;
  /** Servers were marked dead and the callbacks their jobs lost are not looked for yet. */
  private lostCallbacksToFind = false;
  private lastLostCallbackLook = performance.now();
  /** Called once when this server learns it was declared dead. */
  onFenced: () => void = () => undefined;
  /** Called once when an operator asked this server to drain (it should close and exit). */
  onDrainRequested: () => void = () => undefined;
  private drainRequested = false;
  private lastStatusSweep = 0;
  /** Undefined until the first full status sweep of this process succeeded. */
  private lastFullStatusSweep: number | undefined;

  constructor(
    private readonly services: Services,
    private readonly databaseUrl: string,
    readonly id: string,
  ) {
    this.store = new ClusterStore(services.store.db);
    this.sessions = new SessionBatch(
      (hostIds) => this.store.openSessions(hostIds, this.id),
      (epochs) => this.notifyAll([...epochs].map(([hostId, epoch]) => `s:${hostId}:${epoch}`)),
    );
  }

  /**
   * A new session for an agent that said hello here (its epoch, committed); the other servers
   * are told, so one still holding an older connection of the host closes it.
   */
  openSession(hostId: number): Promise<number> {
    return this.sessions.open(hostId);
  }

  private get config() {
    return this.services.config;
  }

  private every(ms: number, fn: () => Promise<void> | void): void {
    const t = setInterval(() => void fn(), ms);
    t.unref();
    this.timers.push(t);
  }

  /** Joins the cluster; heartbeats start at once (the rest of the start may take a while). */
  async register(url: string): Promise<void> {
    await this.store.register(this.id, url);
    this.lastBeatOk = this.okSince = performance.now();
    this.every(this.config.clusterHeartbeatMs, () => this.beat());
    this.services.log.info({ serverId: this.id }, 'cluster member registered');
  }

  /** Starts sweeping, polling and listening (once the server accepts agents and calls). */
  start(): void {
    const every = this.every.bind(this);
    every(this.config.clusterSweepMs, () => this.sweep());
    every(this.config.clusterPollMs, () => this.wake());
    every(Math.max(50, Math.floor(this.config.clusterSelfFenceMs / 4)), () => this.checkSelfFence());
    // The other servers' schedulers read their crons again only when told of a change.
    this.services.store.crons.afterWrite = () => this.notify('k');
    void this.listen();
    this.wake();
    void this.sweep();
    // A day is longer than any step may run (its timeout is at most 86,400 s).
    this.leftovers = startHourlyPrune({
      what: 'cluster leftovers (agent commands, file offers, request claims, dead servers)',
      retentionDays: 1,
      prune: (before) => this.store.pruneLeftovers(before),
      log: this.services.log,
    });
  }

  /** Why this server must not be sent work now (undefined: healthy as a member). */
  unhealthy(): string | undefined {
    if (this.fencedForGood) return 'fenced: declared dead by the cluster';
    if (this.draining) return 'draining';
    if (this.selfFenced()) return 'fenced: no heartbeat reached PostgreSQL';
    return undefined;
  }

  selfFenced(): boolean {
    return this.fencedForGood || performance.now() - this.lastBeatOk > this.config.clusterSelfFenceMs;
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const state = await this.store.heartbeat(this.id);
      if (state === 'dead') return this.fence();
      if (state === 'drain') this.drainAsked();
      const now = performance.now();
      if (this.beatFailing) {
        this.beatFailing = false;
        this.okSince = now;
        this.services.log.info('cluster heartbeat reaches PostgreSQL again');
        void this.listen();
      }
      this.lastBeatOk = now;
    } catch (err) {
      if (!this.beatFailing) this.services.log.warn({ err }, 'cluster heartbeat failed');
      this.beatFailing = true;
    }
  }

  private drainAsked(): void {
    if (this.drainRequested || this.draining) return;
    this.drainRequested = true;
    this.services.log.warn({ serverId: this.id }, 'drain requested: leaving the cluster');
    this.onDrainRequested();
  }

  private fence(): void {
    if (this.fencedForGood) return;
    this.fencedForGood = true;
    this.services.log.error(
      { serverId: this.id },
      'this server was declared dead by the cluster; stopping (its jobs were taken over)',
    );
    this.stop();
    // Its agents move to a live server now, not once the stop reaches the agent links.
    this.services.hub.dropAll('server declared dead');
    this.onFenced();
  }

  private wasSelfFenced = false;
  private checkSelfFence(): void {
    const fenced = this.selfFenced();
    if (fenced && !this.wasSelfFenced) {
      this.services.log.error('no cluster heartbeat within the self-fence time; dropping agents');
      this.services.hub.dropAll('server fenced');
    }
    this.wasSelfFenced = fenced;
  }

  /** Marks silent servers dead and takes over orphaned jobs. */
  private async sweep(): Promise<void> {
    if (this.stopped || this.sweeping || this.draining) return;
    this.sweeping = true;
    try {
      const now = performance.now();
      const trusted =
        !this.beatFailing &&
        now - this.lastBeatOk < 2 * this.config.clusterHeartbeatMs + 100 &&
        now - this.okSince >= this.config.clusterDeadAfterMs;
      if (trusted) {
        const dead = await this.store.markSilentDead(this.config.clusterDeadAfterMs);
        if (dead.length > 0) {
          this.services.log.warn({ servers: dead }, 'servers marked dead');
          this.lostCallbacksToFind = true;
        }
        // Until a look succeeds: the next sweeps mark no one, and would not look again. Every
        // server also looks now and then: the one that marked a server dead may die itself
        // before its look.
        if (this.lostCallbacksToFind || now - this.lastLostCallbackLook >= LOST_CALLBACK_LOOK_MS) {
          await this.services.engine.announceLostCallbacks();
          this.lostCallbacksToFind = false;
          this.lastLostCallbackLook = now;
        }
      }
      if (this.selfFenced()) return;
      if (now - this.lastStatusSweep >= this.config.heartbeatIntervalMs) {
        this.lastStatusSweep = now;
        const full =
          this.lastFullStatusSweep === undefined || now - this.lastFullStatusSweep >= AWAY_FULL_SWEEP_MS;
        const away = await this.store.markAwayAgentsAbnormal(this.config.heartbeatTimeoutMs, { full });
        if (full) this.lastFullStatusSweep = now;
        if (away.length > 0) this.services.log.warn({ hosts: away }, 'agents on no server marked abnormal');
      }
      const jobs = await this.store.claimOrphans(this.id, TAKEOVER_BATCH);
      if (jobs.length > 0) {
        this.services.log.info({ jobs }, 'took over jobs of servers gone');
        for (const id of jobs) await this.services.engine.adopt(id);
      }
      // Two operations received at once by two servers each take the job; the one that took it
      // last owns it, though the other may be the one that ran the operation (and drops the job
      // at its next poll). The owner carries on with what it owns and does not run.
      await this.services.engine.adoptIdle(await this.store.ownedInFlight(this.id));
    } catch (err) {
      this.services.log.warn({ err }, 'cluster sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  // ---------------------------------------------------------------- wake-ups

  private async listen(): Promise<void> {
    if (this.stopped) return;
    const old = this.listener;
    this.listener = undefined;
    old?.removeAllListeners();
    void old?.end().catch(() => undefined);
    const client = new pg.Client({ connectionString: this.databaseUrl });
    client.on('error', () => undefined);
    client.on('end', () => {
      if (this.listener !== client || this.stopped) return;
      this.listener = undefined;
      // Re-listen shortly; the poll backstop covers what is missed meanwhile.
      setTimeout(() => void this.listen(), this.config.clusterPollMs).unref();
    });
    client.on('notification', (n) => this.onNotification(n.payload ?? ''));
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
      this.listener = client;
      // Whatever was said while nobody listened is not heard again.
      this.services.store.crons.changedElsewhere();
      this.wake();
    } catch {
      void client.end().catch(() => undefined);
      setTimeout(() => void this.listen(), this.config.clusterPollMs).unref();
    }
  }

  private onNotification(payload: string): void {
    const moved = /^s:(\d+):(\d+)$/.exec(payload);
    if (moved) {
      this.services.hub.closeStale(Number(moved[1]), Number(moved[2]));
      return;
    }
    if (payload.startsWith('d:')) {
      if (payload === `d:${this.id}`) void this.beat();
      return;
    }
    if (payload === 'k') {
      this.services.store.crons.changedElsewhere();
      return;
    }
    const named = /^([cr]):([\d,]+)$/.exec(payload);
    if (named) {
      const ids = (named[2] ?? '').split(',').map(Number);
      // Commands for hosts held elsewhere, results of steps run elsewhere: nothing to do here.
      if (named[1] === 'c') {
        if (ids.some((h) => this.services.hub.isConnected(h))) this.wake({ claim: true });
      } else this.wake({ steps: ids });
      return;
    }
    if (payload === 'c') this.wake({ claim: true });
    else this.wake();
  }

  /**
   * Tells every server something changed: 'c' commands, 'r' results, 'j' job state, 'f' file
   * offers, 's:host:epoch' a session moved, 'd:server' a drain was asked, 'k' crons.
   */
  notify(payload: string): void {
    void sql`select pg_notify(${CHANNEL}, ${payload})`.execute(this.services.store.db).catch(() => undefined);
  }

  /** Several notifications in one statement (each delivered on its own). */
  private notifyAll(payloads: string[]): void {
    if (payloads.length === 0) return;
    void sql`select pg_notify(${CHANNEL}, p) from unnest(${payloads}::text[]) as p`
      .execute(this.services.store.db)
      .catch(() => undefined);
  }

  /**
   * 'c' naming the hosts whose commands wait (only their holders claim) or 'r' naming the steps
   * whose results were recorded (only their owners recount them); plain when the list is long.
   */
  notifyIds(kind: 'c' | 'r', ids: Iterable<number>): void {
    const list = [...ids].join(',');
    this.notify(list.length > 0 && list.length <= NAMED_PAYLOAD_MAX ? `${kind}:${list}` : kind);
  }

  /**
   * Runs a poll soon (coalesced). Without arguments everything: commands for the agents held
   * here and the owner's checks of its jobs; otherwise only what a wake-up named.
   */
  wake(what: Wake = EVERYTHING): void {
    if (this.stopped) return;
    if (what.claim) this.pending.claim = true;
    if (what.full) this.pending.full = true;
    for (const id of what.steps ?? []) this.pending.steps.add(id);
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    setImmediate(() => {
      void this.tick().finally(() => {
        this.ticking = false;
        if (this.tickAgain) {
          this.tickAgain = false;
          this.wake({});
        }
      });
    });
  }

  private async tick(): Promise<void> {
    const { claim, full, steps } = this.pending;
    this.pending = { claim: false, full: false, steps: new Set() };
    if (this.selfFenced()) return;
    try {
      // Hosts not ready here are left out of the next claims of this tick: a full batch of
      // theirs would otherwise be claimed and unclaimed again at once, over and over.
      const notReady = new Set<number>();
      while (claim) {
        const claimed = await this.store.claimCommands(this.id, CLAIM_BATCH, [...notReady]);
        for (const hostId of await this.deliver(claimed)) notReady.add(hostId);
        if (claimed.length < CLAIM_BATCH) break;
      }
      if (full) await this.services.engine.refresh();
      else if (steps.size > 0) await this.services.engine.recountSteps(steps);
    } catch (err) {
      this.services.log.warn({ err }, 'cluster poll failed');
    }
  }

  /** Sends claimed commands; the hosts whose agents were not ready for theirs. */
  private async deliver(claimed: ClaimedCommand[]): Promise<number[]> {
    const done: number[] = [];
    /** Tasks for a session that is not ready here: the claim marked them sent, but they were not. */
    const unsent: ClaimedCommand[] = [];
    for (const c of claimed) {
      const isTask = c.stepInstanceId !== null;
      // A task already over needs no message any more.
      if (isTask && (c.taskStatus === null || (c.taskStatus !== 5 && c.taskStatus !== 7))) {
        done.push(c.id);
        continue;
      }
      let text: string;
      try {
        text = this.services.secretBox.open(c.payload, COMMAND_PURPOSE);
      } catch (err) {
        this.services.log.error(
          { err: (err as Error).message, command: c.id },
          'agent command does not open',
        );
        done.push(c.id);
        continue;
      }
      const msg = JSON.parse(text) as ServerMessage;
      if (isTask && 'key' in msg && typeof msg.key === 'string') {
        this.services.engine.relaying(msg.key, c.taskStatus ?? 5, c.logBytes ?? 0);
      }
      const sent = this.services.hub.deliver(c.hostId, c.epoch, msg);
      // Unsent (claimed between the agent's session commit and its welcome): kept for the claim
      // after the welcome. A file offer request dropped so would leave its step waiting forever.
      if (!sent) {
        unsent.push(c);
        // Or held here under an older session than the one the command is for: the session moved
        // on without this server hearing, and the agent would never get its commands. Dropped,
        // it opens a current session.
        this.services.hub.closeStale(c.hostId, c.epoch);
      } else if (!isTask) done.push(c.id);
    }
    await this.store.deleteCommands(done);
    // An agent that said hello is claimed for once it is ready (agentWelcomed); a claim between
    // its session's commit and then took its tasks under that session without sending them.
    await this.store.unclaimCommands(unsent);
    if (unsent.some((c) => this.services.hub.deliverable(c.hostId, c.epoch))) this.wake({ claim: true });
    return unsent.map((c) => c.hostId);
  }

  // ---------------------------------------------------------------- the outbox

  /**
   * Records a message for an agent. `sentEpoch` is the session it was just sent on by this
   * server, or null when the agent is elsewhere (its holder sends it).
   */
  record(hostId: number, msg: ServerMessage, sentEpoch: number | null): void {
    const key = 'key' in msg && typeof msg.key === 'string' ? parseTaskKey(msg.key) : undefined;
    this.outbox.push({
      hostId,
      type: msg.type,
      stepInstanceId: key?.stepInstanceId ?? null,
      executeCount: key?.executeCount ?? null,
      payload: this.services.secretBox.seal(JSON.stringify(msg), COMMAND_PURPOSE),
      sentEpoch,
    });
    if (!this.flushing) setImmediate(() => void this.flushOutbox());
  }

  private async flushOutbox(): Promise<void> {
    if (this.flushing || this.outbox.length === 0) return;
    this.flushing = true;
    const rows = this.outbox;
    this.outbox = [];
    try {
      await this.store.enqueue(rows);
      const elsewhere = new Set(rows.filter((r) => r.sentEpoch === null).map((r) => r.hostId));
      if (elsewhere.size > 0) this.notifyIds('c', elsewhere);
    } catch (err) {
      if (!this.stopped) {
        this.services.log.warn({ err }, 'agent commands not stored yet; retrying');
        this.outbox = [...rows, ...this.outbox];
        setTimeout(() => void this.flushOutbox(), 500).unref();
      }
    } finally {
      this.flushing = false;
      if (this.outbox.length > 0) setImmediate(() => void this.flushOutbox());
    }
  }

  /** Makes the commands recorded so far durable. */
  async flush(): Promise<void> {
    while (this.flushing) await new Promise((r) => setTimeout(r, 10));
    await this.flushOutbox();
  }

  // ---------------------------------------------------------------- stopping

  /** Graceful: 503 first, jobs back to the pool, row dead; the caller then closes the agents. */
  async drain(): Promise<void> {
    if (this.draining || this.fencedForGood) return;
    this.draining = true;
    await this.services.engine.flush().catch(() => undefined);
    await this.flush().catch(() => undefined);
    try {
      await this.store.retire(this.id);
      this.services.log.info({ serverId: this.id }, 'left the cluster; jobs handed over');
    } catch (err) {
      this.services.log.warn(
        { err },
        'could not hand jobs over; they are taken over after the dead-after time',
      );
    }
    this.stop();
  }

  stop(): void {
    this.stopped = true;
    this.leftovers?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    const l = this.listener;
    this.listener = undefined;
    void l?.end().catch(() => undefined);
  }
}
