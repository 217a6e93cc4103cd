/**
 * The README's first-run path: `jobfleet serve --local-agent` registers this machine as host
 * 127.0.0.1 of business 1 with an account named after the current user, and the README's
 * script run works against it as written (POST to run, GET to poll, log read back).
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, test } from 'node:test';
import { eventually, get, post } from './helpers/api-client.js';
import { startServer, stopAll } from './helpers/processes.js';

after(stopAll);

test('serve --local-agent runs the README example end to end', async () => {
  const server = await startServer({ args: ['--local-agent'] });
  const creds = { appCode: server.appCode, appSecret: server.appSecret, username: os.userInfo().username };
  const scope = { bk_scope_type: 'biz', bk_scope_id: '1' };
  await eventually(
    async () => (server.output().includes('Run a script on it:') ? true : undefined),
    20_000,
    'the quickstart text',
  );
  // The first start creates a platform admin and prints its password once; it signs in.
  const signIn = /Sign in as "admin" with password (\S+)/.exec(server.output());
  assert.ok(signIn?.[1], 'no sign-in line in the quickstart text');
  const login = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    body: JSON.stringify({ username: 'admin', password: signIn[1] }),
  });
  const me = (await login.json()) as { result: boolean; data: { user: { platform_admin: boolean } } };
  assert.equal(me.result, true);
  assert.equal(me.data.user.platform_admin, true);
  const logLines = server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"level"'));
  assert.ok(
    logLines.length > 0 && !logLines.some((l) => l.includes(signIn[1] ?? '')),
    'the password reached a log line',
  );
  const agent = await post<{ agent_info_list: { bk_host_id: number; status: number }[] }>(
    server.url,
    'query_agent_info',
    { ...scope, host_id_list: [1] },
    creds,
    { form: 'system' },
  );
  assert.deepEqual(
    agent.data.agent_info_list.map((a) => [a.bk_host_id, a.status]),
    [[1, 1]],
  );
  const run = await post<{ job_instance_id: number; step_instance_id: number }>(
    server.url,
    'fast_execute_script',
    {
      ...scope,
      script_language: 1,
      script_content: Buffer.from('echo "hello from $(hostname)"; uptime').toString('base64'),
      account_alias: os.userInfo().username,
      target_server: { ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.1' }] },
    },
    creds,
  );
  assert.equal(run.result, true, run.message);
  const status = await eventually(async () => {
    const s = await get<{ finished: boolean; job_instance: { status: number } }>(
      server.url,
      'get_job_instance_status',
      { ...scope, job_instance_id: run.data.job_instance_id, return_ip_result: true },
      creds,
      { form: 'esb' },
    );
    return s.data.finished ? s.data : undefined;
  });
  assert.equal(status.job_instance.status, 3);
  const log = await get<{ log_content: string }>(
    server.url,
    'get_job_instance_ip_log',
    {
      ...scope,
      job_instance_id: run.data.job_instance_id,
      step_instance_id: run.data.step_instance_id,
      bk_host_id: 1,
    },
    creds,
  );
  assert.match(log.data.log_content, new RegExp(`hello from ${os.hostname()}`));
});
