/**
 * get_step_instance_status keeps its replies while the step stays as it was (they are kept by
 * what the step row says and what was asked): a reply follows every host result, each filter
 * gets its own answer, a retry's attempt becomes the default and the hosts of the attempt
 * before it still answer as they ended. A kept reply is written in pieces around the envelope
 * (never copied whole): it still goes out with its length, type and own request id, counted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, get, getUrl, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, jobStatus, runScript, startFleet, stopFleets, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { tempDir } from './helpers/processes.js';

interface StepReply {
  execute_count: number;
  status: number;
  step_result_group_list?: {
    result_type: number;
    host_size: number;
    host_result_list: { bk_host_id: number; status: number }[];
  }[];
}

/** [host status, hosts counted, hosts listed] of each group, by status. */
function groups(reply: StepReply): [number, number, number][] {
  return (reply.step_result_group_list ?? [])
    .map((g): [number, number, number] => [g.result_type, g.host_size, g.host_result_list.length])
    .sort((a, b) => a[0] - b[0]);
}

const RUNNING = 7;
const SUCCESS = 9;
const LAST_SUCCESS = 3;
const NON_ZERO_EXIT = 104;

after(dropFreshDatabases);

for (const engine of engines()) {
  describe(`get_step_instance_status replies on ${engine}`, () => {
    let fleet: Fleet;
    let dir: string;

    before(async () => {
      fleet = await startFleet(engine, 2);
      dir = tempDir('step-replies');
    });
    after(stopFleets);

    test('a reply follows each host result, filter and attempt of its step', async () => {
      const quick = fleet.hostIds.get('127.0.0.2') ?? 0;
      const slow = fleet.hostIds.get('127.0.0.3') ?? 0;
      const go = path.join(dir, 'go');
      const pass = path.join(dir, 'pass');
      // The slow host waits for `go`, then fails unless `pass` is there too.
      const script = `if [ "$TEST_AGENT_IP" = 127.0.0.3 ]; then
  while [ ! -f ${go} ]; do sleep 0.05; done
  [ -f ${pass} ] || exit 1
fi
echo done
`;
      const run = await runScript(fleet, {
        script_content: b64(script),
        target_server: { host_id_list: [quick, slow] },
      });
      assert.equal(run.result, true, run.message);
      const ids = { ...fleet.scope, ...run.data };
      const stepStatus = async (filters: Record<string, unknown> = {}) => {
        const r = await get<StepReply>(
          fleet.server.url,
          'get_step_instance_status',
          { ...ids, ...filters },
          fleet.creds,
        );
        assert.equal(r.result, true, r.message);
        return r.data;
      };

      const running = await eventually(
        async () => {
          const r = await stepStatus();
          return JSON.stringify(groups(r)) ===
            JSON.stringify([
              [RUNNING, 1, 1],
              [SUCCESS, 1, 1],
            ])
            ? r
            : undefined;
        },
        20_000,
        'one host done, the other running',
      );
      assert.deepEqual(await stepStatus(), running, 'asked again, the same');
      assert.deepEqual(groups(await stepStatus({ status: SUCCESS })), [
        [RUNNING, 1, 0],
        [SUCCESS, 1, 1],
      ]);
      assert.deepEqual(groups(await stepStatus({ search_ip: '127.0.0.3' })), [[RUNNING, 1, 1]]);
      assert.deepEqual(await stepStatus(), running, "the filters' answers are their own");

      fs.writeFileSync(go, '');
      const failed = await waitFinished(fleet, run.data.job_instance_id);
      assert.equal(failed.job_instance.status, 4);
      const ended = await stepStatus();
      assert.equal(ended.status, 4);
      assert.deepEqual(groups(ended), [
        [SUCCESS, 1, 1],
        [NON_ZERO_EXIT, 1, 1],
      ]);

      fs.writeFileSync(pass, '');
      const retry = await post(
        fleet.server.url,
        'operate_step_instance',
        { ...ids, operation_code: 2 },
        fleet.creds,
      );
      assert.equal(retry.result, true, retry.message);
      const done = await eventually(
        async () => {
          const st = await jobStatus(fleet, run.data.job_instance_id);
          return st.finished && st.job_instance.status === 3 ? st : undefined;
        },
        20_000,
        'the retried job to succeed',
      );
      assert.equal(done.job_instance.status, 3);
      const retried = await stepStatus();
      assert.equal(retried.execute_count, 1);
      assert.deepEqual(groups(retried), [
        [LAST_SUCCESS, 1, 1],
        [SUCCESS, 1, 1],
      ]);
      assert.equal(
        retried.step_result_group_list?.find((g) => g.result_type === SUCCESS)?.host_result_list[0]
          ?.bk_host_id,
        slow,
      );
      // The step's own fields are its current ones, whichever attempt is asked.
      const first = await stepStatus({ execute_count: 0 });
      assert.equal(first.execute_count, 0);
      assert.deepEqual(
        first.step_result_group_list,
        ended.step_result_group_list,
        'the first attempt as it ended',
      );
    });

    test('a kept reply goes out as one HTTP reply of its stated length, counted like any other', async () => {
      const hosts = [...fleet.hostIds.values()];
      const run = await runScript(fleet, {
        script_content: b64('echo kept'),
        target_server: { host_id_list: hosts },
      });
      assert.equal(run.result, true, run.message);
      await waitFinished(fleet, run.data.job_instance_id);
      const url = getUrl(
        fleet.server.url,
        'get_job_instance_status',
        { ...fleet.scope, job_instance_id: run.data.job_instance_id, return_ip_result: true },
        fleet.creds,
      );
      const counted = async () => {
        const text = await (await fetch(`${fleet.server.url}/metrics`)).text();
        const line =
          /^jobfleet_http_requests_total\{[^}]*endpoint="get_job_instance_status"[^}]*code="0"[^}]*\} (\S+)$/m;
        return Number(line.exec(text)?.[1] ?? 0);
      };
      const countedBefore = await counted();
      const replies = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(url);
        const body = Buffer.from(await res.arrayBuffer());
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
        assert.equal(res.headers.get('content-length'), String(body.length));
        const env = JSON.parse(body.toString('utf8')) as Envelope<{ finished: boolean }>;
        assert.equal(env.result, true, env.message);
        assert.equal(env.code, 0);
        assert.equal(env.data.finished, true);
        assert.equal(env.job_request_id, env.request_id);
        replies.push(env);
      }
      const [first, ...others] = replies;
      for (const r of others) {
        assert.deepEqual(r.data, first?.data, 'the kept reply, the same data');
        assert.notEqual(r.request_id, first?.request_id, 'each with its own request id');
      }
      assert.equal(await counted(), countedBefore + 3);
    });
  });
}
