/**
 * Client conformance: a real server and agent driven exactly as the BlueKing ESB Python SDK
 * drives BK-JOB (helpers/esb-sdk-client.ts): `True` in query strings, json.dumps bodies with no
 * Content-Type, bk_biz_id instead of scope fields, credentials in the query string or the body,
 * and the signature client. The same sequence runs with app secrets and with signatures, on
 * each store; bad signatures, stale timestamps and replayed nonces are refused and start nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import type { ErrorName } from '../src/api/error-catalogue.js';
import { JOBFLEET_VERSION } from '../src/version.js';
import { apiUrl, eventually } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { EsbSdkClient } from './helpers/esb-sdk-client.js';
import type { EsbSdkOptions } from './helpers/esb-sdk-client.js';
import { b64, BIZ, jobCount, startFleet } from './helpers/fleet.js';
import type { Fleet, JobStatus } from './helpers/fleet.js';
import { startServer, stopAll } from './helpers/processes.js';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

const IP = '127.0.0.2';

function refused(env: Envelope<unknown>, name: ErrorName, ...inMessage: string[]): void {
  assert.equal(env.result, false, JSON.stringify(env));
  assert.equal(env.code, ERROR_CATALOGUE[name].code, env.message);
  assert.equal(env.data, null);
  for (const t of inMessage) assert.ok(env.message.includes(t), `"${env.message}" lacks "${t}"`);
}

function ok<T>(env: Envelope<T>): T {
  assert.equal(env.result, true, `${env.code} ${env.message}`);
  assert.equal(env.code, 0);
  return env.data;
}

type Started = { job_instance_id: number; step_instance_id: number };

for (const engine of engines()) {
  describe(`BlueKing ESB SDK conformance on ${engine}`, () => {
    let fleet: Fleet;
    let sdk: (opts?: Partial<EsbSdkOptions>) => EsbSdkClient;

    before(async () => {
      fleet = await startFleet(engine, 1);
      sdk = (opts = {}) =>
        new EsbSdkClient(fleet.server.url, {
          appCode: fleet.server.appCode,
          appSecret: fleet.server.appSecret,
          username: 'sdk-user',
          ...opts,
        });
    });

    const script = (client: EsbSdkClient, content: string) =>
      client.post<Started>('fast_execute_script', {
        bk_biz_id: BIZ,
        script_language: 1,
        script_content: b64(content),
        account_alias: fleet.account,
        task_name: 'sdk job ü',
        target_server: { ip_list: [{ bk_cloud_id: 0, ip: IP }] },
      });

    const finished = (client: EsbSdkClient, jobInstanceId: number, returnIpResult: boolean) =>
      eventually(
        async () => {
          const st = ok(
            await client.get<JobStatus>('get_job_instance_status', {
              bk_biz_id: BIZ,
              job_instance_id: jobInstanceId,
              return_ip_result: returnIpResult,
            }),
          );
          return st.finished ? st : undefined;
        },
        20_000,
        `job ${jobInstanceId} to finish`,
      );

    /** fast_execute_script -> get_job_instance_status -> ip log -> job list -> operate_job_instance. */
    async function sequence(client: EsbSdkClient): Promise<void> {
      const hostId = fleet.hostIds.get(IP);
      const started = ok(await script(client, 'echo "sdk says hi from $TEST_AGENT_IP"'));
      const st = await finished(client, started.job_instance_id, true);
      assert.equal(st.job_instance.status, 3);
      assert.equal(st.job_instance.bk_scope_id, String(BIZ));
      const hosts = st.step_instance_list[0]?.step_ip_result_list ?? [];
      assert.deepEqual(
        hosts.map((h) => [h.bk_host_id, h.status, h.exit_code]),
        [[hostId, 9, 0]],
      );

      const log = ok(
        await client.get<{ log_content: string }>('get_job_instance_ip_log', {
          bk_biz_id: BIZ,
          job_instance_id: started.job_instance_id,
          step_instance_id: started.step_instance_id,
          bk_host_id: hostId ?? 0,
        }),
      );
      assert.match(log.log_content, /sdk says hi from 127\.0\.0\.2/);

      const now = Date.now();
      const list = ok(
        await client.get<{ data: { id: number; job_instance_id: number; name: string; operator: string }[] }>(
          'get_job_instance_list',
          { bk_biz_id: BIZ, create_time_start: now - 3600_000, create_time_end: now + 60_000, length: 100 },
        ),
      );
      const item = list.data.find((j) => j.job_instance_id === started.job_instance_id);
      assert.ok(item, 'the job is listed');
      assert.equal(item.id, started.job_instance_id, 'id carries the job instance id too');
      assert.equal(item.name, 'sdk job ü');
      assert.equal(item.operator, 'sdk-user');
      assert.ok(list.data.every((j) => j.id === j.job_instance_id));

      const long = ok(await script(client, 'sleep 60'));
      await eventually(async () => {
        const s = ok(
          await client.get<JobStatus>('get_job_instance_status', {
            bk_biz_id: BIZ,
            job_instance_id: long.job_instance_id,
            return_ip_result: true,
          }),
        );
        return s.step_instance_list[0]?.step_ip_result_list?.[0]?.status === 7 ? true : undefined;
      });
      const op = ok(
        await client.post('operate_job_instance', {
          bk_biz_id: BIZ,
          job_instance_id: long.job_instance_id,
          operation_code: 1,
        }),
      );
      assert.deepEqual(op, { job_instance_id: long.job_instance_id });
      const stopped = await finished(client, long.job_instance_id, false);
      assert.equal(stopped.job_instance.status, 11);
      assert.equal(stopped.step_instance_list[0]?.step_ip_result_list, null, 'return_ip_result=False');
    }

    it('runs the sequence with ComponentClient (bk_app_secret in the query string or the body)', async () => {
      await sequence(sdk());
    });

    it('runs the sequence with ComponentClientWithSignature (no secret on the wire)', async () => {
      const client = sdk({ signature: true });
      await sequence(client);
      assert.ok(client.last?.target.includes('bk_signature='));
      assert.ok(
        !client.last?.target.includes('bk_app_secret') && !client.last?.body?.includes('bk_app_secret'),
      );
    });

    it('refuses bad signatures, stale timestamps and replayed nonces, and starts nothing', async () => {
      const jobs = await jobCount(fleet);
      refused(
        await script(sdk({ signature: true, appSecret: 'not-the-secret' }), 'echo x'),
        'APP_SIGNATURE_INVALID',
      );
      refused(
        await script(sdk({ signature: true, clockSkewS: -400 }), 'echo x'),
        'APP_SIGNATURE_EXPIRED',
        'bk_timestamp',
        '300 s',
      );
      refused(await script(sdk({ signature: true, clockSkewS: 400 }), 'echo x'), 'APP_SIGNATURE_EXPIRED');
      refused(
        await script(sdk({ signature: true, appCode: 'no-such-app' }), 'echo x'),
        'APP_SIGNATURE_INVALID',
      );
      assert.equal(await jobCount(fleet), jobs);

      const client = sdk({ signature: true });
      const first = ok(await script(client, 'echo once'));
      const sent = client.last;
      assert.ok(sent);
      refused(await client.send(sent), 'APP_SIGNATURE_REPLAYED', 'bk_nonce', fleet.server.appCode);
      // A body changed under the same signature, or a query parameter added, no longer matches.
      refused(
        await client.send({ ...sent, body: sent.body?.replace('sdk job', 'other job') }),
        'APP_SIGNATURE_INVALID',
      );
      refused(await client.send({ ...sent, target: `${sent.target}&bk_biz_id=3` }), 'APP_SIGNATURE_INVALID');
      const noSignature = sent.target.replace(/&bk_signature=[^&]*/, '');
      refused(await client.send({ ...sent, target: noSignature }), 'APP_SIGNATURE_MISSING', 'bk_signature');
      assert.equal(await jobCount(fleet), jobs + 1);
      await finished(client, first.job_instance_id, false);

      // A signed GET replayed is refused too.
      ok(await client.get('get_latest_service_version', {}));
      const get = client.last;
      assert.ok(get);
      refused(await client.send(get), 'APP_SIGNATURE_REPLAYED');
    });

    it('takes a POST with credentials only in the query string and no Content-Type', async () => {
      const client = sdk();
      const q = new URLSearchParams({
        bk_app_code: fleet.server.appCode,
        bk_app_secret: fleet.server.appSecret,
        bk_username: 'curl-user',
        bk_biz_id: String(BIZ),
      });
      const body = JSON.stringify({
        script_language: 1,
        script_content: b64('echo from curl'),
        account_alias: fleet.account,
        target_server: { ip_list: [{ bk_cloud_id: 0, ip: IP }] },
      });
      const started = ok(
        await client.send<Started>({
          method: 'POST',
          target: `/api/c/compapi/v2/jobv3/fast_execute_script?${q}`,
          body,
        }),
      );
      const st = await finished(client, started.job_instance_id, true);
      assert.equal(st.job_instance.status, 3);
    });

    it('answers get_latest_service_version in the documented shape; signatures on every URL form', async () => {
      for (const client of [sdk(), sdk({ signature: true })]) {
        assert.deepEqual(ok(await client.get('get_latest_service_version', {})), {
          version: JOBFLEET_VERSION,
        });
      }
      // Signed requests are checked on the gateway URL forms too, GET and POST.
      for (const form of ['gateway', 'system'] as const) {
        const client = sdk({ signature: true, form });
        assert.deepEqual(ok(await client.get('get_latest_service_version', {})), {
          version: JOBFLEET_VERSION,
        });
        assert.deepEqual(ok(await client.post('get_latest_service_version', {})), {
          version: JOBFLEET_VERSION,
        });
        assert.ok(client.last?.target.startsWith(form === 'system' ? '/api/v3/system/' : '/api/v3/'));
      }
      const res = await fetch(apiUrl(fleet.server.url, 'get_latest_service_version', 'system'), {
        headers: {
          'x-bkapi-authorization': JSON.stringify({
            bk_app_code: fleet.server.appCode,
            bk_app_secret: fleet.server.appSecret,
          }),
        },
      });
      assert.deepEqual(ok((await res.json()) as Envelope<unknown>), { version: JOBFLEET_VERSION });
    });

    it(
      'refuses a nonce replayed to another server of the cluster',
      { skip: engine === 'sqlite' ? 'servers share a database on PostgreSQL' : false },
      async () => {
        const other = await startServer({
          dataDir: fleet.server.dataDir,
          databaseUrl: fleet.server.databaseUrl,
        });
        const client = sdk({ signature: true });
        ok(await client.get('get_latest_service_version', {}));
        const sent = client.last;
        assert.ok(sent);
        const elsewhere = new EsbSdkClient(other.url, { appCode: '', appSecret: '', username: '' });
        refused(await elsewhere.send(sent), 'APP_SIGNATURE_REPLAYED');
        // A fresh request signed for the other server is fine there: it holds the same secret.
        ok(
          await new EsbSdkClient(other.url, {
            appCode: fleet.server.appCode,
            appSecret: fleet.server.appSecret,
            username: 'sdk-user',
            signature: true,
          }).get('get_latest_service_version', {}),
        );
        await other.kill();
      },
    );
  });
}
