/**
 * Storage operations for the inventory: businesses, business sets, hosts, topology, dynamic
 * groups and execution accounts.
 */
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Selectable } from 'kysely';
import { insertAuditEntries } from './audit-store.js';
import type { AuditRecord } from './audit-store.js';
import { onConnectionAround } from './connection-around.js';
import type { EngineCapabilities } from './engines.js';
import { idChunks } from './id-chunks.js';
import { containsLike } from './list-filters.js';
import type { AccountTable, Database, DynamicGroupTable, HostTable } from './schema.js';
import { integerValues } from './values-list.js';

export type Host = Selectable<HostTable>;
export type Account = Selectable<AccountTable>;
export type DynamicGroup = Selectable<DynamicGroupTable>;
/** What a job needs of a target host: which host, its address, its agent and its business. */
export type TargetHost = Pick<Host, 'id' | 'cloud_id' | 'ip' | 'ipv6' | 'agent_id' | 'biz_id'>;
export type GroupHost = TargetHost & Pick<Host, 'hostname' | 'os_type'>;
const TARGET_COLUMNS = ['id', 'cloud_id', 'ip', 'ipv6', 'agent_id', 'biz_id'] as const;

export interface HostRegistration {
  cloudId: number;
  ip: string;
  ipv6: string;
  hostname: string;
  osType: string;
  agentId: string;
  agentTokenHash: string;
  bizId: number | null;
}

/**
 * Heartbeats per statement (two bound parameters each). Small enough that SQLite joins the VALUES list to host by its key: from about a thousand rows
 * on, it scans every host for each statement instead (46 ms a statement at 50,000 hosts, where
 * 200 rows by key take 1 ms).
 */
const HEARTBEAT_CHUNK = 200;

export class InventoryStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: EngineCapabilities,
  ) {}

  async createBiz(id: number, name: string): Promise<void> {
    await this.db.insertInto('biz').values({ id, name, created_at: Date.now() }).execute();
  }

  async getBiz(id: number): Promise<{ id: number; name: string } | undefined> {
    return this.db.selectFrom('biz').select(['id', 'name']).where('id', '=', id).executeTakeFirst();
  }

  async listBiz(): Promise<{ id: number; name: string }[]> {
    return this.db.selectFrom('biz').select(['id', 'name']).orderBy('id').execute();
  }

  /** The IANA time zone a business or business set set for itself, or null. */
  async scopeTimeZone(type: 'biz' | 'biz_set', id: number): Promise<string | null> {
    const row = await this.db.selectFrom(type).select('time_zone').where('id', '=', id).executeTakeFirst();
    return row?.time_zone ?? null;
  }

  /** Sets (or with null clears) a scope's time zone; false when the scope does not exist. */
  async setScopeTimeZone(type: 'biz' | 'biz_set', id: number, timeZone: string | null): Promise<boolean> {
    const r = await this.db
      .updateTable(type)
      .set({ time_zone: timeZone })
      .where('id', '=', id)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Removes a host from the inventory (its module memberships go with it); jobs keep their
   * records of it. False when there is no such host.
   */
  async removeHost(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('host').where('id', '=', id).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async createBizSet(id: number, name: string, bizIds: number[]): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('biz_set').values({ id, name, created_at: Date.now() }).execute();
      if (bizIds.length > 0) {
        await tx
          .insertInto('biz_set_member')
          .values(bizIds.map((biz_id) => ({ biz_set_id: id, biz_id })))
          .execute();
      }
    });
  }

  async getBizSet(id: number): Promise<{ id: number; name: string; bizIds: number[] } | undefined> {
    const row = await this.db
      .selectFrom('biz_set')
      .select(['id', 'name'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const members = await this.db
      .selectFrom('biz_set_member')
      .select('biz_id')
      .where('biz_set_id', '=', id)
      .orderBy('biz_id')
      .execute();
    return { ...row, bizIds: members.map((m) => m.biz_id) };
  }

  async listBizSets(): Promise<{ id: number; name: string; bizIds: number[] }[]> {
    const sets = await this.db.selectFrom('biz_set').select(['id', 'name']).orderBy('id').execute();
    const bizIds = new Map<number, number[]>();
    for (const m of await this.db.selectFrom('biz_set_member').selectAll().orderBy('biz_id').execute()) {
      const ids = bizIds.get(m.biz_set_id);
      if (ids) ids.push(m.biz_id);
      else bizIds.set(m.biz_set_id, [m.biz_id]);
    }
    return sets.map((s) => ({ ...s, bizIds: bizIds.get(s.id) ?? [] }));
  }

  /**
   * An agent registering again from the same cloud id + ip takes over that host record (a
   * reinstalled machine keeps its bk_host_id); a first registration creates the host. Several
   * registrations share one transaction (one commit) and are applied in order, so two in one
   * batch for the same address end as the second one. Each address once per statement: one
   * upsert stores all of them (a round trip per batch on PostgreSQL, not two per agent).
   */
  async registerAgentHosts(
    regs: readonly HostRegistration[],
    /** The audit entry of each registration, stored in the same commit. */
    auditOf?: (host: Host, index: number) => AuditRecord & { at: number },
  ): Promise<Host[]> {
    const key = (cloudId: number, ip: string) => `${cloudId} ${ip}`;
    return this.db.transaction().execute(async (tx) => {
      const hosts: Host[] = [];
      let rest = regs.map((reg, i) => ({ reg, i }));
      while (rest.length > 0) {
        const round: typeof rest = [];
        const later: typeof rest = [];
        const keys = new Set<string>();
        for (const r of rest) {
          const k = key(r.reg.cloudId, r.reg.ip);
          if (keys.has(k)) later.push(r);
          else {
            keys.add(k);
            round.push(r);
          }
        }
        const stored = await upsertRegisteredHosts(
          tx,
          round.map((r) => r.reg),
        );
        const byKey = new Map(stored.map((h) => [key(Number(h.cloud_id), h.ip), h]));
        // A host revoked since its registration was checked takes no new agent: it comes back
        // as it is, revoked, for the caller to refuse.
        const missing = round.filter((r) => !byKey.has(key(r.reg.cloudId, r.reg.ip)));
        for (const h of await hostsAt(
          tx,
          missing.map((r) => r.reg),
        ))
          byKey.set(key(Number(h.cloud_id), h.ip), h);
        for (const r of round) {
          const host = byKey.get(key(r.reg.cloudId, r.reg.ip));
          if (!host) throw new Error(`host ${r.reg.cloudId}:${r.reg.ip} not stored`);
          hosts[r.i] = host;
        }
        rest = later;
      }
      if (auditOf) await insertAuditEntries(tx, hosts.map(auditOf));
      return hosts;
    });
  }

  /** Adds a host by hand (no agent yet): it will show agent status 0 until an agent registers. */
  async addHost(h: {
    cloudId: number;
    ip: string;
    hostname?: string;
    osType?: string;
    bizId?: number;
  }): Promise<Host> {
    return this.db
      .insertInto('host')
      .values({
        cloud_id: h.cloudId,
        ip: h.ip,
        ipv6: '',
        hostname: h.hostname ?? '',
        os_type: h.osType ?? 'linux',
        agent_id: null,
        agent_token_hash: null,
        agent_status: 0,
        agent_version: '',
        last_heartbeat: null,
        biz_id: h.bizId ?? null,
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Hosts by agent id, in any order; ids no host holds are left out. */
  async findHostsByAgentIds(agentIds: readonly string[]): Promise<Host[]> {
    if (agentIds.length === 0) return [];
    const hosts = this.db.selectFrom('host').selectAll();
    // One array parameter on PostgreSQL: one statement text (and prepared plan) for every count.
    if (this.caps.name === 'postgres')
      return hosts.where(sql<boolean>`agent_id = any(${[...agentIds]}::text[])`).execute();
    const out: Host[] = [];
    for (const chunk of idChunks(agentIds))
      out.push(...(await hosts.where('agent_id', 'in', chunk).execute()));
    return out;
  }

  async getHostsByIds(ids: readonly number[]): Promise<Host[]> {
    return this.byIds(ids, (where) => this.db.selectFrom('host').selectAll().where(where).execute());
  }

  /** The target fields of hosts by id, for a job's targets: half the columns of a host. */
  async getTargetHostsByIds(ids: readonly number[]): Promise<TargetHost[]> {
    return this.byIds(ids, (where) =>
      this.db.selectFrom('host').select(TARGET_COLUMNS).where(where).execute(),
    );
  }

  /** A business's hosts as targets, by id: a third of a host's columns, read in one statement. */
  async targetHostsOfBiz(bizId: number): Promise<TargetHost[]> {
    return this.db
      .selectFrom('host')
      .select(TARGET_COLUMNS)
      .where('biz_id', '=', bizId)
      .orderBy('id')
      .execute();
  }

  /**
   * The hosts of a business in any of these modules, in one statement: a host moved to another
   * business keeps its module rows but has left the old business's topology (as a CMDB move
   * does). Reading the module's host ids first and then the hosts sent 50,000 ids back. In no
   * order, as before: sorting 50,000 rows spilled to disk on PostgreSQL (40 of 120 ms).
   */
  async targetHostsInModules(moduleIds: readonly number[], bizId: number): Promise<TargetHost[]> {
    if (moduleIds.length === 0) return [];
    return this.db
      .selectFrom('host')
      .select(TARGET_COLUMNS)
      .where('biz_id', '=', bizId)
      .where('id', 'in', (eb) =>
        eb.selectFrom('host_module').select('host_id').where('module_id', 'in', moduleIds),
      )
      .execute();
  }

  /** A business's hosts with what a dynamic group filters on (dynamic-group.ts). */
  async groupHostsOfBiz(bizId: number): Promise<GroupHost[]> {
    return this.db
      .selectFrom('host')
      .select([...TARGET_COLUMNS, 'hostname', 'os_type'])
      .where('biz_id', '=', bizId)
      .orderBy('id')
      .execute();
  }

  /** The module ids of each host of a business, by a join: not by a list of every host's id. */
  async moduleIdsOfBizHosts(bizId: number): Promise<Map<number, number[]>> {
    const rows = await this.db
      .selectFrom('host_module')
      .innerJoin('host', 'host.id', 'host_module.host_id')
      .select(['host_module.host_id', 'host_module.module_id'])
      .where('host.biz_id', '=', bizId)
      .execute();
    return modulesByHost(rows);
  }

  /**
   * What `read` finds of hosts with the given ids. On PostgreSQL one statement over an array
   * (its literal made here: node-postgres prepares an array element by element); elsewhere
   * chunked so a 50,000-host list stays under the engine's bound-parameter limit.
   */
  private async byIds<R>(
    ids: readonly number[],
    read: (where: RawBuilder<boolean>) => Promise<R[]>,
  ): Promise<R[]> {
    if (ids.length === 0) return [];
    if (this.caps.name === 'postgres') return read(sql<boolean>`id = any(${`{${ids.join(',')}}`}::bigint[])`);
    const out: R[] = [];
    for (const chunk of idChunks(ids)) out.push(...(await read(sql<boolean>`id in (${sql.join(chunk)})`)));
    return out;
  }

  async getHostsByCloudIps(pairs: readonly { cloudId: number; ip: string }[]): Promise<Host[]> {
    if (pairs.length === 0) return [];
    // Per cloud id, so that the lookup goes by the (cloud_id, ip) key: `ip in (…)` alone scans
    // every host, which made each registration cost in proportion to the fleet.
    const ipsByCloud = new Map<number, Set<string>>();
    for (const p of pairs) {
      const ips = ipsByCloud.get(p.cloudId) ?? new Set<string>();
      ipsByCloud.set(p.cloudId, ips.add(p.ip));
    }
    const out: Host[] = [];
    for (const [cloudId, set] of ipsByCloud) {
      const ips = [...set];
      for (const chunk of idChunks(ips))
        out.push(
          ...(await this.db
            .selectFrom('host')
            .selectAll()
            .where('cloud_id', '=', cloudId)
            .where('ip', 'in', chunk)
            .execute()),
        );
    }
    return out;
  }

  /**
   * Hosts in id order; `afterId` and `limit` read one page of them by key, so a page deep into a
   * 50,000-host store costs what the first one does.
   */
  async listHosts(filter: { bizId?: number; afterId?: number; limit?: number } = {}): Promise<Host[]> {
    let q = this.db.selectFrom('host').selectAll().orderBy('id');
    if (filter.bizId !== undefined) q = q.where('biz_id', '=', filter.bizId);
    if (filter.afterId !== undefined) q = q.where('id', '>', filter.afterId);
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    return q.execute();
  }

  /**
   * The hosts of a business get_host_list's filters take (a part of the IP, IPv6 or host name,
   * any case; an OS), in id order, with what their live status is judged from: the page it
   * answers is read whole afterwards (getHostsByIds). Filtered here, not in the server, and two
   * columns read: a 50,000-host business took 136 ms a call on SQLite to read six columns of
   * every host to filter and count them.
   */
  async findHostStatuses(
    bizId: number,
    f: { keyword?: string | undefined; osType?: string | undefined },
  ): Promise<Pick<Host, 'id' | 'agent_status'>[]> {
    let q = this.db.selectFrom('host').select(['id', 'agent_status']).where('biz_id', '=', bizId);
    if (f.osType) q = q.where('os_type', '=', f.osType);
    if (f.keyword) {
      const part = containsLike(f.keyword);
      q = q.where(
        sql<boolean>`(lower(ip) like ${part} or lower(ipv6) like ${part} or lower(hostname) like ${part})`,
      );
    }
    return q.orderBy('id').execute();
  }

  async assignHostToBiz(hostId: number, bizId: number | null): Promise<boolean> {
    const r = await this.db
      .updateTable('host')
      .set({ biz_id: bizId })
      .where('id', '=', hostId)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * One statement per HEARTBEAT_CHUNK hosts (50,000 agents beat 10,000 times a second at the default
   * interval), committed without waiting for the disk: a heartbeat is repeated a few seconds
   * later, and after a crash every agent counts as abnormal until it connects again
   * (markAllAgentsAbnormal), so one lost to a power cut changes nothing.
   */
  async recordHeartbeats(beats: readonly { hostId: number; at: number; version?: string }[]): Promise<void> {
    if (beats.length === 0) return;
    await onConnectionAround(this.db, this.caps.relaxedCommit, async (conn) => {
      for (let i = 0; i < beats.length; i += HEARTBEAT_CHUNK) {
        const chunk = beats.slice(i, i + HEARTBEAT_CHUNK);
        // Versions come with hellos, thousands at once after a server start: written by the same
        // statement as the beat (one row version per host, not a second update of each).
        if (chunk.some((b) => b.version !== undefined)) {
          const rows = chunk.map((b) => [b.hostId, b.at, b.version ?? null]);
          await sql`update host set last_heartbeat = v.column2, agent_status = 1,
            agent_version = coalesce(v.column3, host.agent_version)
            from (${integerValues(rows, { 2: 'text' })}) as v where host.id = v.column1`.execute(conn);
        } else {
          const rows = chunk.map((b) => [b.hostId, b.at]);
          await sql`update host set last_heartbeat = v.column2, agent_status = 1
            from (${integerValues(rows)}) as v where host.id = v.column1`.execute(conn);
        }
      }
    });
  }

  async markAgentsAbnormal(hostIds: readonly number[]): Promise<void> {
    for (const ids of idChunks(hostIds))
      await this.db.updateTable('host').set({ agent_status: 0 }).where('id', 'in', ids).execute();
  }

  /** Every agent counts as abnormal until it connects to a server again (used at server start). */
  async markAllAgentsAbnormal(): Promise<void> {
    await this.db.updateTable('host').set({ agent_status: 0 }).where('agent_status', '=', 1).execute();
  }

  async createSet(bizId: number, name: string): Promise<number> {
    const r = await this.db
      .insertInto('topo_set')
      .values({ biz_id: bizId, name })
      .returning('id')
      .executeTakeFirstOrThrow();
    return r.id;
  }

  async createModule(bizId: number, setId: number, name: string): Promise<number> {
    const r = await this.db
      .insertInto('topo_module')
      .values({ biz_id: bizId, set_id: setId, name })
      .returning('id')
      .executeTakeFirstOrThrow();
    return r.id;
  }

  async getSet(id: number): Promise<{ id: number; biz_id: number; name: string } | undefined> {
    return this.db.selectFrom('topo_set').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async getModule(
    id: number,
  ): Promise<{ id: number; biz_id: number; set_id: number; name: string } | undefined> {
    return this.db.selectFrom('topo_module').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async listTopology(bizId: number): Promise<{
    sets: { id: number; name: string }[];
    modules: { id: number; set_id: number; name: string }[];
  }> {
    const sets = await this.db
      .selectFrom('topo_set')
      .select(['id', 'name'])
      .where('biz_id', '=', bizId)
      .orderBy('id')
      .execute();
    const modules = await this.db
      .selectFrom('topo_module')
      .select(['id', 'set_id', 'name'])
      .where('biz_id', '=', bizId)
      .orderBy('id')
      .execute();
    return { sets, modules };
  }

  /**
   * Places hosts in a module (those already there stay as they are): all of them or, at an
   * error, none. Many rows a statement: a fleet of 50,000 hosts placed at once was 50,000
   * round trips, and a failure half-way left half of them placed.
   */
  async addHostsToModule(hostIds: readonly number[], moduleId: number): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      for (const part of idChunks([...new Set(hostIds)]))
        await tx
          .insertInto('host_module')
          .values(part.map((hostId) => ({ host_id: hostId, module_id: moduleId })))
          .onConflict((oc) => oc.columns(['host_id', 'module_id']).doNothing())
          .execute();
    });
  }

  async hostIdsInModules(moduleIds: readonly number[]): Promise<number[]> {
    if (moduleIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('host_module')
      .select('host_id')
      .where('module_id', 'in', moduleIds)
      .execute();
    return rows.map((r) => r.host_id);
  }

  async moduleIdsOfSets(setIds: readonly number[]): Promise<number[]> {
    if (setIds.length === 0) return [];
    const rows = await this.db.selectFrom('topo_module').select('id').where('set_id', 'in', setIds).execute();
    return rows.map((r) => r.id);
  }

  async moduleIdsOfHosts(hostIds: readonly number[]): Promise<Map<number, number[]>> {
    const rows: { host_id: number; module_id: number }[] = [];
    for (const ids of idChunks(hostIds))
      rows.push(
        ...(await this.db.selectFrom('host_module').selectAll().where('host_id', 'in', ids).execute()),
      );
    return modulesByHost(rows);
  }

  async createDynamicGroup(g: { id: string; bizId: number; name: string; filter: string }): Promise<void> {
    await this.db
      .insertInto('dynamic_group')
      .values({ id: g.id, biz_id: g.bizId, name: g.name, filter: g.filter, created_at: Date.now() })
      .execute();
  }

  async getDynamicGroups(ids: readonly string[]): Promise<DynamicGroup[]> {
    const groups: DynamicGroup[] = [];
    for (const part of idChunks(ids))
      groups.push(
        ...(await this.db.selectFrom('dynamic_group').selectAll().where('id', 'in', part).execute()),
      );
    return groups;
  }

  async listDynamicGroups(bizId: number): Promise<DynamicGroup[]> {
    return this.db
      .selectFrom('dynamic_group')
      .selectAll()
      .where('biz_id', '=', bizId)
      .orderBy('id')
      .execute();
  }

  async createAccount(a: {
    bizId: number;
    alias: string;
    osUser: string;
    osType: string;
    category?: number;
    creator?: string;
  }): Promise<Account> {
    return this.db
      .insertInto('account')
      .values({
        biz_id: a.bizId,
        alias: a.alias,
        os_user: a.osUser,
        os_type: a.osType,
        // Account types of the accounts API: 1 Linux, 2 Windows (database accounts are made there).
        type: a.osType === 'windows' ? 2 : 1,
        category: a.category ?? 1,
        creator: a.creator ?? '',
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async getAccount(id: number): Promise<Account | undefined> {
    return this.db.selectFrom('account').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Alias lookup is among system accounts (category 1) of the given businesses, as BK-JOB does. */
  async findSystemAccountByAlias(
    bizIds: readonly number[],
    alias: string,
    category: 1 | 2 = 1,
  ): Promise<Account | undefined> {
    if (bizIds.length === 0) return undefined;
    return this.db
      .selectFrom('account')
      .selectAll()
      .where('biz_id', 'in', bizIds)
      .where('category', '=', category)
      .where('alias', '=', alias)
      .orderBy('id')
      .executeTakeFirst();
  }

  async listAccounts(bizId: number): Promise<Account[]> {
    return this.db.selectFrom('account').selectAll().where('biz_id', '=', bizId).orderBy('id').execute();
  }
}

/**
 * Registrations of distinct addresses in one statement: a new address becomes a host, a known
 * one keeps its id (and its business unless one is given) and takes the new agent's facts.
 */
function upsertRegisteredHosts(db: Kysely<Database>, regs: readonly HostRegistration[]): Promise<Host[]> {
  const now = Date.now();
  return db
    .insertInto('host')
    .values(
      regs.map((reg) => ({
        cloud_id: reg.cloudId,
        ip: reg.ip,
        ipv6: reg.ipv6,
        hostname: reg.hostname,
        os_type: reg.osType,
        agent_id: reg.agentId,
        agent_token_hash: reg.agentTokenHash,
        biz_id: reg.bizId,
        agent_status: 0,
        agent_version: '',
        created_at: now,
      })),
    )
    .onConflict((oc) =>
      oc
        .columns(['cloud_id', 'ip'])
        .doUpdateSet((eb) => ({
          ipv6: eb.ref('excluded.ipv6'),
          hostname: eb.ref('excluded.hostname'),
          os_type: eb.ref('excluded.os_type'),
          agent_id: eb.ref('excluded.agent_id'),
          agent_token_hash: eb.ref('excluded.agent_token_hash'),
          biz_id: eb.fn.coalesce('excluded.biz_id', 'host.biz_id'),
        }))
        .where('host.agent_revoked_at', 'is', null),
    )
    .returningAll()
    .execute();
}

function hostsAt(db: Kysely<Database>, regs: readonly HostRegistration[]): Promise<Host[]> {
  if (regs.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('host')
    .selectAll()
    .where((eb) => eb.or(regs.map((r) => eb.and([eb('cloud_id', '=', r.cloudId), eb('ip', '=', r.ip)]))))
    .execute();
}

/** Host-module rows as each host's module ids. */
function modulesByHost(rows: readonly { host_id: number; module_id: number }[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const r of rows) {
    const list = out.get(r.host_id);
    if (list) list.push(r.module_id);
    else out.set(r.host_id, [r.module_id]);
  }
  return out;
}
