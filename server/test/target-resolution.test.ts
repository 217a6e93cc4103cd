/**
 * Target resolution (behaviour notes §5) against a real store on every engine: every kind of
 * target, their union and de-duplication, and each of BK-JOB's target errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError, ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import type { TargetServer } from '../src/api/input-types.js';
import type { ResolvedScope } from '../src/api/scope.js';
import { globMatches } from '../src/inventory/dynamic-group.js';
import { resolveTargets } from '../src/inventory/target-resolution.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const BIZ2: ResolvedScope = { type: 'biz', id: 2, name: 'two', bizIds: [2] };
const SET23: ResolvedScope = { type: 'biz_set', id: 8_000_001, name: 'two and three', bizIds: [2, 3] };

async function failsWith(p: Promise<unknown>, name: ErrorName, ...inMessage: string[]): Promise<ApiError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ApiError, `expected ApiError ${name}, got ${String(caught)}`);
  assert.equal(caught.errorName, name, caught.message);
  assert.equal(caught.code, ERROR_CATALOGUE[name].code);
  for (const text of inMessage)
    assert.ok(caught.message.includes(text), `"${caught.message}" lacks "${text}"`);
  return caught;
}

after(dropFreshDatabases);

for (const engine of engines()) {
  describe(`target resolution on ${engine}`, () => {
    let store: Store;
    /** Host ids by name. */
    const h: Record<string, number> = {};
    const topo: Record<string, number> = {};

    const ids = async (scope: ResolvedScope, target: TargetServer) =>
      (await resolveTargets(store.inventory, scope, target)).map((x) => x.id).sort((a, b) => a - b);
    const sorted = (...names: string[]) => names.map((n) => h[n] ?? -1).sort((a, b) => a - b);

    before(async () => {
      store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('targets') });
      const inv = store.inventory;
      await inv.createBiz(2, 'two');
      await inv.createBiz(3, 'three');
      await inv.createBiz(4, 'four');
      await inv.createBizSet(8_000_001, 'two and three', [2, 3]);
      const add = async (
        name: string,
        cloudId: number,
        ip: string,
        bizId: number | undefined,
        osType = 'linux',
      ) => {
        const row = await inv.addHost({
          cloudId,
          ip,
          hostname: name,
          osType,
          ...(bizId === undefined ? {} : { bizId }),
        });
        h[name] = row.id;
      };
      await add('web-1', 0, '10.1.0.1', 2);
      await add('web-2', 0, '10.1.0.2', 2);
      await add('db-1', 0, '10.1.1.5', 2, 'windows');
      await add('web-3', 0, '10.2.0.1', 3);
      await add('cloud1-web', 1, '10.1.0.1', 3);
      await add('other-1', 0, '10.3.0.1', 4);
      await add('loose-1', 0, '10.4.0.1', undefined);

      topo.setA = await inv.createSet(2, 'A');
      topo.setB = await inv.createSet(2, 'B');
      topo.setC = await inv.createSet(3, 'C');
      topo.setD = await inv.createSet(4, 'D');
      topo.a1 = await inv.createModule(2, topo.setA, 'a1');
      topo.a2 = await inv.createModule(2, topo.setA, 'a2');
      topo.b1 = await inv.createModule(2, topo.setB, 'b1');
      topo.c1 = await inv.createModule(3, topo.setC, 'c1');
      topo.d1 = await inv.createModule(4, topo.setD, 'd1');
      for (const [host, mod] of [
        ['web-1', 'a1'],
        ['web-2', 'a1'],
        ['db-1', 'a2'],
        ['web-3', 'c1'],
        ['other-1', 'd1'],
      ] as const) {
        await inv.addHostsToModule([h[host] ?? -1], topo[mod] ?? -1);
      }

      const group = (id: string, bizId: number, filter: object) =>
        inv.createDynamicGroup({ id, bizId, name: id, filter: JSON.stringify(filter) });
      await group('dg-cidr', 2, { ip: ['10.1.0.0/24'] });
      await group('dg-ip', 2, { ip: ['10.1.1.5', '10.9.9.9'] });
      await group('dg-glob', 2, { hostname: 'WEB-?' });
      await group('dg-os', 2, { os_type: 'windows' });
      await group('dg-module', 2, { module_ids: [topo.a2] });
      await group('dg-and', 2, { ip: ['10.1.0.0/16'], os_type: 'linux', hostname: 'web-*' });
      await group('dg-none', 2, { hostname: 'nomatch-*' });
      await group('dg-b3', 3, {});
      await group('dg-b4', 4, {});
    });
    after(async () => {
      await store?.close();
    });

    it('host_id_list: the listed hosts, each once', async () => {
      assert.deepEqual(
        await ids(BIZ2, { host_id_list: [h['web-1'] ?? 0, h['web-2'] ?? 0, h['web-1'] ?? 0] }),
        sorted('web-1', 'web-2'),
      );
    });

    it('ip_list: hosts by cloud id + ip', async () => {
      assert.deepEqual(
        await ids(BIZ2, {
          ip_list: [
            { bk_cloud_id: 0, ip: '10.1.0.1' },
            { bk_cloud_id: 0, ip: '10.1.1.5' },
            { bk_cloud_id: 0, ip: '10.1.0.1' },
          ],
        }),
        sorted('web-1', 'db-1'),
      );
      // The same ip in cloud 1 is another host, of business 3.
      assert.deepEqual(
        await ids(SET23, { ip_list: [{ bk_cloud_id: 1, ip: '10.1.0.1' }] }),
        sorted('cloud1-web'),
      );
    });

    it('ip_list is ignored entirely when host_id_list is given', async () => {
      assert.deepEqual(
        await ids(BIZ2, {
          host_id_list: [h['web-1'] ?? 0],
          ip_list: [
            { bk_cloud_id: 0, ip: '10.1.0.2' },
            { bk_cloud_id: 0, ip: '99.9.9.9' }, // unknown, yet not reported: the list is not read
          ],
        }),
        sorted('web-1'),
      );
    });

    it('topo_node_list: a business, a set, a module', async () => {
      assert.deepEqual(
        await ids(BIZ2, { topo_node_list: [{ node_type: 'biz', id: 2 }] }),
        sorted('web-1', 'web-2', 'db-1'),
      );
      assert.deepEqual(
        await ids(BIZ2, { topo_node_list: [{ node_type: 'set', id: topo.setA ?? 0 }] }),
        sorted('web-1', 'web-2', 'db-1'),
      );
      assert.deepEqual(
        await ids(BIZ2, { topo_node_list: [{ node_type: 'module', id: topo.a2 ?? 0 }] }),
        sorted('db-1'),
      );
    });

    it('a host moved out of a business leaves its modules and sets there', async () => {
      const inv = store.inventory;
      const moved = await inv.addHost({
        cloudId: 0,
        ip: '10.1.9.9',
        hostname: 'moved-1',
        osType: 'linux',
        bizId: 2,
      });
      await inv.addHostsToModule([moved.id], topo.a2 ?? -1);
      assert.deepEqual(
        await ids(BIZ2, { topo_node_list: [{ node_type: 'module', id: topo.a2 ?? 0 }] }),
        [...sorted('db-1'), moved.id].sort((a, b) => a - b),
      );
      assert.equal(await inv.assignHostToBiz(moved.id, null), true);
      for (const node of [
        { node_type: 'module', id: topo.a2 ?? 0 },
        { node_type: 'set', id: topo.setA ?? 0 },
      ])
        assert.ok(!(await ids(BIZ2, { topo_node_list: [node] })).includes(moved.id), JSON.stringify(node));
    });

    it('dynamic_group_list: ip and CIDR, hostname glob, os type, module, conditions combined', async () => {
      const dg = (id: string) => ids(BIZ2, { dynamic_group_list: [{ id }] });
      assert.deepEqual(
        await dg('dg-cidr'),
        sorted('web-1', 'web-2'),
        'the cloud 1 host of business 3 is not in the group',
      );
      assert.deepEqual(await dg('dg-ip'), sorted('db-1'));
      assert.deepEqual(
        await dg('dg-glob'),
        sorted('web-1', 'web-2'),
        'globs ignore case; ? is one character',
      );
      assert.deepEqual(await dg('dg-os'), sorted('db-1'));
      assert.deepEqual(await dg('dg-module'), sorted('db-1'));
      assert.deepEqual(await dg('dg-and'), sorted('web-1', 'web-2'));
    });

    it('de-duplicates a host named by several kinds of target', async () => {
      const got = await resolveTargets(store.inventory, BIZ2, {
        host_id_list: [h['web-1'] ?? 0],
        topo_node_list: [
          { node_type: 'module', id: topo.a1 ?? 0 },
          { node_type: 'biz', id: 2 },
        ],
        dynamic_group_list: [{ id: 'dg-glob' }, { id: 'dg-os' }, { id: 'dg-glob' }],
      });
      assert.equal(got.length, 3);
      assert.deepEqual(
        got.map((x) => x.id).sort((a, b) => a - b),
        sorted('web-1', 'web-2', 'db-1'),
      );
      assert.equal(got.find((x) => x.id === h['db-1'])?.ip, '10.1.1.5');
    });

    it('1244001 when every list is absent or empty', async () => {
      await failsWith(resolveTargets(store.inventory, BIZ2, {}), 'SERVER_EMPTY');
      await failsWith(
        resolveTargets(store.inventory, BIZ2, {
          host_id_list: [],
          ip_list: [],
          topo_node_list: [],
          dynamic_group_list: [],
        }),
        'SERVER_EMPTY',
      );
    });

    it('1244030 lists unknown hosts, cloud:ip pairs, nodes and groups', async () => {
      await failsWith(
        resolveTargets(store.inventory, BIZ2, {
          host_id_list: [h['web-1'] ?? 0, 987_654],
          topo_node_list: [
            { node_type: 'module', id: 987_001 },
            { node_type: 'set', id: topo.setC ?? 0 }, // exists, but in business 3
          ],
          dynamic_group_list: [{ id: 'nope' }, { id: 'dg-b4' }],
        }),
        'EXECUTE_OBJECT_NOT_EXIST',
        'non-existent execution objects: 5',
        '(host_id:987654)',
        '(topo_node:module:987001)',
        `(topo_node:set:${topo.setC})`,
        '(dynamic_group:nope)',
        '(dynamic_group:dg-b4)',
      );
      await failsWith(
        resolveTargets(store.inventory, BIZ2, {
          ip_list: [
            { bk_cloud_id: 0, ip: '10.1.0.1' },
            { bk_cloud_id: 0, ip: '99.9.9.9' },
            { bk_cloud_id: 2, ip: '10.1.0.1' },
          ],
        }),
        'EXECUTE_OBJECT_NOT_EXIST',
        'non-existent execution objects: 2',
        '(ip:0:99.9.9.9)',
        '(ip:2:10.1.0.1)',
      );
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { topo_node_list: [{ node_type: 'biz', id: 3 }] }),
        'EXECUTE_OBJECT_NOT_EXIST',
        '(topo_node:biz:3)',
      );
    });

    it('1244030 comes before 1244002 when a request has both problems', async () => {
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { host_id_list: [h['other-1'] ?? 0, 987_654] }),
        'EXECUTE_OBJECT_NOT_EXIST',
        '(host_id:987654)',
      );
    });

    it('1244002 lists hosts that exist outside the scope (other business or none)', async () => {
      const err = await failsWith(
        resolveTargets(store.inventory, BIZ2, {
          host_id_list: [h['web-1'] ?? 0, h['other-1'] ?? 0, h['loose-1'] ?? 0],
        }),
        'HOST_INVALID',
        '2 hosts',
        'biz [2]',
        `(host_id:${h['other-1']},ip:0:10.3.0.1)`,
        `(host_id:${h['loose-1']},ip:0:10.4.0.1)`,
      );
      assert.ok(!err.message.includes(`host_id:${h['web-1']},`));
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { ip_list: [{ bk_cloud_id: 1, ip: '10.1.0.1' }] }),
        'HOST_INVALID',
        `(host_id:${h['cloud1-web']},ip:1:10.1.0.1)`,
      );
    });

    it('a business set scope reaches the hosts, nodes and groups of each member business', async () => {
      assert.deepEqual(
        await ids(SET23, {
          host_id_list: [h['web-1'] ?? 0, h['web-3'] ?? 0],
          topo_node_list: [{ node_type: 'module', id: topo.c1 ?? 0 }],
          dynamic_group_list: [{ id: 'dg-b3' }],
        }),
        sorted('web-1', 'web-3', 'cloud1-web'),
      );
      assert.deepEqual(
        await ids(SET23, {
          topo_node_list: [
            { node_type: 'biz', id: 2 },
            { node_type: 'biz', id: 3 },
          ],
        }),
        sorted('web-1', 'web-2', 'db-1', 'web-3', 'cloud1-web'),
      );
      await failsWith(
        resolveTargets(store.inventory, SET23, { host_id_list: [h['web-3'] ?? 0, h['other-1'] ?? 0] }),
        'HOST_INVALID',
        'biz_set [8000001]',
        `(host_id:${h['other-1']},`,
      );
      await failsWith(
        resolveTargets(store.inventory, SET23, { topo_node_list: [{ node_type: 'biz', id: 4 }] }),
        'EXECUTE_OBJECT_NOT_EXIST',
        '(topo_node:biz:4)',
      );
    });

    it('1244028 when the named nodes and groups hold no host', async () => {
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { topo_node_list: [{ node_type: 'set', id: topo.setB ?? 0 }] }),
        'STEP_TARGET_EMPTY',
      );
      await failsWith(
        resolveTargets(store.inventory, BIZ2, {
          topo_node_list: [{ node_type: 'module', id: topo.b1 ?? 0 }],
          dynamic_group_list: [{ id: 'dg-none' }],
        }),
        'STEP_TARGET_EMPTY',
      );
    });

    it('reads each node once however often it is listed; 33,000 unknown groups are named, not an internal error', async () => {
      const hostsOfBiz = store.inventory.targetHostsOfBiz.bind(store.inventory);
      let reads = 0;
      store.inventory.targetHostsOfBiz = (...args) => {
        reads++;
        return hostsOfBiz(...args);
      };
      try {
        const copies = Array.from({ length: 20_000 }, () => ({ id: 2, node_type: 'biz' }));
        assert.deepEqual(await ids(BIZ2, { topo_node_list: copies }), sorted('web-1', 'web-2', 'db-1'));
        assert.equal(reads, 1);
      } finally {
        store.inventory.targetHostsOfBiz = hostsOfBiz;
      }
      const groups = Array.from({ length: 33_000 }, (_, i) => ({ id: `no-such-group-${i}` }));
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { dynamic_group_list: groups }),
        'EXECUTE_OBJECT_NOT_EXIST',
        '(dynamic_group:no-such-group-0)',
      );
    });

    it('refuses a node type other than biz, set or module, naming the field', async () => {
      await failsWith(
        resolveTargets(store.inventory, BIZ2, { topo_node_list: [{ node_type: 'host', id: 1 }] }),
        'ILLEGAL_PARAM_WITH_PARAM_NAME',
        'topo_node_list.node_type',
        '"host"',
      );
    });
  });
}

describe("a dynamic group's hostname glob", () => {
  it('matches * and ? case-insensitively, every other character as itself', () => {
    const cases: [string, string, boolean][] = [
      ['web-01', 'web-*', true],
      ['WEB-01', 'web-??', true],
      ['web-1', 'web-??', false],
      ['', '*', true],
      ['', '?', false],
      ['a.b', 'a?b', true],
      ['axb', 'a.b', false],
      ['x(1)', 'x(?)', true],
      ['db-west-1', '*-*-1', true],
      ['db-west-2', '*-*-1', false],
      ['aaa', 'a*a*a', true],
      ['aa', 'a*a*a', false],
      ['abcabd', '*abd', true],
    ];
    for (const [text, glob, expected] of cases)
      assert.equal(globMatches(text, glob), expected, `${text} ~ ${glob}`);
  });

  it('answers a glob of many stars against a long hostname at once (a regular expression backtracks for hours)', () => {
    assert.equal(globMatches('-'.repeat(255), `${'*-'.repeat(12)}db`), false);
    assert.equal(globMatches(`${'-'.repeat(250)}db`, `${'*-'.repeat(12)}db`), true);
  });
});
