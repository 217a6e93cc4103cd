/**
 * A terminate whose task never reached its agent: the task's run and then its kill were sent on
 * a link that stopped moving and then dropped, so both were lost with it. The agent comes back
 * holding nothing; a kill of a task it does not hold changes nothing on the agent, so the task
 * must end terminated on the server, or the job waits at "terminating" (10) forever.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engines } from './helpers/databases.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import {
  BIZ,
  b64,
  hostIdsByIp,
  hostStatuses,
  operateJob,
  runScript,
  startFleet,
  waitFinished,
  stopFleets,
} from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { startAgent, tempDir } from './helpers/processes.js';

const IP = '127.0.0.2';

for (const engine of engines()) {
  describe(`a terminate lost with its agent's link, on ${engine}`, () => {
    let fleet: Fleet;
    let relay: FaultProxy;
    let hostId = 0;
    const dir = tempDir('terminate-lost-link');

    before(async () => {
      // Heartbeats every second: the agent keeps the stalled link until the test cuts it (with
      // the tests' 0.3 s it would give up first). A wide window: the server never declares the
      // agent lost meanwhile, which would end its task as 310 and hide the case.
      fleet = await startFleet(engine, 0, {
        env: { JOBFLEET_HEARTBEAT_INTERVAL_MS: '1000', JOBFLEET_HEARTBEAT_TIMEOUT_MS: '30000' },
      });
      relay = await startFaultProxy(fleet.server.url);
      fleet.agents.push(
        await startAgent({
          server: { url: relay.url, bootstrapToken: fleet.server.bootstrapToken },
          ip: IP,
          biz: BIZ,
        }),
      );
      hostId = (await hostIdsByIp(fleet.server.url, fleet.server.adminToken)).get(IP) ?? 0;
      fleet.hostIds.set(IP, hostId);
    });
    after(async () => {
      await stopFleets();
      await relay?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test('the task that never started ends terminated, and the job 11', async () => {
      const ran = path.join(dir, `ran-${engine}`);
      // The link stops moving: what the server sends now stays in it.
      const stalled = relay.stall(2_000);
      const r = await runScript(fleet, {
        script_content: b64(`touch ${ran}; sleep 5`),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stop = await operateJob(fleet, r.data.job_instance_id, 1);
      assert.equal(stop.result, true, stop.message);
      await new Promise((resolve) => setTimeout(resolve, 200));
      // The link drops with the run and the kill in it; the agent reconnects holding nothing.
      relay.cut(300);
      await stalled;
      const st = await waitFinished(fleet, r.data.job_instance_id, 20_000);
      assert.equal(st.job_instance.status, 11);
      assert.equal(hostStatuses(st).get(hostId), 403);
      assert.equal(fs.existsSync(ran), false, 'the script never ran');
    });
  });
}
