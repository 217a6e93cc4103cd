/**
 * Callback URLs are sealed at rest: a webhook URL whose path or query is its credential reaches
 * neither a column of the store nor the log, and its callback is still POSTed to the whole URL.
 * Rows stored plain before URLs were sealed still work, the start-up reseal seals them and moves
 * sealed ones to a new server key, and a URL whose key is lost fails its callback with the reason
 * recorded instead of stopping the queue.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventually, get, post } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { onFleetDatabase, queryFleetDatabase } from './helpers/fleet-database.js';
import { b64, operateJob, runScript, startFleet, stopFleets, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV, resealReport, startServer } from './helpers/processes.js';

const SECRET_PATH = 's3cret';
const SECRET_QUERY = 't0ken';

const serverKey = () => crypto.randomBytes(32).toString('base64');
/** The key id a SecretBox writes into the values it seals (secret-box.ts). */
const keyIdOf = (key: string) =>
  crypto.createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 8);

interface Received {
  path: string;
  authorization: string | undefined;
  jobInstanceId: number;
}

/** A loopback HTTP server that answers every callback 200 and keeps what it got. */
async function receiver() {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({
        path: req.url ?? '',
        authorization: req.headers.authorization,
        jobInstanceId: (JSON.parse(body) as { job_instance_id: number }).job_instance_id,
      });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    got,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface CallbackItem {
  url: string | null;
  state: string;
  attempts: number;
  attempt_list: { http_status: number | null; error: string }[];
}

async function callbackList(fleet: Fleet, jobInstanceId: number): Promise<CallbackItem[]> {
  const r = await get<{ callback_list: CallbackItem[] }>(
    fleet.server.url,
    'get_job_instance_callback_list',
    { ...fleet.scope, job_instance_id: jobInstanceId },
    fleet.creds,
  );
  assert.equal(r.result, true, r.message);
  return r.data.callback_list;
}

/** Every row of every table of the fleet's database, as one text (binary values as latin1). */
async function databaseText(fleet: Fleet): Promise<string> {
  const tables = await queryFleetDatabase<{ name: string }>(
    fleet,
    `select name from sqlite_master where type = 'table'`,
    `select table_name as name from information_schema.tables where table_schema = 'public'`,
  );
  assert.ok(tables.some((t) => t.name === 'job_instance'));
  assert.ok(tables.some((t) => t.name === 'callback'));
  const parts: string[] = [];
  for (const { name } of tables) {
    const rows = await queryFleetDatabase<Record<string, unknown>>(
      fleet,
      `select * from "${name}"`,
      `select * from "${name}"`,
    );
    for (const row of rows)
      for (const v of Object.values(row))
        parts.push(Buffer.isBuffer(v) ? v.toString('latin1') : typeof v === 'string' ? v : JSON.stringify(v));
  }
  return parts.join('\n');
}

/** The stored callback URLs: of jobs, and of queued callbacks. */
async function storedUrls(fleet: Fleet): Promise<{ jobs: Map<number, string>; callbacks: string[] }> {
  const jobs = await queryFleetDatabase<{ id: number | string; url: string }>(
    fleet,
    'select id, callback_url as url from job_instance where callback_url is not null',
    'select id, callback_url as url from job_instance where callback_url is not null',
  );
  const callbacks = await queryFleetDatabase<{ url: string }>(
    fleet,
    'select url from callback',
    'select url from callback',
  );
  return { jobs: new Map(jobs.map((j) => [Number(j.id), j.url])), callbacks: callbacks.map((c) => c.url) };
}

/**
 * The fleet's server killed and started again with `env`; resolves once every agent was welcomed
 * once more, with the number of welcomes each has had.
 */
async function restartServer(fleet: Fleet, env: Record<string, string>, welcomes: number): Promise<number> {
  await fleet.server.kill();
  fleet.server = await startServer({
    dataDir: fleet.server.dataDir,
    port: fleet.server.port,
    ...(fleet.databaseUrl ? { databaseUrl: fleet.databaseUrl } : {}),
    env: { ...RESTART_HEARTBEAT_ENV, ...env },
  });
  for (const a of fleet.agents) await a.waitReady(welcomes + 1, 30_000);
  return welcomes + 1;
}

for (const engine of engines()) {
  describe(`sealed callback URLs on ${engine}`, () => {
    let fleet: Fleet;
    let hook: Awaited<ReturnType<typeof receiver>>;
    /** Times the agent was welcomed by a server: once more after each restart. */
    let welcomes = 1;
    const oldKey = serverKey();
    const newKey = serverKey();

    before(async () => {
      hook = await receiver();
      fleet = await startFleet(engine, 1, { env: { ...RESTART_HEARTBEAT_ENV, JOBFLEET_SERVER_KEY: oldKey } });
    });
    after(async () => {
      await stopFleets();
      hook?.close();
    });

    const submit = async (callbackUrl: string, start = true): Promise<number> => {
      const r = await runScript(fleet, {
        script_content: b64('true'),
        callback_url: callbackUrl,
        start_task: start,
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(r.result, true, r.message);
      return r.data.job_instance_id;
    };
    const start = async (jobInstanceId: number) => {
      const r = await operateJob(fleet, jobInstanceId, 2);
      assert.equal(r.result, true, r.message);
    };
    const receivedFor = (jobInstanceId: number, path: string) =>
      eventually(
        async () => hook.got.find((g) => g.jobInstanceId === jobInstanceId && g.path === path),
        20_000,
        `a callback of job ${jobInstanceId} at ${path}`,
      );
    const settled = (jobInstanceId: number, state: 'delivered' | 'failed') =>
      eventually(
        async () => {
          const [c] = await callbackList(fleet, jobInstanceId);
          return c?.state === state ? c : undefined;
        },
        20_000,
        `the callback of job ${jobInstanceId} ${state}`,
      );
    const plainJobUrl = async (jobInstanceId: number, url: string) =>
      onFleetDatabase(
        fleet,
        `update job_instance set callback_url = '${url}' where id = ${jobInstanceId}`,
        `update job_instance set callback_url = '${url}' where id = ${jobInstanceId}`,
      );
    const restart = async (env: Record<string, string>) => {
      welcomes = await restartServer(fleet, env, welcomes);
    };
    const resealLine = () => resealReport(fleet.server);

    test('a URL whose path and query are its credential is sealed in the store and kept out of the log, and called whole', async () => {
      // User info stays refused at submission (behaviour notes §7; fetch would not send it either).
      const withUserInfo = await runScript(fleet, {
        script_content: b64('true'),
        callback_url: `http://user:${SECRET_PATH}@127.0.0.1:${hook.port}/hook`,
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(withUserInfo.result, false);
      assert.match(withUserInfo.message, /no user info/);

      const url = `${hook.base}/hook/${SECRET_PATH}?token=${SECRET_QUERY}`;
      const id = await submit(url);
      await waitFinished(fleet, id);
      const got = await receivedFor(id, `/hook/${SECRET_PATH}?token=${SECRET_QUERY}`);
      assert.equal(got.authorization, undefined);
      const cb = await settled(id, 'delivered');
      assert.equal(cb.url, url, 'the callback list shows the URL opened');

      const stored = await storedUrls(fleet);
      assert.match(stored.jobs.get(id) ?? '', /^sb1:/, 'job_instance.callback_url is sealed');
      assert.equal(stored.callbacks.length, 1);
      assert.match(stored.callbacks[0] ?? '', /^sb1:/, 'callback.url is sealed');
      const text = await databaseText(fleet);
      assert.ok(text.includes(stored.jobs.get(id) ?? '-'), 'the dump reads the job row');
      assert.ok(!text.includes(SECRET_PATH), 'the path credential is in no column');
      assert.ok(!text.includes(SECRET_QUERY), 'the query credential is in no column');
      assert.ok(!fleet.server.output().includes(SECRET_PATH), 'the path credential is not logged');
      assert.ok(!fleet.server.output().includes(SECRET_QUERY), 'the query credential is not logged');
    });

    test('URLs stored plain before they were sealed are still called', async () => {
      // A job stored plain, as before this change: its callback is queued sealed.
      const legacyJob = await submit(`${hook.base}/hook/not-used`, false);
      await plainJobUrl(legacyJob, `${hook.base}/hook/legacy-job`);
      await start(legacyJob);
      await receivedFor(legacyJob, '/hook/legacy-job');
      const callbacks = await callbackList(fleet, legacyJob);
      assert.deepEqual(
        callbacks.map((c) => [c.url, c.state]),
        [[`${hook.base}/hook/legacy-job`, 'delivered']],
      );
      assert.ok(
        (await storedUrls(fleet)).callbacks.every((u) => u.startsWith('sb1:')),
        'queued sealed',
      );

      // A callback queued plain, as before this change, is sent once the queue looks again (a
      // job's callback wakes it).
      const now = Date.now();
      await onFleetDatabase(
        fleet,
        `insert into callback (job_instance_id, url, payload, state, attempts, next_attempt_at, created_at)
         values (${legacyJob}, '${hook.base}/hook/legacy-row', '{"job_instance_id":${legacyJob},"status":3}', 'pending', 0, ${now}, ${now})`,
        `insert into callback (job_instance_id, url, payload, state, attempts, next_attempt_at, created_at)
         values (${legacyJob}, '${hook.base}/hook/legacy-row', '{"job_instance_id":${legacyJob},"status":3}', 'pending', 0, ${now}, ${now})`,
      );
      const waker = await submit(`${hook.base}/hook/waker`);
      await receivedFor(waker, '/hook/waker');
      await receivedFor(legacyJob, '/hook/legacy-row');
      await eventually(async () => {
        const list = await callbackList(fleet, legacyJob);
        return list.length === 2 && list.every((c) => c.state === 'delivered') ? true : undefined;
      });
    });

    test('a key rotation seals plain URLs and reseals the others; a URL whose key is lost fails its callback', async () => {
      // Under the old key: a job stored but not started, and one stored plain.
      const sealedJob = await submit(`${hook.base}/hook/sealed-before`, false);
      const plainJob = await submit(`${hook.base}/hook/not-used`, false);
      await plainJobUrl(plainJob, `${hook.base}/hook/plain-before`);
      const before = await storedUrls(fleet);
      const stale = [...before.jobs.values(), ...before.callbacks];
      assert.ok(
        stale.some((u) => !u.startsWith('sb1:')),
        'a plain URL is left to seal',
      );

      await restart({ JOBFLEET_SERVER_KEY: newKey, JOBFLEET_SERVER_KEYS_PREVIOUS: oldKey });
      const resealed = await resealLine();
      assert.deepEqual(resealed, { ...resealed, resealed: stale.length, unopenable: 0, changed: 0 });
      const afterRotation = await storedUrls(fleet);
      const newPrefix = `sb1:${keyIdOf(newKey)}:`;
      for (const u of [...afterRotation.jobs.values(), ...afterRotation.callbacks])
        assert.ok(u.startsWith(newPrefix), `${u.slice(0, 13)} is under the new key`);
      // Resealing queued callbacks queues none again (finishedWithoutCallback does not go by the text).
      assert.equal(afterRotation.callbacks.length, before.callbacks.length);

      await start(sealedJob);
      await receivedFor(sealedJob, '/hook/sealed-before');
      await start(plainJob);
      await receivedFor(plainJob, '/hook/plain-before');

      // The old key dropped: what was resealed opens.
      await restart({ JOBFLEET_SERVER_KEY: newKey });
      assert.deepEqual(
        (await callbackList(fleet, sealedJob)).map((c) => c.url),
        [`${hook.base}/hook/sealed-before`],
      );
      const lostJob = await submit(`${hook.base}/hook/lost`, false);
      const sentBefore = hook.got.length;

      // The key lost: the callback fails at once, with the reason, and the queue goes on.
      await restart({ JOBFLEET_SERVER_KEY: serverKey() });
      await start(lostJob);
      const st = await waitFinished(fleet, lostJob);
      assert.equal(st.job_instance.status, 3);
      const failed = await settled(lostJob, 'failed');
      assert.equal(failed.url, null);
      assert.equal(failed.attempts, 1);
      assert.equal(failed.attempt_list[0]?.http_status, null);
      assert.match(failed.attempt_list[0]?.error ?? '', /not sent: callback_url does not open/);
      assert.ok(!hook.got.slice(sentBefore).some((g) => g.jobInstanceId === lostJob), 'nothing was sent');
      assert.match(fleet.server.output(), /callback not sent: its sealed url does not open/);
      // Another job's callback is still sent.
      const next = await submit(`${hook.base}/hook/after-lost`);
      await receivedFor(next, '/hook/after-lost');
    });
  });
}

for (const engine of engines()) {
  describe(`sealed confirmation webhook URLs on ${engine}`, () => {
    let fleet: Fleet;
    let hook: Awaited<ReturnType<typeof receiver>>;
    let welcomes = 1;
    const oldKey = serverKey();
    const newKey = serverKey();

    before(async () => {
      hook = await receiver();
      fleet = await startFleet(engine, 1, { env: { ...RESTART_HEARTBEAT_ENV, JOBFLEET_SERVER_KEY: oldKey } });
    });
    after(async () => {
      await stopFleets();
      hook?.close();
    });

    const call = async <T>(name: string, body: Record<string, unknown>): Promise<T> => {
      const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
      assert.equal(r.result, true, `${name}: ${r.message}`);
      return r.data;
    };
    const read = async <T>(name: string, query: Record<string, unknown>): Promise<T> => {
      const r = await get<T>(fleet.server.url, name, { ...fleet.scope, ...query }, fleet.creds);
      assert.equal(r.result, true, `${name}: ${r.message}`);
      return r.data;
    };
    interface StepView {
      id: number;
      name: string;
      type: number;
      approval_info?: { webhook_url?: string };
    }
    const templateSteps = async (templateId: number) =>
      (await read<{ step_list: StepView[] }>('get_job_template_detail', { job_template_id: templateId }))
        .step_list;
    const templateBody = async (templateId: number): Promise<string> => {
      const [row] = await queryFleetDatabase<{ body: string }>(
        fleet,
        `select body from job_template where id = ${templateId}`,
        `select body from job_template where id = ${templateId}`,
      );
      return row?.body ?? '';
    };
    const storedWebhook = async (templateId: number) =>
      (JSON.parse(await templateBody(templateId)) as { steps: StepView[] }).steps[0]?.approval_info
        ?.webhook_url ?? '';
    const confirmSteps = () =>
      queryFleetDatabase<{ id: number | string; spec: string; sealed_key: string | null }>(
        fleet,
        `select id, spec, sealed_key from step_instance where type = 3 order by id`,
        `select id, spec, sealed_key from step_instance where type = 3 order by id`,
      );
    const webhookOf = (spec: string) => (JSON.parse(spec) as { webhookUrl: string }).webhookUrl;
    /** Runs the plan; resolves once its confirmation step waits and its webhook was received. */
    const runToConfirmation = async (planId: number, path: string): Promise<number> => {
      const { job_instance_id: id } = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: planId,
      });
      await eventually(
        async () => hook.got.find((g) => g.jobInstanceId === id && g.path === path),
        20_000,
        `the webhook of job ${id} at ${path}`,
      );
      return id;
    };
    const restart = async (env: Record<string, string>) => {
      welcomes = await restartServer(fleet, env, welcomes);
    };

    test('is sealed in its template and its step, shown and called whole, resealed by a key rotation', async () => {
      const secretPath = `/confirm/${SECRET_PATH}?token=${SECRET_QUERY}`;
      const approval = (url: string) => ({
        approval_user: { user_list: ['tester'] },
        approval_message: 'go on?',
        notify_channel: ['webhook'],
        webhook_url: url,
      });
      const { id: templateId } = await call<{ id: number }>('create_job_template', {
        name: 'confirm with a webhook',
        step_list: [{ name: 'confirm', type: 3, approval_info: approval(`${hook.base}${secretPath}`) }],
      });
      const sealed = await storedWebhook(templateId);
      assert.match(sealed, new RegExp(`^sb1:${keyIdOf(oldKey)}:`), 'the template holds it sealed');
      const steps = await templateSteps(templateId);
      assert.equal(
        steps[0]?.approval_info?.webhook_url,
        `${hook.base}${secretPath}`,
        'the detail shows it opened',
      );
      // Saved back unchanged, as editors do: the same sealed text, not a new one.
      await call('update_job_template', {
        job_template_id: templateId,
        name: 'confirm with a webhook',
        step_list: steps,
      });
      assert.equal(await storedWebhook(templateId), sealed);

      const { id: planId } = await call<{ id: number }>('create_job_plan', {
        job_template_id: templateId,
        name: 'confirm plan',
      });
      const plan = await read<{ step_list: StepView[] }>('get_job_plan_detail', { job_plan_id: planId });
      assert.equal(plan.step_list[0]?.approval_info?.webhook_url, `${hook.base}${secretPath}`);
      const firstJob = await runToConfirmation(planId, secretPath);
      const [step] = await confirmSteps();
      assert.match(webhookOf(step?.spec ?? ''), /^sb1:/, 'the step holds it sealed');
      assert.equal(step?.sealed_key, keyIdOf(oldKey), 'the step is found by its key');
      const text = await databaseText(fleet);
      assert.ok(text.includes(sealed), 'the dump reads the template');
      assert.ok(!text.includes(SECRET_PATH), 'the path credential is in no column');
      assert.ok(!text.includes(SECRET_QUERY), 'the query credential is in no column');
      assert.ok(!fleet.server.output().includes(SECRET_PATH), 'the path credential is not logged');
      assert.ok(!fleet.server.output().includes(SECRET_QUERY), 'the query credential is not logged');

      // As stored before webhook URLs were sealed: the template plain, and a step plain whose
      // sealed_key migration 0050 has to set (it runs again at the next start).
      const plainTemplate = `${hook.base}/confirm/plain-template`;
      const plainBody = (await templateBody(templateId)).replace(sealed, plainTemplate);
      await onFleetDatabase(
        fleet,
        `update job_template set body = '${plainBody}' where id = ${templateId}`,
        `update job_template set body = '${plainBody}' where id = ${templateId}`,
      );
      const plainStep = `${hook.base}/confirm/plain-step`;
      const plainSpec = (step?.spec ?? '').replace(webhookOf(step?.spec ?? ''), plainStep);
      const update = `update step_instance set spec = '${plainSpec}', sealed_key = null where id = ${step?.id}`;
      await onFleetDatabase(fleet, update, update);
      const forget = `delete from jobfleet_migration where name = '0050_sealed_step_webhooks'`;
      await onFleetDatabase(fleet, forget, forget);
      // One more step, sealed under the old key.
      const oldKeyJob = await runToConfirmation(planId, '/confirm/plain-template');

      await restart({ JOBFLEET_SERVER_KEY: newKey, JOBFLEET_SERVER_KEYS_PREVIOUS: oldKey });
      const resealed = await resealReport(fleet.server);
      // The template's URL, the plain step and the step under the old key; and the callbacks
      // that told the approvers (callback-url-sealing's other suite follows those).
      const told = await queryFleetDatabase<{ id: number }>(
        fleet,
        'select id from callback',
        'select id from callback',
      );
      assert.equal(told.length, 2);
      assert.deepEqual(resealed, { ...resealed, resealed: 3 + told.length, unopenable: 0, changed: 0 });
      const newPrefix = `sb1:${keyIdOf(newKey)}:`;
      assert.ok((await storedWebhook(templateId)).startsWith(newPrefix), 'the template is under the new key');
      const stepsAfter = await confirmSteps();
      assert.equal(stepsAfter.length, 2);
      for (const s of stepsAfter) {
        assert.ok(webhookOf(s.spec).startsWith(newPrefix), `step ${s.id} is under the new key`);
        assert.equal(s.sealed_key, keyIdOf(newKey));
      }
      const opened = (await templateSteps(templateId))[0]?.approval_info?.webhook_url;
      assert.equal(opened, plainTemplate);

      // What was resealed opens once the old key is dropped: the approvers of a confirmation
      // terminated (9) and restarted (10) are told again, from the step's own URL.
      await restart({ JOBFLEET_SERVER_KEY: newKey });
      for (const [s, jobId, path] of [
        [stepsAfter[0], firstJob, '/confirm/plain-step'],
        [stepsAfter[1], oldKeyJob, '/confirm/plain-template'],
      ] as const) {
        const told = () => hook.got.filter((g) => g.jobInstanceId === jobId && g.path === path).length;
        const before = told();
        for (const operation_code of [9, 10])
          await call('operate_step_instance', {
            job_instance_id: jobId,
            step_instance_id: Number(s?.id),
            operation_code,
          });
        await eventually(async () => (told() > before ? true : undefined), 20_000, `job ${jobId} told again`);
      }
    });
  });
}
