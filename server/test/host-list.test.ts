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
  data: { ip: string; hostname: string; agent_status: number; bk_biz_id: number }[];
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
      const paged = await list({ start: 1, length: 1 });
      assert.equal(paged.data.total, 3);
      assert.deepEqual(
        paged.data.data.map((h) => h.ip),
        [all.data.data[1]?.ip],
      );
      const bad = await list({ agent_status: 7 });
      assert.equal(bad.result, false);
      assert.notEqual(bad.code, 0);
    });
  });
}
