/**
 * Agent token checks share reads: handshakes arriving together are looked up in one statement
 * (a fleet coming back after a restart), and each still gets its own host or refusal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hashSecret } from '../src/api/auth.js';
import { AgentTokens } from '../src/agent-link/registration.js';
import { Store } from '../src/store/store.js';
import type { Host } from '../src/store/inventory-store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const HOSTS = 40;

for (const engine of engines()) {
  describe(`agent tokens on ${engine}`, () => {
    let store: Store;
    let hosts: Host[];
    const reads: number[] = [];

    before(async () => {
      store = await Store.open({ databaseUrl: await freshDatabase(engine), dataDir: tempDir('tokens-') });
      hosts = await store.inventory.registerAgentHosts(
        Array.from({ length: HOSTS }, (_, i) => ({
          cloudId: 0,
          ip: `10.7.0.${i + 1}`,
          ipv6: '',
          hostname: `h${i}`,
          osType: 'linux',
          agentId: `agent-${i}`,
          agentTokenHash: hashSecret(`secret-${i}`),
          bizId: null,
        })),
      );
      await store.agentTrust.revoke(hosts[3]!.id);
      // The real store, its reads counted: how many statements the checks took.
      const inventory = store.inventory;
      const read = inventory.findHostsByAgentIds.bind(inventory);
      inventory.findHostsByAgentIds = (ids) => {
        reads.push(ids.length);
        return read(ids);
      };
    });
    after(async () => {
      await store.close();
      await dropFreshDatabases();
    });

    test('tokens checked at once share one read, and each gets its own answer', async () => {
      const tokens = new AgentTokens(store.inventory);
      const asked = [
        ...hosts.map((_, i) => `agent-${i}.secret-${i}`),
        'agent-1.secret-2', // another agent's secret
        'agent-unknown.secret-1',
        'agent-5', // no secret
        '.secret-5',
        undefined,
        'agent-7.secret-7', // the same agent twice
      ];
      const got = await Promise.all(asked.map((t) => tokens.verify(t)));
      const ids = got.map((h) => h?.id);
      const expected = hosts.map((h, i) => (i === 3 ? undefined : h.id));
      assert.deepEqual(ids, [
        ...expected,
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        hosts[7]!.id,
      ]);
      assert.equal(reads.length, 1, `one read for ${asked.length} checks, not ${reads.length}`);

      // A lone check later is read on its own, with the same answer.
      assert.equal((await tokens.verify('agent-9.secret-9'))?.id, hosts[9]!.id);
      assert.deepEqual(reads.slice(1), [1]);
    });
  });
}
