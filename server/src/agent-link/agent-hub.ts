/**
 * The agent hub holds the WebSocket of every agent connected to this server.
 *
 * Per connection:
 *   upgrade --token ok--> open --hello--> ready --close / heartbeat silence--> gone
 * A connection that sends anything but `hello` first is closed. When a host has a newer
 * connection, the older one is closed (an agent reconnecting before its old socket timed out).
 *
 * Liveness: a sweep every heartbeat interval marks agents abnormal after `heartbeatTimeoutMs`
 * of silence and tells the engine, which fails their running tasks (310). Heartbeats are
 * written to the store in batches, one transaction per interval, not one write each.
 */
import { addressedByHolder } from '../files/server-source.js';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type WebSocket from 'ws';
import {
  AGENT_LINK_PATH,
  AgentMessage,
  PROTOCOL_VERSION,
  decodeOutputFrame,
  parseTaskKey,
} from '@jobfleet/protocol';
import type {
  FileProgress,
  FilesServed,
  HeldTask,
  HostFacts,
  OutputFrame,
  ServerMessage,
  TaskFinished,
  TaskReport,
  TaskStarted,
} from '@jobfleet/protocol';
import type { Services } from '../services.js';
import { RELAYED_TYPES } from '../cluster/cluster-node.js';
import { isBoundToSender } from './message-binding.js';
import { AgentTokens } from './registration.js';

/** What the engine hears from agents. */
export interface AgentEvents {
  /** An agent said hello; answer which of its held tasks to resume and which to forget. */
  agentReady(hostId: number, held: HeldTask[]): Promise<{ stored: Record<string, number>; forget: string[] }>;
  /** Called after the welcome was sent: dispatch whatever waits for this host. */
  agentWelcomed(hostId: number): void;
  taskStarted(hostId: number, msg: TaskStarted): void;
  /** Output bytes, from a binary frame or a `task.output` message (decoded). */
  taskOutput(hostId: number, msg: OutputFrame): void;
  taskFinished(hostId: number, msg: TaskFinished): void;
  /** The agent has been silent past the heartbeat window (or left and did not come back). */
  agentLost(hostId: number): void;
  filesServed(hostId: number, msg: FilesServed): void;
  fileProgress(hostId: number, msg: FileProgress): void;
}

const NO_EVENTS: AgentEvents = {
  agentReady: async () => ({ stored: {}, forget: [] }),
  agentWelcomed: () => undefined,
  taskStarted: () => undefined,
  taskOutput: () => undefined,
  taskFinished: () => undefined,
  agentLost: () => undefined,
  filesServed: () => undefined,
  fileProgress: () => undefined,
};

interface Connection {
  ws: WebSocket;
  hostId: number;
  ready: boolean;
  lastSeen: number;
  /** When a message last went to this agent (0: none yet); see onPing. */
  lastSent: number;
  /** When this agent's heartbeat was last queued for the store (0: not since the hello); see onBeat. */
  beatStored: number;
  /** The server as this agent reached it (for files the server itself serves). */
  serverUrl: string;
  /** The identity the host was registered with; the agent must report the same in its hello. */
  registered: { cloudId: number; ip: string };
  facts?: HostFacts;
  /** Cluster mode: the epoch of this agent session (results written under another one are refused). */
  epoch?: number;
  /** The socket closed (its session, if opened later, is ended at once). */
  closed?: boolean;
}

/**
 * Handshakes verified at once; past this an upgrade is answered 503 and the agent backs off. A
 * waiting handshake costs a socket and a place in the next batched token read (AgentTokens):
 * at 512, a fleet of 5,000 returning within two seconds of a restart met 500-3,000 refusals on
 * PostgreSQL, each growing an agent's backoff, and took 8-16 s to be back instead of 3-7 s.
 * As many as the listening socket holds unaccepted (LISTEN_BACKLOG).
 */
const MAX_PENDING_HANDSHAKES = 4096;
/** How often connected agents are checked against revocations made through other servers. */
const REVOCATION_CHECK_MS = 5000;
/** Session ends written in one statement: a fence drops every agent of the server at once. */
const ENDS_PER_WRITE = 5000;

export class AgentHub {
  /** Pings are answered by onPing, not by ws itself. */
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024 * 1024,
    autoPong: false,
  });
  private readonly connections = new Map<number, Connection>();
  /** Hosts that disconnected and have not come back: when they left. */
  private readonly departed = new Map<number, number>();
  private readonly pendingBeats = new Map<number, { at: number; version?: string }>();
  /** The heartbeat write in flight; hellos arriving meanwhile share the next one. */
  private beatsWrite: Promise<void> | undefined;
  private events: AgentEvents = NO_EVENTS;
  private pendingHandshakes = 0;
  private lastRevocationCheck = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Cluster mode: sessions that ended here whose end the store has not taken yet, by host: epoch. */
  private readonly unrecordedEnds = new Map<number, number>();
  private endsWrite = false;
  private endsFailing = false;

  private readonly tokens: AgentTokens;

  constructor(private readonly services: Services) {
    this.tokens = new AgentTokens(services.store.inventory);
  }

  setEvents(events: AgentEvents): void {
    this.events = events;
  }

  start(): void {
    const every = this.services.config.heartbeatIntervalMs;
    this.sweepTimer = setInterval(() => void this.sweep(), Math.min(every, 1000));
    this.sweepTimer.unref();
  }

  isConnected(hostId: number): boolean {
    return this.connections.get(hostId)?.ready === true;
  }

  /**
   * Whether a host's agent counts as online. One server knows its own connections; in a cluster
   * the inventory's status is what every server sees (kept by the servers' sweeps).
   */
  agentOnline(h: { id: number; agent_status: number }): boolean {
    return h.agent_status === 1 && (this.services.cluster !== undefined || this.isConnected(h.id));
  }

  serverUrlFor(hostId: number): string | undefined {
    return this.connections.get(hostId)?.serverUrl;
  }

  connectedHostIds(): number[] {
    return [...this.connections.values()].filter((c) => c.ready).map((c) => c.hostId);
  }

  /** Cluster mode: the epoch of the host's session held here. */
  epochOf(hostId: number): number | undefined {
    return this.connections.get(hostId)?.epoch;
  }

  send(hostId: number, msg: ServerMessage): boolean {
    const c = this.connections.get(hostId);
    const open = c?.ready === true && c.ws.readyState === c.ws.OPEN;
    const cluster = this.services.cluster;
    if (cluster && RELAYED_TYPES.has(msg.type)) {
      // Recorded for whichever server holds the agent, now or after it moves.
      if (open) this.transmit(c, msg);
      cluster.record(hostId, msg, open ? (c.epoch ?? null) : null);
      return true;
    }
    if (!open) return false;
    this.transmit(c, msg);
    return true;
  }

  /**
   * Cluster mode: a message from the outbox, for the session with this epoch. False when it was
   * not sent: that session is not ready here (yet, or any more).
   */
  deliver(hostId: number, epoch: number, msg: ServerMessage): boolean {
    const c = this.readySession(hostId, epoch);
    if (c) this.transmit(c, msg);
    return c !== undefined;
  }

  /** Whether a message for the session with this epoch would be sent now. */
  deliverable(hostId: number, epoch: number): boolean {
    return this.readySession(hostId, epoch) !== undefined;
  }

  private readySession(hostId: number, epoch: number): Connection | undefined {
    const c = this.connections.get(hostId);
    return c?.ready && c.epoch === epoch && c.ws.readyState === c.ws.OPEN ? c : undefined;
  }

  /** Cluster mode: the agent opened a newer session elsewhere; this one is stale. */
  closeStale(hostId: number, epoch: number): void {
    const c = this.connections.get(hostId);
    if (c?.epoch !== undefined && c.epoch < epoch) c.ws.close(4005, 'session moved to another server');
  }

  /** Closes every agent connection (a fenced server), so agents move to another server. */
  dropAll(reason: string): void {
    for (const c of this.connections.values()) c.ws.close(4006, reason);
  }

  private transmit(c: Connection, msg: ServerMessage): void {
    c.ws.send(JSON.stringify(addressedByHolder(msg, c.serverUrl)));
    c.lastSent = Date.now();
    if (msg.type === 'task.run' || msg.type === 'task.download')
      this.services.metrics.taskDispatched(msg.key);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node takes its own error listener off a socket it hands to 'upgrade': a client resetting
    // the connection before ws has one of its own (during the token check, or after a refusal)
    // would raise an unhandled error and end the process.
    const dropOnError = () => socket.destroy();
    socket.on('error', dropOnError);
    const url = req.url ?? '';
    if (this.services.cluster?.unhealthy()) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\r\n');
      return;
    }
    if (this.closed || url.split('?')[0] !== AGENT_LINK_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    if (this.pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\r\n');
      return;
    }
    this.pendingHandshakes++;
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    this.tokens
      .verify(token)
      .then((host) => {
        if (!host) {
          socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
          return;
        }
        if (socket.destroyed) return;
        socket.removeListener('error', dropOnError);
        this.wss.handleUpgrade(req, socket, head, (ws) =>
          this.accept(ws, host.id, `http://${req.headers.host ?? '127.0.0.1'}`, {
            cloudId: Number(host.cloud_id),
            ip: host.ip,
          }),
        );
      })
      .catch((err: unknown) => {
        this.services.log.error({ err }, 'agent handshake failed');
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      })
      .finally(() => this.pendingHandshakes--);
  }

  private accept(
    ws: WebSocket,
    hostId: number,
    serverUrl: string,
    registered: Connection['registered'],
  ): void {
    const previous = this.connections.get(hostId);
    if (previous) previous.ws.close(4000, 'replaced by a newer connection');
    const conn: Connection = {
      ws,
      hostId,
      ready: false,
      lastSeen: Date.now(),
      lastSent: 0,
      beatStored: 0,
      serverUrl,
      registered,
    };
    this.connections.set(hostId, conn);
    ws.on('message', (data: Buffer, isBinary: boolean) =>
      isBinary ? this.onOutputFrame(conn, data) : void this.onMessage(conn, data),
    );
    // The ping is the agent's heartbeat (see the welcome's pingHeartbeat).
    ws.on('ping', (data: Buffer) => this.onPing(conn, data));
    ws.on('close', () => this.onClose(conn));
    ws.on('error', (err) => this.services.log.warn({ err, hostId }, 'agent socket error'));
  }

  private onOutputFrame(conn: Connection, data: Buffer): void {
    conn.lastSeen = Date.now();
    if (this.isReplaced(conn)) return;
    let frame: OutputFrame;
    try {
      if (!conn.ready) throw new Error('hello first');
      frame = decodeOutputFrame(data);
    } catch (err) {
      this.services.log.warn(
        { hostId: conn.hostId, err: (err as Error).message },
        'bad agent frame; closing',
      );
      conn.ws.close(4002, 'bad message');
      return;
    }
    if (parseTaskKey(frame.key).hostId !== conn.hostId) {
      this.services.log.warn(
        { hostId: conn.hostId, type: 'output frame' },
        'agent message about another host; dropped',
      );
      return;
    }
    this.events.taskOutput(conn.hostId, frame);
  }

  private async onMessage(conn: Connection, data: Buffer): Promise<void> {
    conn.lastSeen = Date.now();
    let msg: AgentMessage;
    try {
      const parsed = AgentMessage.safeParse(JSON.parse(data.toString('utf8')));
      if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'invalid message');
      msg = parsed.data;
    } catch (err) {
      this.services.log.warn(
        { hostId: conn.hostId, err: (err as Error).message },
        'bad agent message; closing',
      );
      conn.ws.close(4002, 'bad message');
      return;
    }
    if (!conn.ready && msg.type !== 'hello') {
      conn.ws.close(4001, 'hello first');
      return;
    }
    // A second hello would take the host's running tasks it does not list as lost (and, in a
    // cluster, open another session): one per connection.
    if (msg.type === 'hello' && conn.facts) {
      conn.ws.close(4001, 'one hello per connection');
      return;
    }
    if (msg.type !== 'hello' && this.isReplaced(conn)) return;
    if (!isBoundToSender(conn.hostId, msg)) {
      this.services.log.warn(
        { hostId: conn.hostId, type: msg.type },
        'agent message about another host; dropped',
      );
      return;
    }
    switch (msg.type) {
      case 'hello':
        await this.onHello(conn, msg.host, msg.agentVersion, msg.held);
        return;
      case 'heartbeat':
        this.onBeat(conn);
        return;
      case 'task.started':
        this.services.metrics.taskStarted(msg.key);
        this.events.taskStarted(conn.hostId, msg);
        return;
      case 'task.output':
        this.events.taskOutput(conn.hostId, {
          key: msg.key,
          offset: msg.offset,
          data: Buffer.from(msg.data, 'base64'),
        });
        return;
      case 'task.finished':
        this.services.metrics.taskResult('task.finished');
        this.events.taskFinished(conn.hostId, msg);
        return;
      case 'task.report':
        this.onReport(conn.hostId, msg);
        return;
      case 'file.served':
        this.events.filesServed(conn.hostId, msg);
        return;
      case 'task.file':
        this.events.fileProgress(conn.hostId, msg);
        return;
    }
  }

  /**
   * A task's start, output, file reports and result in one message: handled as the separate
   * ones, in that order (a download's file logs are thus logged before its result is taken,
   * which waits for them to be stored).
   */
  private onReport(hostId: number, msg: TaskReport): void {
    const { key, startTime, output, files, result } = msg;
    this.services.metrics.taskResult('task.report');
    this.services.metrics.taskStarted(key);
    this.events.taskStarted(hostId, { v: msg.v, type: 'task.started', key, startTime });
    if (output)
      this.events.taskOutput(hostId, {
        key,
        offset: output.offset,
        data: Buffer.from(output.data, 'base64'),
      });
    for (const f of files ?? []) this.events.fileProgress(hostId, { v: msg.v, type: 'task.file', key, ...f });
    this.events.taskFinished(hostId, { v: msg.v, type: 'task.finished', key, ...result });
  }

  /**
   * The agent's ping is its heartbeat; the pong tells the agent the server is alive. An agent
   * counts any message from the server as that proof (it resets its unanswered pings, and does
   * not give up on a connection it heard from since its last ping), so a ping that comes within
   * a heartbeat interval of a message sent to it needs no pong: while a fleet is busy with
   * tasks that saves a frame and a socket write per agent and interval (a tenth of the server's
   * CPU in a 1,000-host fan-out). An idle agent still gets every pong.
   */
  private onPing(conn: Connection, data: Buffer): void {
    this.onBeat(conn);
    const ws = conn.ws;
    if (ws.readyState !== ws.OPEN) return;
    if (Date.now() - conn.lastSent < this.services.config.heartbeatIntervalMs) return;
    ws.pong(data);
  }

  /**
   * A heartbeat: a `heartbeat` message from agents of older versions, a WebSocket ping from the
   * others. Idle agents thus cost the server no JSON parse or message check at all.
   * Liveness is judged from `lastSeen` in memory (sweep); the stored heartbeat only shows
   * operators when an agent was last heard of, and keeps a connected agent's status online. So
   * it is stored once per half timeout window, not on every beat: an idle fleet of 50,000 agents
   * would otherwise rewrite 10,000 host rows a second, and a job's accept reads those rows.
   */
  private onBeat(conn: Connection): void {
    const now = Date.now();
    conn.lastSeen = now;
    if (!conn.ready || this.isReplaced(conn)) return;
    if (now - conn.beatStored < this.services.config.heartbeatTimeoutMs / 2) return;
    conn.beatStored = now;
    this.pendingBeats.set(conn.hostId, { at: now });
  }

  /**
   * A connection the host replaced (a newer one reached this server): what still arrives on it
   * is dropped, since the agent resends it on the newer one, and it must not be written under
   * the newer session's epoch.
   */
  private isReplaced(conn: Connection): boolean {
    return this.connections.get(conn.hostId) !== conn;
  }

  private async onHello(
    conn: Connection,
    facts: HostFacts,
    version: string,
    held: HeldTask[],
  ): Promise<void> {
    conn.facts = facts;
    const { cloudId, ip } = conn.registered;
    if (facts.cloudId !== cloudId || facts.ip !== ip) {
      // An agent token is bound to the identity it was registered with: a host that moved, or
      // an agent claiming another host's address, is refused until an admin changes the record.
      this.services.log.warn(
        { hostId: conn.hostId, registered: `${cloudId}:${ip}`, reported: `${facts.cloudId}:${facts.ip}` },
        'agent refused: reported identity differs from the registered one (an admin can move the host with POST /api/admin/hosts/:id/identity)',
      );
      conn.ws.close(
        4003,
        `identity mismatch: registered ${cloudId}:${ip}, reported ${facts.cloudId}:${facts.ip}`.slice(0, 120),
      );
      return;
    }
    try {
      const cluster = this.services.cluster;
      if (cluster) {
        conn.epoch = await cluster.openSession(conn.hostId);
        // Closed while its session was being opened: onClose had no epoch to end, so end it here
        // (else the session would show the host connected to this server until it returns).
        if (conn.closed) this.endSession(conn);
        if (this.connections.get(conn.hostId) !== conn) return;
      }
      const resume = await this.events.agentReady(conn.hostId, held);
      if (this.connections.get(conn.hostId) !== conn) return;
      conn.ready = true;
      this.departed.delete(conn.hostId);
      conn.ws.send(
        JSON.stringify({
          v: PROTOCOL_VERSION,
          type: 'welcome',
          hostId: conn.hostId,
          heartbeatIntervalMs: this.services.config.heartbeatIntervalMs,
          stored: resume.stored,
          forget: resume.forget,
          binaryOutput: true,
          combinedReports: true,
          fileReports: true,
          pingHeartbeat: true,
        } satisfies ServerMessage),
      );
      conn.lastSent = Date.now();
      conn.beatStored = conn.lastSent;
      this.pendingBeats.set(conn.hostId, { at: conn.beatStored, version });
      // The hellos read in this turn of the event loop share one write (SQLite writes block
      // the thread, so each would otherwise find no write in flight and go alone).
      await new Promise((resolve) => setImmediate(resolve));
      await this.flushHeartbeats();
      this.services.log.info({ hostId: conn.hostId, ip: facts.ip, held: held.length }, 'agent connected');
      this.events.agentWelcomed(conn.hostId);
    } catch (err) {
      this.services.log.error({ err, hostId: conn.hostId }, 'agent hello failed');
      conn.ws.close(1011, 'server error');
    }
  }

  /** Closes the host's connection on this server, if any (its agent was revoked). */
  disconnect(hostId: number, reason: string): void {
    const c = this.connections.get(hostId);
    if (!c) return;
    this.services.log.warn({ hostId, reason }, 'agent disconnected by the server');
    c.ws.close(4004, reason.slice(0, 120));
  }

  private endSession(conn: Connection): void {
    if (!this.services.cluster || conn.epoch === undefined) return;
    this.unrecordedEnds.set(conn.hostId, conn.epoch);
    void this.recordEnds();
  }

  /**
   * Cluster mode: writes the session ends not yet in the store, and again at each sweep until
   * the store takes them. A session whose end is lost stays "connected" to this server for good:
   * its agent is never found lost, and what waits for it waits forever.
   */
  private async recordEnds(): Promise<void> {
    const cluster = this.services.cluster;
    if (!cluster || this.endsWrite || this.unrecordedEnds.size === 0) return;
    const ended = [...this.unrecordedEnds]
      .slice(0, ENDS_PER_WRITE)
      .map(([hostId, epoch]) => ({ hostId, epoch }));
    this.endsWrite = true;
    try {
      await cluster.store.closeSessions(ended);
      for (const e of ended)
        if (this.unrecordedEnds.get(e.hostId) === e.epoch) this.unrecordedEnds.delete(e.hostId);
      this.endsFailing = false;
    } catch (err) {
      if (!this.endsFailing)
        this.services.log.warn(
          { err, sessions: this.unrecordedEnds.size },
          'agent session ends not recorded yet; retrying',
        );
      this.endsFailing = true;
      return;
    } finally {
      this.endsWrite = false;
    }
    if (this.unrecordedEnds.size > 0) void this.recordEnds();
  }

  private onClose(conn: Connection): void {
    conn.closed = true;
    this.endSession(conn);
    const cluster = this.services.cluster;
    if (this.connections.get(conn.hostId) !== conn) return;
    this.connections.delete(conn.hostId);
    // In a cluster the agent may be on another server now: the owners of its tasks decide.
    if (this.closed || cluster) return;
    this.departed.set(conn.hostId, conn.lastSeen);
    this.services.log.info({ hostId: conn.hostId }, 'agent disconnected');
  }

  /**
   * Writes the heartbeats pending now, after the write in flight if any: a burst of hellos
   * (each waits for its own beat) shares a few writes instead of queueing one each.
   */
  private async flushHeartbeats(): Promise<void> {
    while (this.beatsWrite) await this.beatsWrite.catch(() => undefined);
    if (this.pendingBeats.size === 0) return;
    const beats = [...this.pendingBeats].map(([hostId, b]) => ({ hostId, ...b }));
    this.pendingBeats.clear();
    const write = this.services.store.inventory.recordHeartbeats(beats);
    this.beatsWrite = write;
    try {
      await write;
    } finally {
      this.beatsWrite = undefined;
    }
  }

  /** Fails agents silent past the window: connected-but-silent ones and departed ones alike. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    const limit = this.services.config.heartbeatTimeoutMs;
    const lost: number[] = [];
    for (const conn of this.connections.values()) {
      if (now - conn.lastSeen > limit) {
        if (this.services.cluster) {
          // The session ends here (recorded on close); the owners of its tasks fail them later.
          conn.ws.terminate();
          continue;
        }
        lost.push(conn.hostId);
        this.connections.delete(conn.hostId);
        conn.ws.terminate();
      }
    }
    for (const [hostId, since] of this.departed) {
      if (now - since > limit) {
        lost.push(hostId);
        this.departed.delete(hostId);
      }
    }
    void this.recordEnds();
    try {
      await this.flushHeartbeats();
      if (lost.length > 0) {
        await this.services.store.inventory.markAgentsAbnormal(lost);
        this.services.log.warn({ hosts: lost }, 'agents lost (no heartbeat within the window)');
        // One that came back while the store was written keeps its (new) tasks.
        for (const hostId of lost) if (!this.isConnected(hostId)) this.events.agentLost(hostId);
      }
      await this.dropRevoked(now);
    } catch (err) {
      this.services.log.error({ err }, 'heartbeat sweep failed');
    }
  }

  /**
   * Agents revoked, or whose hosts were removed, through another server of the cluster are
   * dropped here too, at most a few seconds later (the server that took the call drops its own
   * at once).
   */
  private async dropRevoked(now: number): Promise<void> {
    if (now - this.lastRevocationCheck < REVOCATION_CHECK_MS || this.connections.size === 0) return;
    this.lastRevocationCheck = now;
    const ids = [...this.connections.keys()];
    const revoked = await this.services.store.agentTrust.revokedAmong(ids);
    // A host removed through this server had its agent dropped at once: only a cluster's others learn it here.
    const removed = this.services.cluster ? await this.services.cluster.store.removedAmong(ids) : [];
    for (const hostId of new Set([...revoked, ...removed]))
      this.disconnect(hostId, 'agent revoked or host removed by an admin');
  }

  /**
   * Hosts the engine expects to hear from after a server restart: if they do not connect within
   * the heartbeat window, they are lost like any silent agent.
   */
  expect(hostIds: Iterable<number>): void {
    if (this.services.cluster) return;
    const now = Date.now();
    for (const id of hostIds) if (!this.connections.has(id)) this.departed.set(id, now);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const c of this.connections.values()) c.ws.terminate();
    this.connections.clear();
    await this.flushHeartbeats().catch(() => undefined);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
