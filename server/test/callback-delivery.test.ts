/**
 * The callback queue's slots: a receiver that never answers holds its own slots only, so other
 * receivers' callbacks go on; an attempt the store cannot record is not sent again at once.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually, get } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { onFleetDatabase } from './helpers/fleet-database.js';
import { b64, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

/** A loopback HTTP server counting the callbacks it gets; `hang` never answers them. */
async function receiver(hang: boolean) {
  const jobs: number[] = [];
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      jobs.push((JSON.parse(body) as { job_instance_id: number }).job_instance_id);
      if (hang) held.push(res);
      else res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`,
    jobs,
    close: () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

for (const engine of engines()) {
  describe(`callback delivery on ${engine}`, () => {
    let fleet: Fleet;
    let silent: Awaited<ReturnType<typeof receiver>>;
    let prompt: Awaited<ReturnType<typeof receiver>>;

    before(async () => {
      // Attempts to a silent receiver run for 30 s each: longer than the test waits.
      fleet = await startFleet(engine, 1, { env: { JOBFLEET_CALLBACK_TIMEOUT_MS: '30000' } });
      silent = await receiver(true);
      prompt = await receiver(false);
    });
    after(async () => {
      await stopAll();
      silent?.close();
      prompt?.close();
      await dropFreshDatabases();
    });

    const job = async (url: string): Promise<number> => {
      const r = await runScript(fleet, {
        script_content: b64('true'),
        callback_url: url,
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(r.result, true, r.message);
      return r.data.job_instance_id;
    };

    test('a receiver that never answers holds its own slots; another receiver gets its callback', async () => {
      const stuck = await Promise.all(Array.from({ length: 15 }, () => job(silent.url)));
      for (const id of stuck) await waitFinished(fleet, id);
      await eventually(async () => (silent.jobs.length >= 10 ? true : undefined), 20_000);
      const started = Date.now();
      const id = await job(prompt.url);
      await eventually(async () => (prompt.jobs.includes(id) ? true : undefined), 20_000);
      assert.ok(Date.now() - started < 15_000, 'the callback waited for the silent receiver');
      // At most ten attempts at once to one receiver.
      assert.equal(silent.jobs.length, 10);
    });

    test('an attempt the store cannot record is not sent again at once', async () => {
      const fault = 'test_callback_attempt_fault';
      await onFleetDatabase(
        fleet,
        `CREATE TRIGGER ${fault} BEFORE INSERT ON callback_attempt BEGIN SELECT RAISE(ABORT, 'no attempts'); END;`,
        `CREATE FUNCTION ${fault}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no attempts'; END $$;
         CREATE TRIGGER ${fault} BEFORE INSERT ON callback_attempt FOR EACH ROW EXECUTE FUNCTION ${fault}();`,
      );
      const id = await job(prompt.url);
      await eventually(async () => (prompt.jobs.includes(id) ? true : undefined), 20_000, 'the first POST');
      await new Promise((r) => setTimeout(r, 3000));
      const sent = prompt.jobs.filter((j) => j === id).length;
      assert.ok(sent <= 2, `${sent} POSTs in 3 s while attempts cannot be recorded`);
      await onFleetDatabase(
        fleet,
        `DROP TRIGGER ${fault};`,
        `DROP TRIGGER ${fault} ON callback_attempt; DROP FUNCTION ${fault}();`,
      );
      // Recorded once the store takes it again: no more POSTs after that.
      await eventually(
        async () => {
          const r = await get<{ callback_list: { state: string }[] }>(
            fleet.server.url,
            'get_job_instance_callback_list',
            { ...fleet.scope, job_instance_id: id },
            fleet.creds,
          );
          return r.data?.callback_list[0]?.state === 'delivered' ? true : undefined;
        },
        20_000,
        'delivered once attempts can be recorded',
      );
    });
  });
}
