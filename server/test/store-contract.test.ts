/**
 * One contract for every storage engine: the same operations, run against SQLite and (when
 * configured) PostgreSQL, must give the same answers. An engine that cannot honour a check
 * lists it in SKIPS with the reason.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import type { Kysely, KyselyPlugin } from 'kysely';
import { openEngine } from '../src/store/engines.js';
import { migrateToLatest } from '../src/store/migrations.js';
import { RuleStore } from '../src/store/rule-store.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import type { EngineName } from './helpers/databases.js';
import type { Host, HostRegistration, InventoryStore } from '../src/store/inventory-store.js';
import { tempDir } from './helpers/processes.js';
import { ruleHit } from './helpers/store-fixtures.js';

async function registerOne(inv: InventoryStore, reg: HostRegistration): Promise<Host> {
  const [host] = await inv.registerAgentHosts([reg]);
  return host!;
}

async function hostOf(inv: InventoryStore, agentId: string): Promise<Host | undefined> {
  const hosts = await inv.findHostsByAgentIds([agentId]);
  assert.ok(hosts.length <= 1, `one host at most holds agent ${agentId}`);
  return hosts[0];
}

/** Checks an engine does not run, and why. Empty today: both engines pass the whole contract. */
const SKIPS: Record<EngineName, Partial<Record<string, string>>> = {
  sqlite: {},
  postgres: {},
};

const UNIQUE_VIOLATION = /^(23505|SQLITE_CONSTRAINT_(UNIQUE|PRIMARYKEY))$/;
const FOREIGN_KEY_VIOLATION = /^(23503|SQLITE_CONSTRAINT_FOREIGNKEY)$/;

/** The admin API turns these driver codes into CONFLICT / RESOURCE_NOT_FOUND, so both engines must raise them. */
async function rejectsWith(op: () => Promise<unknown>, code: RegExp): Promise<void> {
  await assert.rejects(op, (err: unknown) => {
    const c = (err as { code?: unknown }).code;
    assert.match(String(c), code);
    return true;
  });
}

after(dropFreshDatabases);

for (const engine of engines()) {
  describe(`store contract on ${engine}`, () => {
    let store: Store;
    let databaseUrl: string | undefined;
    let dataDir: string;
    const check = (name: string, fn: () => Promise<void>) =>
      it(name, SKIPS[engine][name] ? { skip: SKIPS[engine][name] } : {}, fn);

    before(async () => {
      databaseUrl = await freshDatabase(engine);
      dataDir = tempDir(`store-${engine}`);
    });
    after(async () => {
      await store?.close();
    });

    check('applies migrations to an empty database, then finds nothing left to apply', async () => {
      const opened = openEngine({ databaseUrl, dataDir });
      assert.equal(opened.caps.name, engine);
      try {
        const db = opened.db as unknown as Kysely<unknown>;
        const { applied } = await migrateToLatest(db, opened.caps);
        assert.ok(applied.includes('0001_inventory'), `applied: ${applied.join(', ')}`);
        assert.deepEqual(await migrateToLatest(db, opened.caps), { applied: [], newer: [] });
        // A migration that fails midway (a crash, here a name already taken) leaves nothing of
        // itself behind: the next start applies it whole.
        await sql`delete from jobfleet_migration where name = '0045_missed_callbacks'`.execute(db);
        await sql`drop index job_instance_callback_end`.execute(db);
        await sql`drop index callback_job`.execute(db);
        await sql`create index callback_job on job_instance (id)`.execute(db);
        await assert.rejects(migrateToLatest(db, opened.caps), /callback_job/);
        const index = async () =>
          (
            await sql<{ name: string }>`${sql.raw(
              engine === 'sqlite'
                ? `select name from sqlite_master where type = 'index'`
                : `select indexname as name from pg_indexes`,
            )}`.execute(db)
          ).rows.some((r) => r.name === 'job_instance_callback_end');
        assert.equal(await index(), false, "the failed migration's first index was undone");
        await sql`drop index callback_job`.execute(db);
        assert.deepEqual(await migrateToLatest(db, opened.caps), {
          applied: ['0045_missed_callbacks'],
          newer: [],
        });
        assert.equal(await index(), true);
        // A newer version migrated it further (a rolling upgrade): this one runs on it as it is.
        await sql`insert into jobfleet_migration (name, timestamp) values ('9999_newer', '2026-12-04')`.execute(
          db,
        );
        assert.deepEqual(await migrateToLatest(db, opened.caps), { applied: [], newer: ['9999_newer'] });
        // Unknown ones and one of its own missing: which came first cannot be told.
        await sql`update jobfleet_migration set name = '0001_moved' where name = '0001_inventory'`.execute(
          db,
        );
        await assert.rejects(migrateToLatest(db, opened.caps), /newer Jobfleet .*lacks 0001_inventory/);
        await sql`update jobfleet_migration set name = '0001_inventory' where name = '0001_moved'`.execute(
          db,
        );
        await sql`delete from jobfleet_migration where name = '9999_newer'`.execute(db);
      } finally {
        await opened.db.destroy();
      }
      // Store.open migrates again on a migrated database: nothing to do, no error.
      store = await Store.open({ databaseUrl, dataDir });
      assert.equal(store.caps.name, engine);
      assert.deepEqual(await migrateToLatest(store.db as unknown as Kysely<unknown>, store.caps), {
        applied: [],
        newer: [],
      });
      assert.equal(await store.healthy(), true);
    });

    check('businesses: create, get, list in id order, refuse a duplicate id', async () => {
      const inv = store.inventory;
      await inv.createBiz(3, 'three');
      await inv.createBiz(2, 'two');
      assert.deepEqual(await inv.getBiz(2), { id: 2, name: 'two' });
      assert.equal(await inv.getBiz(999), undefined);
      assert.deepEqual(await inv.listBiz(), [
        { id: 2, name: 'two' },
        { id: 3, name: 'three' },
      ]);
      await rejectsWith(() => inv.createBiz(2, 'again'), UNIQUE_VIOLATION);
      assert.equal((await inv.getBiz(2))?.name, 'two');
    });

    check('business sets: members sorted, empty sets, atomic failure on an unknown member', async () => {
      const inv = store.inventory;
      await inv.createBizSet(8_000_001, 'both', [3, 2]);
      await inv.createBizSet(8_000_002, 'empty', []);
      assert.deepEqual(await inv.getBizSet(8_000_001), { id: 8_000_001, name: 'both', bizIds: [2, 3] });
      assert.deepEqual(await inv.getBizSet(8_000_002), { id: 8_000_002, name: 'empty', bizIds: [] });
      assert.equal(await inv.getBizSet(8_000_999), undefined);
      await rejectsWith(() => inv.createBizSet(8_000_003, 'bad', [2, 404]), FOREIGN_KEY_VIOLATION);
      assert.equal(await inv.getBizSet(8_000_003), undefined, 'the set row was rolled back with its members');
      await rejectsWith(() => inv.createBizSet(8_000_001, 'dup', []), UNIQUE_VIOLATION);
      const sets = await inv.listBizSets();
      assert.deepEqual(
        sets.map((s) => [s.id, [...s.bizIds].sort()]),
        [
          [8_000_001, [2, 3]],
          [8_000_002, []],
        ],
      );
    });

    check('host registration re-uses the host of the same cloud id + ip', async () => {
      const inv = store.inventory;
      const reg = {
        cloudId: 0,
        ip: '10.0.0.1',
        ipv6: '',
        hostname: 'web-1',
        osType: 'linux',
        agentId: 'agent-a',
        agentTokenHash: 'hash-a',
        bizId: 2,
      };
      const first = await registerOne(inv, reg);
      assert.equal(typeof first.id, 'number');
      assert.equal(first.biz_id, 2);
      assert.equal(first.agent_status, 0);
      assert.equal(first.agent_id, 'agent-a');
      assert.equal(first.cloud_id, 0);
      assert.equal(typeof first.created_at, 'number');

      const again = await registerOne(inv, {
        ...reg,
        hostname: 'web-1b',
        agentId: 'agent-b',
        agentTokenHash: 'hash-b',
        bizId: null,
      });
      assert.equal(again.id, first.id, 'same cloud id + ip keeps bk_host_id');
      assert.equal(again.agent_id, 'agent-b');
      assert.equal(again.hostname, 'web-1b');
      assert.equal(again.biz_id, 2, 'a registration without a business keeps the host where it is');
      assert.equal(await hostOf(inv, 'agent-a'), undefined);
      assert.equal((await hostOf(inv, 'agent-b'))?.id, first.id);

      const moved = await registerOne(inv, { ...reg, agentId: 'agent-c', bizId: 3 });
      assert.equal(moved.id, first.id);
      assert.equal(moved.biz_id, 3);

      const otherCloud = await registerOne(inv, { ...reg, cloudId: 1, agentId: 'agent-d' });
      assert.notEqual(otherCloud.id, first.id, 'another cloud area is another host');
      assert.equal(otherCloud.cloud_id, 1);

      // One commit for several agents, applied in order: the later one for an address wins.
      const batch = await inv.registerAgentHosts([
        { ...reg, ip: '10.0.9.1', agentId: 'agent-e' },
        { ...reg, ip: '10.0.9.2', agentId: 'agent-f' },
        { ...reg, ip: '10.0.9.1', agentId: 'agent-g' },
      ]);
      assert.equal(batch.length, 3);
      assert.equal(batch[2]!.id, batch[0]!.id);
      assert.notEqual(batch[1]!.id, batch[0]!.id);
      assert.equal((await hostOf(inv, 'agent-g'))?.id, batch[0]!.id);
      assert.equal(await hostOf(inv, 'agent-e'), undefined);
      for (const h of batch.slice(0, 2)) await inv.removeHost(h.id);

      // Revoked while a registration for it waited for its commit: the host takes no new agent,
      // and the others of the commit are stored.
      await store.agentTrust.revoke(first.id);
      const [late, other] = await inv.registerAgentHosts([
        { ...reg, agentId: 'agent-h', agentTokenHash: 'hash-h' },
        { ...reg, ip: '10.0.9.3', agentId: 'agent-i' },
      ]);
      assert.equal(late?.id, first.id);
      assert.equal(typeof late?.agent_revoked_at, 'number');
      assert.equal(late?.agent_token_hash, null, 'no token for a revoked host');
      assert.equal(await hostOf(inv, 'agent-h'), undefined);
      assert.equal((await hostOf(inv, 'agent-i'))?.id, other?.id);
      // Several agents in one read (handshakes arriving together), unknown ids left out.
      const found = await inv.findHostsByAgentIds(['agent-i', 'agent-none', 'agent-d', 'agent-i']);
      assert.deepEqual(
        found.map((h) => h.id).sort((a, b) => a - b),
        [otherCloud.id, other!.id].sort((a, b) => a - b),
      );
      await store.agentTrust.readmit(first.id);
      if (other) await inv.removeHost(other.id);
    });

    check('hosts added by hand: defaults, duplicates refused, an agent takes them over', async () => {
      const inv = store.inventory;
      const h = await inv.addHost({ cloudId: 0, ip: '10.0.0.2', hostname: 'db-1', bizId: 2 });
      assert.equal(h.agent_id, null);
      assert.equal(h.agent_status, 0);
      assert.equal(h.os_type, 'linux');
      assert.equal(h.last_heartbeat, null);
      const bare = await inv.addHost({ cloudId: 0, ip: '10.0.0.3' });
      assert.equal(bare.biz_id, null);
      assert.equal(bare.hostname, '');
      await rejectsWith(() => inv.addHost({ cloudId: 0, ip: '10.0.0.2' }), UNIQUE_VIOLATION);

      const taken = await registerOne(inv, {
        cloudId: 0,
        ip: '10.0.0.2',
        ipv6: '',
        hostname: 'db-1',
        osType: 'linux',
        agentId: 'agent-db',
        agentTokenHash: 'x',
        bizId: null,
      });
      assert.equal(taken.id, h.id);
      assert.equal(taken.agent_id, 'agent-db');
      assert.equal(taken.biz_id, 2);
    });

    check('host lookups by ids, by cloud:ip and by business; assignment', async () => {
      const inv = store.inventory;
      const all = await inv.listHosts();
      assert.deepEqual(
        all.map((h) => h.id),
        [...all.map((h) => h.id)].sort((a, b) => a - b),
        'listHosts is in id order',
      );
      const byIp = new Map(all.map((h) => [`${h.cloud_id}:${h.ip}`, h]));
      const web = byIp.get('0:10.0.0.1');
      const db = byIp.get('0:10.0.0.2');
      const bare = byIp.get('0:10.0.0.3');
      assert.ok(web && db && bare);

      // More ids than one chunk, almost all unknown: only the real ones come back.
      const ids = [...Array.from({ length: 6000 }, (_, i) => 100_000 + i), web.id, bare.id, web.id];
      const got = await inv.getHostsByIds(ids);
      assert.deepEqual(
        got.map((h) => h.id).sort((a, b) => a - b),
        [web.id, bare.id].sort((a, b) => a - b),
      );
      assert.deepEqual(await inv.getHostsByIds([]), []);

      const pairs = await inv.getHostsByCloudIps([
        { cloudId: 0, ip: '10.0.0.1' },
        { cloudId: 1, ip: '10.0.0.2' }, // no such pair: 10.0.0.2 is in cloud 0
        { cloudId: 1, ip: '10.0.0.1' },
      ]);
      assert.deepEqual(pairs.map((h) => `${h.cloud_id}:${h.ip}`).sort(), ['0:10.0.0.1', '1:10.0.0.1']);

      const inBiz2 = async () =>
        (await inv.listHosts({ bizId: 2 })).map((h) => `${h.cloud_id}:${h.ip}`).sort();
      assert.deepEqual(await inBiz2(), ['0:10.0.0.2', '1:10.0.0.1'], 'web (cloud 0) moved to biz 3');
      assert.equal(await inv.assignHostToBiz(bare.id, 2), true);
      assert.deepEqual(await inBiz2(), ['0:10.0.0.2', '0:10.0.0.3', '1:10.0.0.1']);
      assert.equal(await inv.assignHostToBiz(bare.id, null), true);
      assert.equal((await inv.getHostsByIds([bare.id]))[0]?.biz_id, null);
      assert.equal(await inv.assignHostToBiz(987_654, 2), false);
      await rejectsWith(() => inv.assignHostToBiz(bare.id, 404), FOREIGN_KEY_VIOLATION);
    });

    check('heartbeats mark agents normal; abnormal marking, one by one and all at once', async () => {
      const inv = store.inventory;
      const [web, db] = await Promise.all([
        inv.getHostsByCloudIps([{ cloudId: 0, ip: '10.0.0.1' }]),
        inv.getHostsByCloudIps([{ cloudId: 0, ip: '10.0.0.2' }]),
      ]);
      const w = web[0];
      const d = db[0];
      assert.ok(w && d);
      const at = 1_700_000_000_123;
      await inv.recordHeartbeats([
        { hostId: w.id, at, version: '1.2.3' },
        { hostId: d.id, at: at + 1 },
      ]);
      await inv.recordHeartbeats([]);
      let [w1, d1] = await inv
        .getHostsByIds([w.id, d.id])
        .then((hs) => [hs.find((h) => h.id === w.id), hs.find((h) => h.id === d.id)]);
      assert.equal(w1?.agent_status, 1);
      assert.equal(w1?.last_heartbeat, at);
      assert.equal(typeof w1?.last_heartbeat, 'number');
      assert.equal(w1?.agent_version, '1.2.3');
      assert.equal(d1?.agent_status, 1);
      assert.equal(d1?.agent_version, '');
      // A hello burst: many hosts, two versions, more than one statement's worth of each.
      const registrations = Array.from({ length: 12_000 }, (_, i) => ({
        cloudId: 0,
        ip: `10.77.${i >> 8}.${i & 255}`,
        ipv6: '',
        hostname: `burst-${i}`,
        osType: 'linux' as const,
        agentId: `burst-agent-${i}`,
        agentTokenHash: 'x',
        bizId: null,
      }));
      const fleet = [];
      // As registration-batch.ts registers them: at most 500 a call.
      for (let i = 0; i < registrations.length; i += 500)
        fleet.push(...(await inv.registerAgentHosts(registrations.slice(i, i + 500))));
      const versionOf = (i: number) => (i % 3 === 0 ? '2.0.0' : '2.0.1');
      await inv.recordHeartbeats(fleet.map((h, i) => ({ hostId: h.id, at, version: versionOf(i) })));
      const stored = new Map((await inv.getHostsByIds(fleet.map((h) => h.id))).map((h) => [h.id, h]));
      assert.equal(stored.size, fleet.length);
      for (const [i, h] of fleet.entries()) assert.equal(stored.get(h.id)?.agent_version, versionOf(i));

      await inv.recordHeartbeats([{ hostId: w.id, at: at + 5 }]);
      await inv.markAgentsAbnormal([d.id]);
      await inv.markAgentsAbnormal([]);
      await inv.markAgentsAbnormal(Array.from({ length: 70_000 }, (_, i) => 10_000_000 + i));
      [w1, d1] = await inv
        .getHostsByIds([w.id, d.id])
        .then((hs) => [hs.find((h) => h.id === w.id), hs.find((h) => h.id === d.id)]);
      assert.equal(w1?.agent_version, '1.2.3', 'a heartbeat without a version keeps the known one');
      assert.equal(w1?.last_heartbeat, at + 5);
      assert.equal(w1?.agent_status, 1);
      assert.equal(d1?.agent_status, 0);
      assert.equal(d1?.last_heartbeat, at + 1, 'marking abnormal keeps the last heartbeat');

      await inv.markAllAgentsAbnormal();
      assert.deepEqual(
        (await inv.listHosts()).filter((h) => h.agent_status !== 0),
        [],
        'no host is normal after markAllAgentsAbnormal',
      );
    });

    check('topology: sets, modules, host membership', async () => {
      const inv = store.inventory;
      const s1 = await inv.createSet(2, 'set-a');
      const s2 = await inv.createSet(2, 'set-b');
      const s3 = await inv.createSet(3, 'set-a');
      assert.equal(typeof s1, 'number');
      await rejectsWith(() => inv.createSet(2, 'set-a'), UNIQUE_VIOLATION);
      await rejectsWith(() => inv.createSet(404, 'orphan'), FOREIGN_KEY_VIOLATION);
      const m1 = await inv.createModule(2, s1, 'mod-1');
      const m2 = await inv.createModule(2, s1, 'mod-2');
      const m3 = await inv.createModule(2, s2, 'mod-1');
      await rejectsWith(() => inv.createModule(2, s1, 'mod-1'), UNIQUE_VIOLATION);
      assert.deepEqual(await inv.getSet(s1), { id: s1, biz_id: 2, name: 'set-a' });
      assert.deepEqual(await inv.getModule(m3), { id: m3, biz_id: 2, set_id: s2, name: 'mod-1' });
      assert.equal(await inv.getSet(987_654), undefined);
      assert.equal(await inv.getModule(987_654), undefined);

      assert.deepEqual(await inv.listTopology(2), {
        sets: [
          { id: s1, name: 'set-a' },
          { id: s2, name: 'set-b' },
        ],
        modules: [
          { id: m1, set_id: s1, name: 'mod-1' },
          { id: m2, set_id: s1, name: 'mod-2' },
          { id: m3, set_id: s2, name: 'mod-1' },
        ],
      });
      assert.deepEqual(await inv.listTopology(3), { sets: [{ id: s3, name: 'set-a' }], modules: [] });

      const [db] = await inv.getHostsByCloudIps([{ cloudId: 0, ip: '10.0.0.2' }]);
      const [bare] = await inv.getHostsByCloudIps([{ cloudId: 0, ip: '10.0.0.3' }]);
      assert.ok(db && bare);
      await inv.addHostsToModule([db.id], m1);
      await inv.addHostsToModule([db.id], m1); // again: no error, no duplicate
      await inv.addHostsToModule([db.id], m3);
      await inv.addHostsToModule([bare.id], m2);
      await rejectsWith(() => inv.addHostsToModule([db.id], 987_654), FOREIGN_KEY_VIOLATION);
      // Many at once, over more than one statement: all of them placed, or at an error none.
      const fleet: number[] = [];
      for (let i = 0; i < 5_100; i++)
        fleet.push((await inv.addHost({ cloudId: 7, ip: `10.7.${i >> 8}.${i & 255}` })).id);
      const m4 = await inv.createModule(2, s2, 'mod-many');
      await rejectsWith(() => inv.addHostsToModule([...fleet, 987_654], m4), FOREIGN_KEY_VIOLATION);
      assert.deepEqual(await inv.hostIdsInModules([m4]), [], 'none placed');
      await inv.addHostsToModule([...fleet, fleet[0] ?? 0, fleet[5_050] ?? 0], m4);
      assert.deepEqual(
        (await inv.hostIdsInModules([m4])).sort((a, b) => a - b),
        [...fleet].sort((a, b) => a - b),
      );

      assert.deepEqual(await inv.hostIdsInModules([m1]), [db.id]);
      assert.deepEqual(
        (await inv.hostIdsInModules([m1, m2, m3])).sort((a, b) => a - b),
        [db.id, db.id, bare.id].sort((a, b) => a - b),
        'one row per membership',
      );
      assert.deepEqual(await inv.hostIdsInModules([]), []);
      assert.deepEqual(
        (await inv.moduleIdsOfSets([s1])).sort((a, b) => a - b),
        [m1, m2],
      );
      assert.deepEqual(await inv.moduleIdsOfSets([s3]), []);
      const ofHosts = await inv.moduleIdsOfHosts([db.id, bare.id, 987_654]);
      // More ids than either engine binds in one statement.
      const many = Array.from({ length: 70_000 }, (_, i) => 10_000_000 + i);
      assert.deepEqual(
        [...(await inv.moduleIdsOfHosts([...many, db.id])).keys()],
        [...(await inv.moduleIdsOfHosts([db.id])).keys()],
      );
      assert.deepEqual(
        [...(ofHosts.get(db.id) ?? [])].sort((a, b) => a - b),
        [m1, m3],
      );
      assert.deepEqual(ofHosts.get(bare.id), [m2]);
      assert.equal(ofHosts.has(987_654), false);
    });

    check('dynamic groups: create, fetch by ids, list by business, refuse a duplicate id', async () => {
      const inv = store.inventory;
      const filter = JSON.stringify({ hostname: 'web-*' });
      await inv.createDynamicGroup({ id: 'web', bizId: 2, name: 'Web', filter });
      await inv.createDynamicGroup({ id: 'all', bizId: 2, name: 'All', filter: '{}' });
      await inv.createDynamicGroup({ id: 'other', bizId: 3, name: 'Other', filter: '{}' });
      await rejectsWith(
        () => inv.createDynamicGroup({ id: 'web', bizId: 3, name: 'x', filter }),
        UNIQUE_VIOLATION,
      );
      const got = await inv.getDynamicGroups(['web', 'nope', 'other']);
      assert.deepEqual(got.map((g) => g.id).sort(), ['other', 'web']);
      const web = got.find((g) => g.id === 'web');
      assert.equal(web?.biz_id, 2);
      assert.equal(web?.filter, filter);
      assert.deepEqual(await inv.getDynamicGroups([]), []);
      assert.deepEqual(
        (await inv.listDynamicGroups(2)).map((g) => g.id),
        ['all', 'web'],
      );
    });

    check(
      'accounts: alias unique per business and category, alias lookup among system accounts',
      async () => {
        const inv = store.inventory;
        const root = await inv.createAccount({ bizId: 2, alias: 'root', osUser: 'root', osType: 'linux' });
        assert.equal(typeof root.id, 'number');
        assert.equal(root.category, 1);
        assert.equal(root.creator, '');
        await rejectsWith(
          () => inv.createAccount({ bizId: 2, alias: 'root', osUser: 'other', osType: 'linux' }),
          UNIQUE_VIOLATION,
        );
        const dbAcc = await inv.createAccount({
          bizId: 2,
          alias: 'root',
          osUser: 'mysql',
          osType: 'linux',
          category: 2,
          creator: 'alice',
        });
        const root3 = await inv.createAccount({ bizId: 3, alias: 'root', osUser: 'admin', osType: 'linux' });
        const dbOnly = await inv.createAccount({
          bizId: 3,
          alias: 'dbonly',
          osUser: 'pg',
          osType: 'linux',
          category: 2,
        });

        assert.equal((await inv.findSystemAccountByAlias([2], 'root'))?.id, root.id);
        assert.equal((await inv.findSystemAccountByAlias([3], 'root'))?.id, root3.id);
        assert.equal(
          (await inv.findSystemAccountByAlias([3, 2], 'root'))?.id,
          root.id,
          'several businesses: the oldest account wins',
        );
        assert.equal(
          await inv.findSystemAccountByAlias([3], 'dbonly'),
          undefined,
          'db accounts are not found',
        );
        assert.equal(await inv.findSystemAccountByAlias([], 'root'), undefined);
        assert.deepEqual(await inv.getAccount(dbAcc.id), dbAcc);
        assert.equal(await inv.getAccount(987_654), undefined);
        assert.deepEqual(
          (await inv.listAccounts(3)).map((a) => a.id),
          [root3.id, dbOnly.id],
        );
      },
    );

    check('apps: upsert, read back grants, replace, list in code order, delete', async () => {
      const apps = store.apps;
      await apps.upsertApp({ appCode: 'zeta', secretSealed: 's1', scopes: 'all' });
      await apps.upsertApp({
        appCode: 'alpha',
        secretSealed: 's2',
        scopes: [
          { type: 'biz', id: 2 },
          { type: 'biz_set', id: 8_000_001 },
        ],
      });
      assert.deepEqual(await apps.getApp('zeta'), {
        appCode: 'zeta',
        secretSealed: 's1',
        secretHash: '',
        scopes: 'all',
        permissions: [],
      });
      await apps.upsertApp({
        appCode: 'zeta',
        secretSealed: 's3',
        scopes: [{ type: 'biz', id: 3 }],
        permissions: ['public_script_manage'],
      });
      assert.deepEqual(await apps.getApp('zeta'), {
        appCode: 'zeta',
        secretSealed: 's3',
        secretHash: '',
        scopes: [{ type: 'biz', id: 3 }],
        permissions: ['public_script_manage'],
      });
      assert.equal(await apps.getApp('nobody'), undefined);
      assert.deepEqual(
        (await apps.listApps()).map((a) => a.appCode),
        ['alpha', 'zeta'],
      );
      assert.equal(await apps.deleteApp('alpha'), true);
      assert.equal(await apps.deleteApp('alpha'), false);
      assert.deepEqual(
        (await apps.listApps()).map((a) => a.appCode),
        ['zeta'],
      );
    });

    check('audit log: appends, filters, pages newest first, prunes by age', async () => {
      const audit = store.audit;
      await audit.record(
        { actorKind: 'app', appCode: 'a1', action: 'fast_execute_script', outcome: 'ok' },
        1000,
      );
      await audit.record(
        { actorKind: 'user', username: 'ann', action: 'user.login', outcome: 'refused', code: 9900401 },
        2000,
      );
      await audit.record({ actorKind: 'app', appCode: 'a1', action: 'delete_script', outcome: 'ok' }, 3000);
      const all = await audit.list({ limit: 10 });
      assert.deepEqual(
        all.map((e) => e.action),
        ['delete_script', 'user.login', 'fast_execute_script'],
      );
      assert.deepEqual(JSON.parse(all[0]!.detail), {});
      assert.deepEqual(
        (await audit.list({ appCode: 'a1', limit: 10 })).map((e) => Number(e.at)),
        [3000, 1000],
      );
      const page = await audit.list({ beforeId: all[0]!.id, limit: 1 });
      assert.equal(page[0]?.action, 'user.login');
      // Pages of one entry: each statement removes at most a page, the loop all of them.
      assert.equal(await audit.prune(2500, 1), 2);
      assert.equal((await audit.list({ limit: 10 })).length, 1);
    });

    check('dangerous rule hits: pruned by age, oldest first, a page per statement', async () => {
      // A rule store whose Kysely keeps each statement it runs, as compiled.
      const statements: CompiledQuery[] = [];
      const keep: KyselyPlugin = {
        transformQuery(args) {
          statements.push(store.db.getExecutor().compileQuery(args.node, args.queryId));
          return args.node;
        },
        transformResult: async (args) => args.result,
      };
      const rules = new RuleStore(store.db.withPlugin(keep));
      // Out of time order: the prune goes by create_time, not by id.
      await rules.recordHits([5000, 1000, 4000, 2000, 3000, 1500, 2600, 2500].map((t) => ruleHit('77', t)));
      const times = async () =>
        (await rules.listHits({ scopeType: 'biz', scopeId: '77', start: 0, length: 100 })).hits
          .map((h) => Number(h.create_time))
          .sort((a, b) => a - b);

      statements.length = 0;
      assert.equal(await rules.pruneHits(2600, 2), 4);
      assert.deepEqual(await times(), [2600, 3000, 4000, 5000]);
      const deletes = statements.filter((s) => /^delete from "dangerous_rule_hit"/.test(s.sql));
      assert.equal(deletes.length, 3, 'two full pages of two, then a short one');
      assert.equal(await rules.pruneHits(2600, 2), 0);
      assert.deepEqual(await times(), [2600, 3000, 4000, 5000]);

      if (engine !== 'sqlite') return;
      // Each page is a range of the create_time index (migration 0055), not a walk of every hit.
      const [prune] = deletes;
      assert.ok(prune);
      const plan = await store.db.executeQuery<{ detail: string }>(
        CompiledQuery.raw(`explain query plan ${prune.sql}`, [...prune.parameters]),
      );
      const details = plan.rows.map((r) => r.detail).join(' | ');
      assert.match(details, /USING COVERING INDEX dangerous_rule_hit_create_time \(create_time<\?\)/);
      assert.doesNotMatch(details, /TEMP B-TREE/);
    });

    check('a shared value is replaced only while it is as read', async () => {
      await store.clusterSecrets.insertOrGet('contract_key_id', 'k1');
      assert.equal(await store.clusterSecrets.replaceIf('contract_key_id', 'k2', 'k1'), true);
      // Another server read k1 too and comes second: it must see k2 and decide again.
      assert.equal(await store.clusterSecrets.replaceIf('contract_key_id', 'k3', 'k1'), false);
      assert.equal(await store.clusterSecrets.get('contract_key_id'), 'k2');
    });

    check(
      'file logs with long paths are stored; a row the store refuses costs its own log only',
      async () => {
        const row = (path: string, host: number, content = 'done') => ({
          step_instance_id: 424242,
          execute_count: 0,
          host_id: host,
          mode: 1,
          src_host_id: 1,
          src_label: '0:127.0.0.2',
          src_path: path,
          dest_host_id: host,
          dest_label: `0:127.0.0.${host}`,
          dest_path: path,
          status: 4,
          size: 1,
          bytes: 1,
          speed: 0,
          content,
          updated_at: 1,
        });
        // Random text does not compress: past PostgreSQL's index row limit (about 2.7 KB) were it a key.
        const long = `/${crypto.randomBytes(3000).toString('base64url')}`;
        assert.deepEqual(await store.files.upsertFileLogs([row('/ok', 3), row(long, 4), row('/ok', 5)]), []);
        // Stored again with another message: the same row, updated.
        assert.deepEqual(await store.files.upsertFileLogs([row(long, 4, 'again')]), []);
        const stored = await store.files.fileLogs(424242, 0);
        assert.deepEqual(
          stored.map((l) => [l.host_id, l.src_path === long, l.content]),
          [
            [3, false, 'done'],
            [4, true, 'again'],
            [5, false, 'done'],
          ],
        );
        // PostgreSQL text cannot hold a NUL.
        const refused = await store.files.upsertFileLogs([row('/ok', 6), row('/ok', 7, 'a\u0000b')]);
        assert.deepEqual(
          refused.map((l) => l.host_id),
          engine === 'postgres' ? [7] : [],
        );
        assert.deepEqual(
          (await store.files.fileLogs(424242, 0, { hosts: [6, 7], uploadsTo: false })).map((l) => l.host_id),
          engine === 'postgres' ? [6] : [6, 7],
        );
      },
    );

    check('output fingerprints: one write may name a host attempt twice; the last one is kept', async () => {
      const row = (host: number, fp: string) => ({
        stepInstanceId: 525252,
        executeCount: 0,
        hostId: host,
        fingerprints: { '': fp },
      });
      // A result resent in the batch that holds it (PostgreSQL refuses an upsert naming one key twice).
      await store.outputs.save([row(1, 'first'), row(2, 'other'), row(1, 'resent')]);
      const saved = await store.outputs.ofAttempt(525252, 0);
      assert.deepEqual([saved.get(1)?.[''], saved.get(2)?.['']], ['resent', 'other']);
    });

    check('an upload claim holds while its upload may run, and passes on once it cannot', async () => {
      const files = store.files;
      const row = (token: string) => ({
        path: `2/${crypto.randomUUID()}/tester/${token}.bin`,
        scope_type: 'biz',
        scope_id: '2',
        creator: 'tester',
        file_name: `${token}.bin`,
        upload_token_hash: token,
        expires_at: 2_000,
        size: null,
        sha256: null,
        created_at: 1,
      });
      await files.createStoredFiles([row('contract-one'), row('contract-two')]);
      // One server: a claim made by an earlier run of the process was left by a process that is gone.
      const earlier = { id: 'run-1', clustered: false };
      const now = { id: 'run-2', clustered: false };
      assert.equal((await files.claimUpload('contract-one', 1_000, earlier))?.upload_claimed_by, 'run-1');
      assert.equal(await files.claimUpload('contract-one', 1_000, earlier), undefined, 'its own upload runs');
      assert.equal(await files.claimUpload('contract-one', 2_001, now), undefined, 'the URL expired');
      assert.equal((await files.claimUpload('contract-one', 1_000, now))?.upload_claimed_by, 'run-2');
      // The run whose claim was taken over neither releases nor completes the new one.
      await files.releaseUpload('contract-one', 'run-1');
      assert.equal(await files.completeUpload('contract-one', 'run-1', 3, 'abc'), false);
      assert.equal(await files.claimUpload('contract-one', 1_000, now), undefined);
      await files.releaseUpload('contract-one', 'run-2');
      assert.equal((await files.claimUpload('contract-one', 1_000, now))?.upload_claimed_by, 'run-2');
      assert.equal(await files.completeUpload('contract-one', 'run-2', 3, 'abc'), true);
      assert.equal(await files.claimUpload('contract-one', 1_000, earlier), undefined, 'the URL is closed');
      // A cluster: another server's claim holds while that server is alive.
      const node = (id: string) => ({
        id,
        url: `http://${id}`,
        state: 'alive' as const,
        started_at: 1,
        heartbeat_at: 1,
        stopped_at: null,
        drain_requested_at: null,
      });
      await store.db
        .insertInto('server_node')
        .values([node('contract-a'), node('contract-b')])
        .execute();
      const a = { id: 'contract-a', clustered: true };
      const b = { id: 'contract-b', clustered: true };
      assert.ok(await files.claimUpload('contract-two', 1_000, a));
      assert.equal(await files.claimUpload('contract-two', 1_000, b), undefined, 'a live server keeps it');
      await store.db
        .updateTable('server_node')
        .set({ state: 'dead' })
        .where('id', '=', 'contract-a')
        .execute();
      assert.equal((await files.claimUpload('contract-two', 1_000, b))?.upload_claimed_by, 'contract-b');
      assert.equal(await files.completeUpload('contract-two', 'contract-a', 3, 'abc'), false);
    });

    check('data survives closing and reopening the store', async () => {
      await store.close();
      store = await Store.open({ databaseUrl, dataDir });
      assert.deepEqual(
        (await store.inventory.listBiz()).map((b) => b.id),
        [2, 3],
      );
      assert.equal((await store.apps.getApp('zeta'))?.secretSealed, 's3');
      assert.ok((await hostOf(store.inventory, 'agent-db')) !== undefined);
    });
  });
}
