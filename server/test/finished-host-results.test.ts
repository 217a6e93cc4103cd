/**
 * A finished step's step_ip_result_list is built as JSON text by the store: on every engine it
 * is the very text the endpoint makes from the rows (stepIpResult), for nulls, text that needs
 * escaping in JSON and an empty step execution alike.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { stepIpResult } from '../src/api/endpoints/host-results-cache.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';
import { agentRegistrations, newJob, waitingStep } from './helpers/store-fixtures.js';

after(async () => {
  await dropFreshDatabases();
});

const TAGS = ['', 'plain', 'quote " and \\ backslash', 'line\nbreak\ttab\r\u0001\u001f', 'ünïcødé ✓ /slash'];

for (const engine of engines()) {
  describe(`finished host results on ${engine}`, () => {
    it('are the JSON the endpoint makes from the rows', async () => {
      const store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('store') });
      try {
        const hosts = await store.inventory.registerAgentHosts(agentRegistrations(60, '10.9', null));
        const { stepInstanceIds } = await store.executions.createJobInstance(
          newJob('1', 'job', [waitingStep('step', hosts)]),
          true,
        );
        const step = stepInstanceIds[0]!;
        for (const [i, h] of hosts.entries()) {
          const start = i % 3 === 0 ? null : 1_764_500_000_000 + i;
          const end = i % 4 === 0 ? null : 1_764_500_000_500 + i * 7;
          await sql`update host_task set status = ${i % 2 ? 9 : 104}, tag = ${TAGS[i % TAGS.length]!},
              exit_code = ${i % 5 === 0 ? null : i % 3}, error_code = ${i % 6},
              start_time = ${start}, end_time = ${end}
            where step_instance_id = ${step} and host_id = ${h.id}`.execute(store.db);
        }
        const rows = await store.executions.listHostTasks(step, 0);
        assert.equal(rows.length, hosts.length);
        const expected = `[${rows.map((t) => JSON.stringify(stepIpResult(t))).join(',')}]`;
        assert.equal(await store.executions.hostResultsJson(step, 0), expected);
        assert.equal(await store.executions.hostResultsJson(step, 1), '[]');
      } finally {
        await store.close();
      }
    });
  });
}
