/**
 * get_host_list: the hosts of a scope with live agent status (connected agents 1, a host added
 * by hand 0), filtered by keyword and status, counted by status, and nothing of other scopes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, get } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { BIZ, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

interface HostPage {
  total: number;
  agent_status_count: { normal: number; abnormal: number };
  data: { bk_host_id: number; ip: string; hostname: string; agent_status: number; bk_biz_id: number }[];
}

for (const engine of engines()) {
  describe(`get_host_list on ${engine}`, () => {
    let fleet: Fleet;
    const list = (query: Record<string, unknown>) =>
      get<HostPage>(fleet.server.url, 'get_host_list', { ...fleet.scope, ...query }, fleet.creds);

    before(async () => {
      fleet = await startFleet(engine, 2);
      const { url, adminToken } = fleet.server;
      await admin(url, adminToken, 'POST', '/hosts', {
        ip: '10.9.0.1',
        hostname: 'db-Primary',
        bk_biz_id: BIZ,
      });
      await admin(url, adminToken, 'POST', '/biz', { id: 3, name: 'other' });
      await admin(url, adminToken, 'POST', '/hosts', { ip: '10.9.0.2', hostname: 'elsewhere', bk_biz_id: 3 });
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('lists the scope hosts with live agent status, filters and counts', async () => {
      const all = await list({});
      assert.equal(all.result, true, all.message);
      assert.deepEqual(all.data.data.map((h) => [h.ip, h.agent_status]).sort(), [
        ['10.9.0.1', 0],
        ['127.0.0.2', 1],
        ['127.0.0.3', 1],
      ]);
      assert.deepEqual(all.data.agent_status_count, { normal: 2, abnormal: 1 });
      const down = await list({ agent_status: '0' });
      assert.deepEqual(
        down.data.data.map((h) => h.ip),
        ['10.9.0.1'],
      );
      assert.deepEqual(down.data.agent_status_count, { normal: 2, abnormal: 1 });
      const byName = await list({ keyword: 'PRIMARY' });
      assert.deepEqual(
        byName.data.data.map((h) => h.hostname),
        ['db-Primary'],
      );
      const byIp = await list({ keyword: ' 10.9.0 ' });
      assert.deepEqual(
        byIp.data.data.map((h) => h.ip),
        ['10.9.0.1'],
        'a part of the address, blanks around it ignored; another business not searched',
      );
      // LIKE's wildcards are taken literally: `_` is no stand-in for the name's `-`.
      assert.equal((await list({ keyword: 'db_primary' })).data.total, 0);
      assert.equal((await list({ keyword: '%' })).data.total, 0);
      const linux = await list({ os_type: 'linux', keyword: '127.0.0' });
      assert.deepEqual(linux.data.agent_status_count, { normal: 2, abnormal: 0 });
      assert.equal((await list({ os_type: 'windows' })).data.total, 0);
      const paged = await list({ start: 1, length: 1 });
      assert.equal(paged.data.total, 3);
      assert.deepEqual(
        paged.data.data.map((h) => h.ip),
        [all.data.data[1]?.ip],
      );
      const page = await list({ agent_status: '1', start: 1, length: 5 });
      assert.equal(page.data.total, 2);
      assert.deepEqual(
        page.data.data,
        all.data.data.filter((h) => h.agent_status === 1).slice(1),
        'a page of the status filter, each host whole',
      );
      const bad = await list({ agent_status: 7 });
      assert.equal(bad.result, false);
      assert.notEqual(bad.code, 0);
    });

    test("a business set's hosts come in id order across its businesses, a page at a time", async () => {
      const { url, adminToken } = fleet.server;
      const made = await admin(url, adminToken, 'POST', '/biz_set', {
        id: 8_000_009,
        name: 'both',
        biz_ids: [BIZ, 3],
      });
      assert.equal(made.result, true, made.message);
      const scope = { bk_scope_type: 'biz_set', bk_scope_id: '8000009' };
      const whole = await get<HostPage>(url, 'get_host_list', scope, fleet.creds);
      assert.equal(whole.result, true, whole.message);
      const ids = whole.data.data.map((h) => h.bk_host_id);
      assert.equal(ids.length, 4);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );
      assert.deepEqual(whole.data.data.map((h) => h.ip).sort(), [
        '10.9.0.1',
        '10.9.0.2',
        '127.0.0.2',
        '127.0.0.3',
      ]);
      const pages = [];
      for (let start = 0; start < 4; start += 3)
        pages.push(
          ...(await get<HostPage>(url, 'get_host_list', { ...scope, start, length: 3 }, fleet.creds)).data
            .data,
        );
      assert.deepEqual(pages, whole.data.data);
    });
  });
}
