/**
 * The rows a cluster of servers coordinates through (PostgreSQL only): liveness of each server
 * process, where each agent is connected, jobs' owners, and the per-host outbox of messages for
 * agents. Every lease is timed by the database clock, never by a server's own.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { IN_FLIGHT_JOB_STATUSES } from '../engine/statuses.js';
import type { HostTask } from '../store/execution-store.js';
import type { Database } from '../store/schema.js';

/** Milliseconds of the database clock. */
const NOW_MS = sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
/**
 * The same clock at the start of the statement: stable within it, so (unlike clock_timestamp())
 * it can bound an index scan. For short autocommit statements only.
 */
const STATEMENT_MS = sql<number>`(extract(epoch from statement_timestamp()) * 1000)::bigint`;

export interface HostSession {
  hostId: number;
  serverId: string;
  epoch: number;
  state: 'connected' | 'gone';
  lastSeen: number;
  /** State and last heartbeat of the server holding it (undefined: no such row). */
  serverState: 'alive' | 'dead' | undefined;
  serverHeartbeatAt: number | undefined;
}

/**
 * Whether a host's agent is on no server, as the database sees it: no session, a session that
 * ended longer than `timeoutMs` ago, or one held by a server that is dead (or silent) for longer
 * than `graceMs` (its agents get that long to reconnect elsewhere).
 */
export function agentAway(
  s: HostSession | undefined,
  dbNow: number,
  timeoutMs: number,
  graceMs: number,
): boolean {
  if (!s) return true;
  if (s.state === 'gone') return dbNow - s.lastSeen > timeoutMs;
  if (s.serverState === 'alive') return false;
  return dbNow - (s.serverHeartbeatAt ?? s.lastSeen) > graceMs;
}

/** A message for an agent as recorded: payload sealed, `sentEpoch` null until some server sends it. */
export interface NewCommand {
  hostId: number;
  type: string;
  stepInstanceId: number | null;
  executeCount: number | null;
  payload: string;
  sentEpoch: number | null;
}

export interface ClaimedCommand {
  id: number;
  hostId: number;
  type: string;
  stepInstanceId: number | null;
  executeCount: number | null;
  payload: string;
  epoch: number;
  /** Status and stored output length of the task the command is about, when it has one. */
  taskStatus: number | null;
  logBytes: number | null;
}

export interface ClusterServerView {
  id: string;
  url: string;
  state: string;
  started_at: number;
  heartbeat_at: number;
  stopped_at: number | null;
  agents: number;
  jobs: number;
}

/**
 * How far back the status sweep looks for sessions that passed the timeout and servers that died:
 * many sweeps' worth (one every heartbeat interval, on every server), so a few failed or late
 * sweeps miss nothing; what falls out of it is left to the full sweep.
 */
export const AWAY_LOOKBACK_MS = 120_000;
/** How often each server runs the full status sweep (see markAwayAgentsAbnormal). */
export const AWAY_FULL_SWEEP_MS = 600_000;

/** Commands per insert statement: 7 parameters a row, well under PostgreSQL's 65,535. */
const ENQUEUE_CHUNK = 2000;
/** How long a sweeper waits for a silent server's row before it ends that server's connections. */
const MARK_LOCK_WAIT_MS = 2000;
/** PostgreSQL's lock_not_available (a lock_timeout that fired). */
const LOCK_NOT_AVAILABLE = '55P03';

export class ClusterStore {
  constructor(private readonly db: Kysely<Database>) {}

  async now(): Promise<number> {
    const r = await sql<{ now: number }>`select ${NOW_MS} as now`.execute(this.db);
    return Number(r.rows[0]?.now);
  }

  async register(id: string, url: string): Promise<void> {
    await sql`insert into server_node (id, url, state, started_at, heartbeat_at)
      values (${id}, ${url}, 'alive', ${NOW_MS}, ${NOW_MS})`.execute(this.db);
  }

  async setUrl(id: string, url: string): Promise<void> {
    await sql`update server_node set url = ${url} where id = ${id}`.execute(this.db);
  }

  /**
   * Renews the liveness row: 'dead' when this server was marked dead (it must stop), 'drain' when
   * an operator asked it to leave.
   */
  async heartbeat(id: string): Promise<'alive' | 'dead' | 'drain'> {
    const r = await sql<{ drain_requested_at: number | null }>`update server_node set heartbeat_at = ${NOW_MS}
      where id = ${id} and state = 'alive' returning drain_requested_at`.execute(this.db);
    const row = r.rows[0];
    if (!row) return 'dead';
    return row.drain_requested_at === null ? 'alive' : 'drain';
  }

  /**
   * Asks the live server with this id or URL to drain: its id and URL; the live servers it names
   * when that is not exactly one (none, or several sharing a URL, such as servers that each
   * listen on 0.0.0.0:8080 of their own machine): then no server is asked.
   */
  async requestDrain(server: string): Promise<{ id: string; url: string } | { named: string[] }> {
    const r = await sql<{ id: string; url: string }>`with m as (
        select id from server_node where state = 'alive' and (id = ${server} or url = ${server}))
      update server_node set drain_requested_at = coalesce(drain_requested_at, ${NOW_MS})
      where id in (select id from m) and (select count(*) from m) = 1
      returning id, url`.execute(this.db);
    const one = r.rows[0];
    if (one) return one;
    const named = await sql<{ id: string }>`select id from server_node
      where state = 'alive' and (id = ${server} or url = ${server}) order by id`.execute(this.db);
    return { named: named.rows.map((x) => x.id) };
  }

  async stateOf(id: string): Promise<string | undefined> {
    const r = await sql<{ state: string }>`select state from server_node where id = ${id}`.execute(this.db);
    return r.rows[0]?.state;
  }

  /**
   * The inventory's agent status in a cluster: a host whose agent has no session, whose session
   * ended more than `timeoutMs` ago, or whose server is dead, is abnormal (its agent is connected
   * nowhere; a reconnection anywhere marks it normal again with its first heartbeat).
   *
   * Run every heartbeat interval, it reads only what changed since the last runs: sessions that
   * passed the timeout within the last AWAY_LOOKBACK_MS (index agent_session_gone) and sessions
   * still 'connected' to servers that died within it (server_node's few dead rows, then index
   * agent_session_server), each checked against its host by primary key. Scanning host against
   * agent_session every 5 s on every server cost 76 ms at 50,000 hosts. `full` runs that scan:
   * for hosts marked normal without any session at all, which Jobfleet itself never writes in a
   * cluster (a server stores heartbeats only for agents whose session it opened, and deletes no
   * session) but a database used by a server without JOBFLEET_CLUSTER, or a restored host table,
   * holds; and for anything the windows missed while no server could sweep. ClusterNode runs it
   * when a server joins and every AWAY_FULL_SWEEP_MS.
   */
  async markAwayAgentsAbnormal(timeoutMs: number, opts: { full?: boolean } = {}): Promise<number[]> {
    const r = opts.full
      ? await sql<{ id: number }>`update host set agent_status = 0 where agent_status = 1 and id in (
        select h.id from host h
          left join agent_session s on s.host_id = h.id
          left join server_node n on n.id = s.server_id
        where h.agent_status = 1 and (s.host_id is null
          or (s.state = 'gone' and s.last_seen < ${NOW_MS} - ${timeoutMs}::bigint)
          or (s.state = 'connected' and n.state is distinct from 'alive')))
      returning id`.execute(this.db)
      : await sql<{ id: number }>`update host set agent_status = 0 where agent_status = 1 and id in (
          select s.host_id from agent_session s where s.state = 'gone'
            and s.last_seen < ${STATEMENT_MS} - ${timeoutMs}::bigint
            and s.last_seen >= ${STATEMENT_MS} - ${timeoutMs + AWAY_LOOKBACK_MS}::bigint
          union all
          select s.host_id from server_node n join agent_session s on s.server_id = n.id
            where n.state <> 'alive' and n.stopped_at >= ${STATEMENT_MS} - ${AWAY_LOOKBACK_MS}::bigint
              and s.state = 'connected')
        returning id`.execute(this.db);
    return r.rows.map((x) => Number(x.id));
  }

  /** Marks dead every server silent for longer than `deadAfterMs`; returns their ids. */
  async markSilentDead(deadAfterMs: number): Promise<string[]> {
    const mark = () =>
      this.db.transaction().execute(async (tx) => {
        await sql`set local lock_timeout = ${sql.lit(`${MARK_LOCK_WAIT_MS}ms`)}`.execute(tx);
        const r = await sql<{ id: string }>`update server_node set state = 'dead', stopped_at = ${NOW_MS}
          where state = 'alive' and heartbeat_at < ${NOW_MS} - ${deadAfterMs}::bigint
          returning id`.execute(tx);
        return r.rows.map((x) => x.id);
      });
    try {
      return await mark();
    } catch (err) {
      if ((err as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw err;
      // A silent server's statement holds its row (the fence's share lock) while the server
      // cannot take its answer (paused while PostgreSQL sends it a large result: the session is
      // active, so no idle timeout ends it). Its connections are ended: it is about to be dead.
      await sql`select pg_terminate_backend(a.pid) from pg_stat_activity a
        join server_node n on a.application_name = 'jobfleet:' || n.id
        where n.state = 'alive' and n.heartbeat_at < ${NOW_MS} - ${deadAfterMs}::bigint`.execute(this.db);
      return mark();
    }
  }

  /** A graceful stop: the jobs go back to the pool, then the row is dead (in that order: the fence). */
  async retire(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await sql`update job_instance set owner_id = null
        where owner_id = ${id} and status in (${sql.join(IN_FLIGHT_JOB_STATUSES)})`.execute(tx);
      await sql`update server_node set state = 'dead', stopped_at = ${NOW_MS} where id = ${id}`.execute(tx);
    });
  }

  /** Claims up to `limit` unfinished jobs whose owner is dead, gone or unset. */
  async claimOrphans(me: string, limit: number): Promise<number[]> {
    // Not a join: a job another sweep claimed meanwhile is checked again under its lock with its
    // new owner, which a subquery reads and a joined row (still the dead owner's) would not.
    const r = await sql<{ id: number }>`update job_instance set owner_id = ${me} where id in (
        select j.id from job_instance j
        where j.status in (${sql.join(IN_FLIGHT_JOB_STATUSES)})
          and not exists (select 1 from server_node n where n.id = j.owner_id and n.state = 'alive')
        order by j.id limit ${limit} for update of j skip locked)
      returning id`.execute(this.db);
    return r.rows.map((x) => Number(x.id));
  }

  /** Unfinished jobs owned by `me`. */
  async ownedInFlight(me: string): Promise<number[]> {
    const r = await sql<{ id: number }>`select id from job_instance
      where owner_id = ${me} and status in (${sql.join(IN_FLIGHT_JOB_STATUSES)})`.execute(this.db);
    return r.rows.map((x) => Number(x.id));
  }

  /** Of `jobIds`, those whose owner is no longer `me` (an operation through another server took them). */
  async notOwned(me: string, jobIds: number[]): Promise<number[]> {
    if (jobIds.length === 0) return [];
    const r = await sql<{ id: number }>`select id from job_instance
      where id in (${sql.join(jobIds)}) and owner_id is distinct from ${me}`.execute(this.db);
    return r.rows.map((x) => Number(x.id));
  }

  async jobStatuses(jobIds: number[]): Promise<Map<number, number>> {
    if (jobIds.length === 0) return new Map();
    const r = await sql<{ id: number; status: number }>`select id, status from job_instance
      where id in (${sql.join(jobIds)})`.execute(this.db);
    return new Map(r.rows.map((x) => [Number(x.id), x.status]));
  }

  async ownerOf(jobId: number): Promise<{ ownerId: string | null; alive: boolean } | undefined> {
    const r = await sql<{ owner_id: string | null; state: string | null }>`select j.owner_id, n.state
      from job_instance j left join server_node n on n.id = j.owner_id where j.id = ${jobId}`.execute(
      this.db,
    );
    const row = r.rows[0];
    return row && { ownerId: row.owner_id, alive: row.state === 'alive' };
  }

  /** Takes a job over for an operation received here (its owner drops it at its next poll). */
  async takeJob(me: string, jobId: number): Promise<void> {
    await sql`update job_instance set owner_id = ${me} where id = ${jobId}`.execute(this.db);
  }

  // ---------------------------------------------------------------- agent sessions

  /** A new session for the host on this server: the epoch goes up, fencing every older one. */
  async openSession(hostId: number, me: string): Promise<number> {
    const r = await sql<{
      epoch: number;
    }>`insert into agent_session (host_id, server_id, epoch, state, last_seen)
      values (${hostId}, ${me}, 1, 'connected', ${NOW_MS})
      on conflict (host_id) do update set server_id = ${me}, epoch = agent_session.epoch + 1,
        state = 'connected', last_seen = ${NOW_MS}
      returning epoch`.execute(this.db);
    return Number(r.rows[0]?.epoch);
  }

  /**
   * New sessions for several hosts on this server in one statement and one commit (a reconnect
   * storm's hellos, see session-batch.ts); each host at most once. Rows are locked in host order,
   * so two servers opening sessions for overlapping hosts wait for each other, never deadlock.
   */
  async openSessions(hostIds: readonly number[], me: string): Promise<Map<number, number>> {
    if (hostIds.length === 0) return new Map();
    const ids = `{${[...hostIds].sort((a, b) => a - b).join(',')}}`;
    const r = await sql<{ host_id: number; epoch: number }>`insert into agent_session
        (host_id, server_id, epoch, state, last_seen)
      select h, ${me}, 1, 'connected', ${NOW_MS} from unnest(${ids}::bigint[]) with ordinality as u(h, n)
      order by n
      on conflict (host_id) do update set server_id = excluded.server_id, epoch = agent_session.epoch + 1,
        state = 'connected', last_seen = excluded.last_seen
      returning host_id, epoch`.execute(this.db);
    return new Map(r.rows.map((x) => [Number(x.host_id), Number(x.epoch)]));
  }

  /** Ends these sessions (a session that a newer one replaced is left alone). */
  async closeSessions(ended: readonly { hostId: number; epoch: number }[]): Promise<void> {
    if (ended.length === 0) return;
    const ids = `{${ended.map((e) => e.hostId).join(',')}}`;
    const epochs = `{${ended.map((e) => e.epoch).join(',')}}`;
    await sql`update agent_session s set state = 'gone', last_seen = ${NOW_MS}
      from unnest(${ids}::bigint[], ${epochs}::bigint[]) as u(host_id, epoch)
      where s.host_id = u.host_id and s.epoch = u.epoch`.execute(this.db);
  }

  /**
   * Those of `hostIds` no longer in the inventory (removed through any server). One array
   * parameter, not one per id: a server checks all its connected agents every few seconds.
   */
  async removedAmong(hostIds: readonly number[]): Promise<number[]> {
    if (hostIds.length === 0) return [];
    const r = await sql<{ id: number }>`select id from host
      where id = any(${`{${hostIds.join(',')}}`}::bigint[])`.execute(this.db);
    const present = new Set(r.rows.map((x) => Number(x.id)));
    return hostIds.filter((id) => !present.has(id));
  }

  async sessions(hostIds: number[]): Promise<Map<number, HostSession>> {
    if (hostIds.length === 0) return new Map();
    const r = await sql<{
      host_id: number;
      server_id: string;
      epoch: number;
      state: 'connected' | 'gone';
      last_seen: number;
      server_state: 'alive' | 'dead' | null;
      heartbeat_at: number | null;
    }>`select s.host_id, s.server_id, s.epoch, s.state, s.last_seen, n.state as server_state, n.heartbeat_at
      from agent_session s left join server_node n on n.id = s.server_id
      where s.host_id = any(${`{${hostIds.join(',')}}`}::bigint[])`.execute(this.db);
    return new Map(
      r.rows.map((x) => [
        Number(x.host_id),
        {
          hostId: Number(x.host_id),
          serverId: x.server_id,
          epoch: Number(x.epoch),
          state: x.state,
          lastSeen: Number(x.last_seen),
          serverState: x.server_state ?? undefined,
          serverHeartbeatAt: x.heartbeat_at === null ? undefined : Number(x.heartbeat_at),
        },
      ]),
    );
  }

  // ---------------------------------------------------------------- the outbox

  /**
   * Stores commands all or none: in statements of ENQUEUE_CHUNK rows (one statement for a
   * 10,000-host dispatch passed PostgreSQL's 65,535 bound parameters and was refused, again at
   * every retry), in one transaction, so a retry after a failure never stores a command twice.
   */
  async enqueue(rows: NewCommand[]): Promise<void> {
    if (rows.length === 0) return;
    const now = Date.now();
    await this.db.transaction().execute(async (tx) => {
      for (let i = 0; i < rows.length; i += ENQUEUE_CHUNK) {
        await tx
          .insertInto('agent_command')
          .values(
            rows.slice(i, i + ENQUEUE_CHUNK).map((r) => ({
              host_id: r.hostId,
              type: r.type,
              step_instance_id: r.stepInstanceId,
              execute_count: r.executeCount,
              payload: r.payload,
              sent_epoch: r.sentEpoch,
              created_at: now,
            })),
          )
          .execute();
      }
    });
  }

  /**
   * Claims the commands for agents whose session this server holds and that were not sent under
   * the session's current epoch; marks them sent under it. Hosts in `skip` are left out (their
   * agents are not ready here yet: their commands would only be unclaimed again).
   */
  async claimCommands(me: string, limit: number, skip: readonly number[] = []): Promise<ClaimedCommand[]> {
    const r = await sql<{
      id: number;
      host_id: number;
      type: string;
      step_instance_id: number | null;
      execute_count: number | null;
      payload: string;
      epoch: number;
      status: number | null;
      log_bytes: number | null;
    }>`with due as (
        select c.id, s.epoch from agent_command c join agent_session s on s.host_id = c.host_id
        where s.server_id = ${me} and s.state = 'connected' and c.sent_epoch is distinct from s.epoch
          and not (c.host_id = any(${`{${skip.join(',')}}`}::bigint[]))
        order by c.id limit ${limit} for update of c skip locked)
      update agent_command c set sent_epoch = due.epoch from due where c.id = due.id
      returning c.id, c.host_id, c.type, c.step_instance_id, c.execute_count, c.payload, due.epoch,
        (select t.status from host_task t where t.step_instance_id = c.step_instance_id
          and t.execute_count = c.execute_count and t.host_id = c.host_id) as status,
        (select t.log_bytes from host_task t where t.step_instance_id = c.step_instance_id
          and t.execute_count = c.execute_count and t.host_id = c.host_id) as log_bytes`.execute(this.db);
    return r.rows
      .map((x) => ({
        id: Number(x.id),
        hostId: Number(x.host_id),
        type: x.type,
        stepInstanceId: x.step_instance_id === null ? null : Number(x.step_instance_id),
        executeCount: x.execute_count,
        payload: x.payload,
        epoch: Number(x.epoch),
        taskStatus: x.status,
        logBytes: x.log_bytes === null ? null : Number(x.log_bytes),
      }))
      .sort((a, b) => a.id - b.id);
  }

  /**
   * Commands claimed under a session that could not take them after all: claimable again, by
   * whichever server holds the host's session next (or this one, once the session is ready).
   * Not where another server has claimed one since, under a newer session.
   */
  async unclaimCommands(claimed: readonly { id: number; epoch: number }[]): Promise<void> {
    if (claimed.length === 0) return;
    const ids = `{${claimed.map((c) => c.id).join(',')}}`;
    const epochs = `{${claimed.map((c) => c.epoch).join(',')}}`;
    await sql`update agent_command c set sent_epoch = null
      from unnest(${ids}::bigint[], ${epochs}::bigint[]) as u(id, epoch)
      where c.id = u.id and c.sent_epoch = u.epoch`.execute(this.db);
  }

  async deleteCommands(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.deleteFrom('agent_command').where('id', 'in', ids).execute();
  }

  async deleteCommandsOfStep(stepInstanceId: number, executeCount: number): Promise<void> {
    await this.db
      .deleteFrom('agent_command')
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .execute();
  }

  /**
   * Host tasks changed since the version seen, for many step executions in one query (the
   * owner's recount of the steps it runs).
   */
  async hostTasksChangedSince(
    seen: readonly { stepInstanceId: number; executeCount: number; version: number }[],
  ): Promise<HostTask[]> {
    if (seen.length === 0) return [];
    const wanted = sql.join(
      seen.map((x) => sql`(${x.stepInstanceId}::bigint, ${x.executeCount}::int, ${x.version}::bigint)`),
    );
    const r = await sql<HostTask>`select t.* from host_task t
      join (values ${wanted}) as w(step_instance_id, execute_count, version)
        on t.step_instance_id = w.step_instance_id and t.execute_count = w.execute_count
      where t.version > w.version`.execute(this.db);
    return r.rows;
  }

  // ---------------------------------------------------------------- file offers

  /** An agent held here answered `file.serve` for a step run elsewhere: kept for the step's owner. */
  async recordOffer(o: { stepInstanceId: number; executeCount: number; hostId: number; payload: string }) {
    await this.db
      .insertInto('file_offer')
      .values({
        step_instance_id: o.stepInstanceId,
        execute_count: o.executeCount,
        host_id: o.hostId,
        payload: o.payload,
        created_at: Date.now(),
      })
      .execute();
  }

  /** Takes (and removes) the offers recorded for these steps, oldest first. */
  async takeOffers(
    stepInstanceIds: number[],
  ): Promise<{ stepInstanceId: number; executeCount: number; hostId: number; payload: string }[]> {
    if (stepInstanceIds.length === 0) return [];
    const r = await sql<{
      id: number;
      step_instance_id: number;
      execute_count: number;
      host_id: number;
      payload: string;
    }>`delete from file_offer where step_instance_id in (${sql.join(stepInstanceIds)})
      returning id, step_instance_id, execute_count, host_id, payload`.execute(this.db);
    return r.rows
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((x) => ({
        stepInstanceId: Number(x.step_instance_id),
        executeCount: x.execute_count,
        hostId: Number(x.host_id),
        payload: x.payload,
      }));
  }

  // ---------------------------------------------------------------- client request ids

  /**
   * Takes the claim on one app's client_request_id for `holder`: false while another holds it.
   * A claim older than `staleMs` (its server died during the submission) is taken over.
   */
  async claimClientRequest(appCode: string, id: string, holder: string, staleMs: number): Promise<boolean> {
    const r = await sql`insert into client_request_claim (app_code, client_request_id, holder, claimed_at)
      values (${appCode}, ${id}, ${holder}, ${NOW_MS})
      on conflict (app_code, client_request_id) do update
        set holder = excluded.holder, claimed_at = excluded.claimed_at
        where client_request_claim.claimed_at < ${NOW_MS} - ${staleMs}::bigint
      returning holder`.execute(this.db);
    return r.rows.length > 0;
  }

  async releaseClientRequest(appCode: string, id: string, holder: string): Promise<void> {
    await sql`delete from client_request_claim
      where app_code = ${appCode} and client_request_id = ${id} and holder = ${holder}`.execute(this.db);
  }

  // ---------------------------------------------------------------- leftovers

  /**
   * Removes what no server will use again, older than `before`: agent commands and file offers
   * of jobs no longer in flight (or of no step: offer requests for hosts that never came back),
   * client request claims, and the rows of servers dead since then that hold no connected
   * session and no unfinished job. A missing server row reads as dead everywhere.
   */
  async pruneLeftovers(before: number): Promise<number> {
    const finishedStep = (table: string) =>
      sql`not exists (select 1 from step_instance s join job_instance j on j.id = s.job_instance_id
        where s.id = ${sql.ref(`${table}.step_instance_id`)} and j.status in (${sql.join(IN_FLIGHT_JOB_STATUSES)}))`;
    const commands = await sql`delete from agent_command
      where created_at < ${before} and ${finishedStep('agent_command')}`.execute(this.db);
    const offers = await sql`delete from file_offer
      where created_at < ${before} and ${finishedStep('file_offer')}`.execute(this.db);
    // Claims a release did not reach (a server cut off from the database, or killed).
    const claims = await sql`delete from client_request_claim where claimed_at < ${before}`.execute(this.db);
    const servers = await sql`delete from server_node n where n.state = 'dead' and n.stopped_at < ${before}
      and not exists (select 1 from agent_session s where s.server_id = n.id and s.state = 'connected')
      and not exists (select 1 from job_instance j where j.owner_id = n.id
        and j.status in (${sql.join(IN_FLIGHT_JOB_STATUSES)}))`.execute(this.db);
    return [commands, offers, claims, servers].reduce((n, r) => n + Number(r.numAffectedRows ?? 0), 0);
  }

  // ---------------------------------------------------------------- the view

  async view(): Promise<{ now: number; servers: ClusterServerView[] }> {
    const now = await this.now();
    const r =
      await sql<ClusterServerView>`select n.id, n.url, n.state, n.started_at, n.heartbeat_at, n.stopped_at,
        (select count(*) from agent_session s where s.server_id = n.id and s.state = 'connected')::int as agents,
        (select count(*) from job_instance j where j.owner_id = n.id and j.status in (${sql.join(IN_FLIGHT_JOB_STATUSES)}))::int as jobs
      from server_node n where n.state = 'alive' or n.stopped_at > ${now - 3_600_000}::bigint
      order by n.started_at`.execute(this.db);
    return { now, servers: r.rows };
  }
}
