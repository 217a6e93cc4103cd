/**
 * The agent's connection loop, a state machine:
 *
 *   idle --start--> registering --token--> connecting --open--> greeting --welcome--> ready
 *   connecting/greeting/ready --close or error--> backoff --delay--> connecting
 *   connecting --401--> registering (the stored token was refused: register again)
 *   any --stop--> stopped
 *
 * It has one connection to a server at a time, to one entry of its server list (see
 * server-list.ts): every lost connection, refused handshake or silent server moves it to the
 * next entry, and an agent away from the entry it started at goes back once that one answers
 * again and the agent holds no task (see RETURN_HOME_MS). Backoff is exponential with full
 * jitter (random delay in [0, min(cap, base * 2^attempt)]), so a fleet that lost its server
 * does not reconnect in one wave; the attempt count resets only when a welcomed connection ends
 * after it held for a while (STABLE_CONNECTION_MS), so neither a list of dead servers nor a
 * server that welcomes and then drops every connection at once (overloaded, misconfigured) is
 * hammered by a reconnect loop.
 * Tasks keep running in any state; their output and results are spooled on disk and resent
 * after the next welcome, to whichever server gives it.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import os from 'node:os';
import type WebSocketClass from 'ws';
import {
  AGENT_LINK_PATH,
  AGENT_REGISTER_PATH,
  PROTOCOL_VERSION,
  encodeOutputFrame,
  parseRegisterResponse,
  parseServerMessage,
} from '@jobfleet/protocol/agent';
import type { AgentMessage, HostFacts, ServerMessage } from '@jobfleet/protocol';
import type { FileProgress, FilesServed } from '@jobfleet/protocol';
import { clearIdentity, loadIdentity, saveIdentity } from './identity.js';
import { postJson, serverHealthy } from './http-request.js';
import type { Identity } from './identity.js';
import type { TaskReports, TaskRunnerPort } from './task-runner-api.js';
import { ServerList } from './server-list.js';
import { ReportHold } from './report-hold.js';

/**
 * `ws` is CommonJS. Imported as ESM, its eight files (118 KB of source) are scanned for their
 * exports by Node's lexer, which gets hot enough to be optimized while the agent starts: an idle
 * agent was 5 MiB larger for it (what the optimizing compiler allocated stays with the process).
 * Required, nothing is scanned.
 */
const WebSocket = createRequire(import.meta.url)('ws') as typeof WebSocketClass;
type WebSocket = WebSocketClass;

export type AgentState = 'idle' | 'registering' | 'connecting' | 'greeting' | 'ready' | 'backoff' | 'stopped';

export interface AgentOptions {
  /** One base URL, or the servers of a cluster (a list, or one string with commas). */
  serverUrl: string | readonly string[];
  bootstrapToken: string;
  host: HostFacts;
  bizId?: number;
  stateDir: string;
  version?: string;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** How long the welcome may take after the handshake (default WELCOME_TIMEOUT_MS). */
  welcomeTimeoutMs?: number;
  /** How long a welcomed connection must hold for the backoff to start over (default STABLE_CONNECTION_MS). */
  stableConnectionMs?: number;
  /** How long after a welcome away from its home entry it first checks home (default RETURN_HOME_MS; 0: never). */
  returnHomeMs?: number;
  /** Source address of the agent's connections (default: the system's choice). */
  localAddress?: string;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Builds the task runner; given the reporter that sends results when connected, and the servers. */
  createRunner: (reports: TaskReports, servers: ServerList) => TaskRunnerPort;
}

export const AGENT_VERSION = '0.1.0';

/** With the default 5 s heartbeat, 20 s of silence: inside the server's 30 s window. */
const MAX_UNANSWERED_PINGS = 4;
/**
 * How long after the handshake the welcome may take: a reconnect storm's hellos are answered in
 * batches, well within this; a server that never answers is left for the next one.
 */
const WELCOME_TIMEOUT_MS = 60_000;
/**
 * A connection that held this long after its welcome was a working one: the next reconnect
 * starts from the shortest backoff again. One that ended sooner counts as another failed attempt.
 */
const STABLE_CONNECTION_MS = 10_000;
/**
 * The longest wait after a refused connection (nothing listened at the address: the server is
 * restarting or stopped). A refusal is answered by the server's kernel and costs its process
 * nothing, so it neither waits the grown backoff nor grows it: with the full backoff, a fleet
 * whose server restarted in a few seconds took 20-30 s to be back (the refusals meanwhile had
 * grown its waits to 8 and 16 s), and a job on every host waited for the last one; counted as
 * attempts, they made the first 503 of the server's reconnect storm cost the agents that got
 * it 30 s.
 */
const REFUSED_CAP_MS = 2_000;
/**
 * An agent of a list that moved on from the entry it started at (its home) checks, at a random
 * time between half and one and a half of this after its welcome, whether home answers
 * `/healthz` again, and moves back when it does and it holds no task. Without it a cluster whose
 * servers were restarted one by one (an upgrade) had the whole fleet on one server: each
 * restart moved the stopped server's agents to the next one, and none ever left. Each failed
 * check doubles the wait (up to 32 times), so a server gone for good costs its agents a request
 * every half hour or so.
 */
const RETURN_HOME_MS = 60_000;
const MAX_HOME_CHECK_DOUBLINGS = 5;
const HOME_CHECK_TIMEOUT_MS = 5_000;

class RegistrationRefused extends Error {}

export class Agent extends EventEmitter {
  state: AgentState = 'idle';
  hostId: number | undefined;
  private ws: WebSocket | undefined;
  private attempt = 0;
  /** When the current connection was welcomed (undefined: not welcomed yet). */
  private welcomedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Ends a connection whose welcome does not come (see connect). */
  private greeting: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Pings sent since the server last showed it is alive (a pong or any message). */
  private unansweredPings = 0;
  /** The server sent something since the last heartbeat tick: it is alive without a ping. */
  private heard = false;
  private identity: Identity | undefined;
  /** The server said it takes output as binary frames. */
  private binaryOutput = false;
  /** Set while the server takes `task.report` messages: holds the first reports of each task. */
  private hold: ReportHold | undefined;
  /** The server counts our pings as heartbeats: no `heartbeat` message needed. */
  private pingHeartbeat = false;
  /** The last attempt was refused (see REFUSED_CAP_MS). */
  private refused = false;
  /** Refusals are logged once until the next welcome: one a second otherwise while a server is down. */
  private refusalLogged = false;
  /** The next check of the home entry while away from it (see RETURN_HOME_MS). */
  private homeTimer: NodeJS.Timeout | undefined;
  /** Checks of home that failed since the agent was last welcomed there (a return not welcomed counts). */
  private homeChecksFailed = 0;
  /** Moving back home, not welcomed there yet. */
  private returning = false;
  readonly runner: TaskRunnerPort;
  readonly servers: ServerList;

  constructor(private readonly opts: AgentOptions) {
    super();
    this.servers = ServerList.parse(opts.serverUrl);
    this.runner = opts.createRunner(
      {
        started: (key, startTime) =>
          this.hold ? this.hold.started(key, startTime) : this.sendStarted(key, startTime),
        spawned: (key) => this.hold?.spawned(key),
        output: (key, offset, data) =>
          this.hold ? this.hold.output(key, offset, data) : this.sendOutput(key, offset, data),
        finished: (msg) =>
          this.hold
            ? this.hold.finished(msg)
            : this.send({ v: PROTOCOL_VERSION, type: 'task.finished', ...msg }),
        fileProgress: (msg) => {
          // Held with the download's start while it is held (see report-hold.ts); else sent
          // after what its hold had, as without a hold.
          if (this.hold?.file(msg)) return;
          this.send({ v: PROTOCOL_VERSION, type: 'task.file', ...msg });
        },
        served: (msg) => this.send({ v: PROTOCOL_VERSION, type: 'file.served', ...msg }),
        backlog: () => this.backlog(),
      },
      this.servers,
    );
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.identity = loadIdentity(this.opts.stateDir);
    void this.connectOrRegister();
  }

  /** Resolves when the agent reaches `state` (tests await this instead of sleeping). */
  waitFor(state: AgentState, timeoutMs = 10_000): Promise<void> {
    if (this.state === state) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('state', on);
        reject(new Error(`agent did not reach ${state} within ${timeoutMs} ms (now ${this.state})`));
      }, timeoutMs);
      const on = (s: AgentState) => {
        if (s !== state) return;
        clearTimeout(t);
        this.off('state', on);
        resolve();
      };
      this.on('state', on);
    });
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.setState('stopped');
    clearTimeout(this.timer);
    clearTimeout(this.greeting);
    clearTimeout(this.homeTimer);
    clearInterval(this.heartbeat);
    this.dropHold();
    this.ws?.terminate();
    await this.runner.close();
  }

  private setState(s: AgentState): void {
    if (this.state === 'stopped' && s !== 'stopped') return;
    this.state = s;
    this.emit('state', s);
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, fields);
  }

  /**
   * Sends when connected. Task reports are spooled and resent after the next welcome; a
   * `file.served` lost this way is answered again when the server repeats its `file.serve`.
   */
  private send(msg: AgentMessage | FilesServed | FileProgress): void {
    if (this.state !== 'ready' && msg.type !== 'hello') return;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private sendStarted(key: string, startTime: number): void {
    this.send({ v: PROTOCOL_VERSION, type: 'task.started', key, startTime });
  }

  /** What a resend paces itself by; none outside `ready`, where nothing is sent. */
  private backlog(): number | undefined {
    if (this.state !== 'ready' || this.ws?.readyState !== WebSocket.OPEN) return undefined;
    return this.ws.bufferedAmount;
  }

  private dropHold(): void {
    this.hold?.drop();
    this.hold = undefined;
  }

  /** As a binary frame when the server takes them, else as a `task.output` message. */
  private sendOutput(key: string, offset: number, data: Buffer): void {
    if (!this.binaryOutput) {
      this.send({ v: PROTOCOL_VERSION, type: 'task.output', key, offset, data: data.toString('base64') });
      return;
    }
    if (this.state === 'ready' && this.ws?.readyState === WebSocket.OPEN)
      this.ws.send(encodeOutputFrame(key, offset, data), { binary: true });
  }

  private async connectOrRegister(): Promise<void> {
    if (this.state === 'stopped') return;
    if (!this.identity) {
      this.setState('registering');
      try {
        this.identity = await this.register();
        saveIdentity(this.opts.stateDir, this.identity);
        this.log('info', 'registered', { hostId: this.identity.hostId, agentId: this.identity.agentId });
      } catch (err) {
        if (!this.noteRefusal(err))
          this.log(
            err instanceof RegistrationRefused ? 'error' : 'warn',
            `registration failed: ${(err as Error).message}`,
          );
        this.scheduleReconnect();
        return;
      }
    }
    this.connect(this.identity);
  }

  private async register(): Promise<Identity> {
    const body = {
      bootstrapToken: this.opts.bootstrapToken,
      host: this.opts.host,
      ...(this.opts.bizId !== undefined ? { bizId: this.opts.bizId } : {}),
    };
    const res = await postJson(
      new URL(AGENT_REGISTER_PATH, this.servers.current()),
      body,
      10_000,
      this.opts.localAddress,
    );
    const env = (res.json ?? {}) as { result?: boolean; message?: string; data?: unknown };
    if (!env.result) throw new RegistrationRefused(env.message ?? `HTTP ${res.status}`);
    return parseRegisterResponse(env.data);
  }

  private connect(identity: Identity): void {
    // Stopped while registering: no connection for a stopped agent.
    if (this.state === 'stopped') return;
    this.setState('connecting');
    const url = new URL(AGENT_LINK_PATH, this.servers.current());
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${identity.token}` },
      handshakeTimeout: 10_000,
      maxPayload: 64 * 1024 * 1024,
      // A zero masking key: the server skips unmasking and the agent skips masking every byte of
      // output it sends (most of the agent's CPU when a task prints a lot). Masking keeps a
      // browser's scripts from choosing the bytes a misbehaving proxy sees; the agent is no
      // browser, and on wss:// no proxy sees the bytes at all.
      generateMask: (mask: Buffer) => mask.fill(0),
      ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
    });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401) {
        this.log('warn', 'server refused the stored agent token; registering again');
        clearIdentity(this.opts.stateDir);
        this.identity = undefined;
      }
      ws.terminate();
    });
    ws.on('open', () => {
      this.setState('greeting');
      // A server that froze (or a link cut silently) after the handshake would keep the agent
      // waiting for its welcome for good: no heartbeat runs before it.
      clearTimeout(this.greeting);
      this.greeting = setTimeout(() => {
        if (this.ws !== ws || this.state !== 'greeting') return;
        this.log('warn', 'no welcome from the server; trying again');
        ws.terminate();
      }, this.opts.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS);
      this.send({
        v: PROTOCOL_VERSION,
        type: 'hello',
        agentVersion: this.opts.version ?? AGENT_VERSION,
        host: this.opts.host,
        held: this.runner.held(),
      });
    });
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('pong', () => (this.unansweredPings = 0));
    ws.on('close', (code: number, reason: Buffer) => {
      // 4000-4999 are the server's own refusals (identity mismatch, revoked agent, ...): say why.
      if (code >= 4000 && code < 5000)
        this.log('warn', `server closed the connection: ${reason.toString('utf8')}`, { code });
      if (this.ws !== ws) return;
      clearTimeout(this.greeting);
      clearInterval(this.heartbeat);
      this.dropHold();
      this.scheduleReconnect();
    });
    ws.on('error', (err) => {
      if (!this.noteRefusal(err)) this.log('warn', `connection error: ${err.message}`);
    });
  }

  /** Records whether `err` is a refused connection; true when it was and is already logged. */
  private noteRefusal(err: unknown): boolean {
    this.refused = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
    if (!this.refused) return false;
    if (this.refusalLogged) return true;
    this.refusalLogged = true;
    this.log('warn', `${(err as Error).message}; retrying within ${REFUSED_CAP_MS} ms until it answers`);
    return true;
  }

  private onMessage(data: Buffer): void {
    this.unansweredPings = 0;
    this.heard = true;
    let msg: ServerMessage;
    try {
      msg = parseServerMessage(JSON.parse(data.toString('utf8')));
    } catch (err) {
      this.log('error', `bad message from server: ${(err as Error).message}`);
      return;
    }
    try {
      this.dispatch(msg);
    } catch (err) {
      // One bad task must not take the connection (and every other task's reporting) down.
      this.log('error', `handling ${msg.type} failed: ${(err as Error).message}`);
    }
  }

  private dispatch(msg: ServerMessage): void {
    switch (msg.type) {
      case 'welcome':
        this.hostId = msg.hostId;
        if (this.servers.urls.length > 1) this.log('info', 'connected', { server: this.servers.current() });
        this.binaryOutput = msg.binaryOutput === true;
        this.dropHold();
        if (msg.combinedReports === true)
          this.hold = new ReportHold({
            started: (key, startTime) => this.sendStarted(key, startTime),
            output: (key, offset, data) => this.sendOutput(key, offset, data),
            finished: (m) => this.send({ v: PROTOCOL_VERSION, type: 'task.finished', ...m }),
            report: (m) => this.send({ v: PROTOCOL_VERSION, type: 'task.report', ...m }),
            // An older server drops the file reports of a `task.report` unread: held only for one
            // that says it takes them.
            ...(msg.fileReports === true
              ? { file: (m) => this.send({ v: PROTOCOL_VERSION, type: 'task.file', ...m }) }
              : {}),
          });
        this.pingHeartbeat = msg.pingHeartbeat === true;
        clearTimeout(this.greeting);
        this.welcomedAt = Date.now();
        this.refusalLogged = false;
        this.setState('ready');
        this.startHeartbeat(msg.heartbeatIntervalMs);
        this.runner.resume(msg.stored, msg.forget);
        this.returning = false;
        this.planHomeCheck(false);
        return;
      case 'task.run':
        this.runner.run(msg);
        return;
      case 'task.kill':
        this.runner.kill(msg.key);
        return;
      case 'task.recorded':
        this.runner.recorded(msg.key);
        return;
      case 'task.download':
        this.runner.download(msg);
        return;
      case 'file.serve':
        this.runner.serve(msg);
        return;
      case 'file.unserve':
        this.runner.unserve(msg.serveId);
        return;
    }
  }

  /**
   * Heartbeats tell the server we are alive (the ping itself, for a server that says
   * `pingHeartbeat`); unanswered pings tell us the server is gone. Several pings may go
   * unanswered before the agent gives up on the connection: a busy server (or a busy agent)
   * answers late, and dropping a healthy connection costs more than waiting, since the server
   * fails a host only after its own, longer window.
   * A server that sent a message since the last tick (a task, an acknowledgement) has shown it
   * is alive; to a server that takes heartbeat messages no ping is sent then, which saves a
   * ping and a pong per agent and interval on a fleet that is busy with tasks. To a
   * `pingHeartbeat` server the ping is the heartbeat, so it always goes.
   */
  private startHeartbeat(intervalMs: number): void {
    clearInterval(this.heartbeat);
    this.unansweredPings = 0;
    this.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      const heard = this.heard;
      this.heard = false;
      if (!heard && this.unansweredPings >= MAX_UNANSWERED_PINGS) {
        this.log('warn', 'server stopped answering; reconnecting');
        ws.terminate();
        return;
      }
      if (!heard || this.pingHeartbeat) {
        this.unansweredPings++;
        ws.ping();
      }
      if (!this.pingHeartbeat) this.send({ v: PROTOCOL_VERSION, type: 'heartbeat' });
    }, intervalMs);
  }

  /** After a welcome, or a check of home that did not move the agent: when to check (again). */
  private planHomeCheck(failed: boolean): void {
    clearTimeout(this.homeTimer);
    const every = this.opts.returnHomeMs ?? RETURN_HOME_MS;
    if (this.servers.awayFrom() === undefined) this.homeChecksFailed = 0;
    else if (failed) this.homeChecksFailed++;
    const ws = this.ws;
    if (every <= 0 || !ws || this.servers.awayFrom() === undefined) return;
    const delay =
      every * (0.5 + Math.random()) * 2 ** Math.min(this.homeChecksFailed, MAX_HOME_CHECK_DOUBLINGS);
    this.homeTimer = setTimeout(() => void this.checkHome(ws), delay);
  }

  private async checkHome(ws: WebSocket): Promise<void> {
    const home = this.servers.awayFrom();
    const current = () => this.ws === ws && this.state === 'ready';
    if (!current() || home === undefined) return;
    // Moving now would cost a task in flight a session move (and a file offer its peers' waits):
    // checked again later, the wait not grown.
    if (this.runner.busy()) return this.planHomeCheck(false);
    const healthy = await serverHealthy(home, HOME_CHECK_TIMEOUT_MS, this.opts.localAddress);
    if (!current()) return;
    if (!healthy || this.runner.busy()) return this.planHomeCheck(!healthy);
    this.log('info', 'moving back to its home server', { from: this.servers.current(), to: home });
    this.ws = undefined;
    clearInterval(this.heartbeat);
    this.dropHold();
    ws.close(1000, 'moving back to its home server');
    this.servers.goHome();
    // The connection it leaves held (its welcome was at least half of RETURN_HOME_MS ago).
    this.welcomedAt = undefined;
    this.attempt = 0;
    this.returning = true;
    void this.connectOrRegister();
  }

  private scheduleReconnect(): void {
    if (this.state === 'stopped') return;
    const left = this.servers.current();
    const next = this.servers.advance();
    if (next !== left) this.log('info', 'moving to the next server', { from: left, to: next });
    this.setState('backoff');
    // A home that answers its health check but not the agent (overloaded, refusing it) is not
    // tried again at the next check's usual time: the wait doubles as for a failed check.
    if (this.returning) this.homeChecksFailed++;
    this.returning = false;
    const held = this.welcomedAt === undefined ? 0 : Date.now() - this.welcomedAt;
    if (held >= (this.opts.stableConnectionMs ?? STABLE_CONNECTION_MS)) this.attempt = 0;
    this.welcomedAt = undefined;
    const base = this.opts.backoffBaseMs ?? 500;
    const cap = this.opts.backoffCapMs ?? 30_000;
    const refused = this.refused;
    this.refused = false;
    const ceiling = refused ? REFUSED_CAP_MS : base * 2 ** Math.min(this.attempt, 16);
    if (!refused) this.attempt++;
    const delay = Math.random() * Math.min(cap, ceiling);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connectOrRegister(), delay);
  }
}

export function localHostname(): string {
  return os.hostname();
}
