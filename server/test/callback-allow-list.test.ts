/**
 * The callback allow-list: which URLs it admits, its configuration, the refusal at submission,
 * and the check before each delivery (a list changed while a job ran).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { callbackUrlAllowed } from '../src/engine/callback-allow-list.js';
import { eventually, get } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { b64, jobCount, runScript, startFleet, waitFinished, stopFleets } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { RESTART_HEARTBEAT_ENV, tempDir } from './helpers/processes.js';

describe('callback allow-list matching', () => {
  test('scheme, host and port must equal an entry; the path must lie at or below its path', () => {
    const list = ['http://127.0.0.1:9000/hooks', 'https://hooks.example.test/'];
    const cases: [string, boolean][] = [
      ['http://127.0.0.1:9000/hooks', true],
      ['http://127.0.0.1:9000/hooks/', true],
      ['http://127.0.0.1:9000/hooks/job/1?x=1', true],
      ['http://127.0.0.1:9000/hooksx', false],
      ['http://127.0.0.1:9000/other', false],
      ['http://127.0.0.1:9000/hooks/../admin', false],
      ['http://127.0.0.1:9001/hooks', false],
      ['https://127.0.0.1:9000/hooks', false],
      ['http://localhost:9000/hooks', false],
      ['https://hooks.example.test/anything', true],
      ['https://hooks.example.test:443/anything', true],
      ['https://HOOKS.example.test/a', true],
      ['https://hooks.example.test:8443/a', false],
      ['http://hooks.example.test/a', false],
      ['not a url', false],
    ];
    for (const [url, allowed] of cases) assert.equal(callbackUrlAllowed(list, url), allowed, url);
    assert.equal(callbackUrlAllowed([], 'http://anything.test:1/x'), true, 'an empty list allows any URL');
    assert.equal(callbackUrlAllowed(['http://h.test:80/a/'], 'http://h.test/a/b'), true, 'default port');
  });

  test('the key is read from the environment as comma-separated base URLs, and checked', () => {
    const cfg = loadConfig({
      env: { JOBFLEET_CALLBACK_ALLOW_LIST: ' http://a.test/x , ,https://b.test ' },
    });
    assert.deepEqual(cfg.callbackAllowList, ['http://a.test/x', 'https://b.test']);
    assert.deepEqual(loadConfig({}).callbackAllowList, [], 'empty by default');
    assert.deepEqual(
      loadConfig({
        flags: { callbackAllowList: 'http://f.test' },
        env: { JOBFLEET_CALLBACK_ALLOW_LIST: 'http://e.test' },
      }).callbackAllowList,
      ['http://f.test'],
      'a flag wins over the environment',
    );
    for (const bad of ['ftp://a.test', 'http://user:pw@a.test', 'nope'])
      assert.throws(() => loadConfig({ env: { JOBFLEET_CALLBACK_ALLOW_LIST: bad } }), ConfigError, bad);
  });
});

for (const engine of engines()) {
  describe(`callback allow-list on ${engine}`, () => {
    let fleet: Fleet;
    let hostId: number;
    let configFile: string;
    let receiver: http.Server;
    let base = '';
    const received: { path: string; body: string }[] = [];

    const callbackList = (jobInstanceId: number) =>
      get<{
        callback_list: {
          url: string;
          state: string;
          attempts: number;
          attempt_list: { attempt: number; http_status: number | null; error: string }[];
        }[];
      }>(
        fleet.server.url,
        'get_job_instance_callback_list',
        { ...fleet.scope, job_instance_id: jobInstanceId },
        fleet.creds,
      );

    before(async () => {
      receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          received.push({ path: req.url ?? '', body });
          res.end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      // The list comes from a config file, so that a restart can pick up a changed one.
      configFile = path.join(tempDir('config'), 'jobfleet.json');
      fs.writeFileSync(configFile, JSON.stringify({ callbackAllowList: `${base}/hooks` }));
      // A server restart below: the agent gets a window wide enough to come back on a loaded machine.
      fleet = await startFleet(engine, 1, {
        args: ['--config', configFile],
        env: RESTART_HEARTBEAT_ENV,
      });
      hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
    });

    after(async () => {
      await stopFleets();
      receiver.close();
    });

    test('a callback_url outside the list is refused at submission and nothing is created', async () => {
      const jobs = await jobCount(fleet);
      const port = Number(new URL(base).port);
      for (const url of [
        `${base}/hooksx`,
        `${base}/other/hooks`,
        `http://localhost:${port}/hooks`,
        `https://127.0.0.1:${port}/hooks`,
        `http://127.0.0.1:${port + 1}/hooks`,
      ]) {
        const r = await runScript(fleet, {
          script_content: b64('true'),
          target_server: { host_id_list: [hostId] },
          callback_url: url,
        });
        assert.equal(r.code, 1240003, url);
        assert.match(r.message, /Callback url is invalid or not in the allowed list/);
        assert.equal(r.data, null);
      }
      assert.equal(await jobCount(fleet), jobs, 'no job was created');
      assert.equal(received.length, 0);
    });

    test('a callback_url under an entry is called when the job finishes', async () => {
      const r = await runScript(fleet, {
        script_content: b64('echo hi'),
        target_server: { host_id_list: [hostId] },
        callback_url: `${base}/hooks/done?token=1`,
      });
      assert.equal(r.result, true, r.message);
      await waitFinished(fleet, r.data.job_instance_id);
      const got = await eventually(async () =>
        received.find((c) => JSON.parse(c.body).job_instance_id === r.data.job_instance_id),
      );
      assert.equal(got.path, '/hooks/done?token=1');
      assert.equal((JSON.parse(got.body) as { status: number }).status, 3);
    });

    test('a URL dropped from the list while its job ran is not called, and the attempt says why', async () => {
      const flag = path.join(tempDir('flag'), 'release');
      const r = await runScript(fleet, {
        script_content: b64('while [ ! -f "$1" ]; do sleep 0.05; done; echo released'),
        script_param: b64(flag),
        target_server: { host_id_list: [hostId] },
        callback_url: `${base}/hooks/late`,
      });
      assert.equal(r.result, true, r.message);
      fs.writeFileSync(configFile, JSON.stringify({ callbackAllowList: `${base}/elsewhere` }));
      // The job survives any stop (crash-recovery.test.ts); a kill keeps this test short.
      await fleet.server.kill('SIGKILL');
      fleet.server = await fleet.server.restart();
      for (const a of fleet.agents) await a.waitReady(2);
      fs.writeFileSync(flag, '');
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      const cb = await eventually(async () => {
        const c = (await callbackList(r.data.job_instance_id)).data.callback_list[0];
        return c?.state === 'failed' ? c : undefined;
      });
      assert.equal(cb.url, `${base}/hooks/late`);
      assert.equal(cb.attempts, 1, 'not retried: the list cannot change while the server runs');
      assert.equal(cb.attempt_list.length, 1);
      assert.equal(cb.attempt_list[0]?.http_status, null);
      assert.match(cb.attempt_list[0]?.error ?? '', /not in the allowed list/);
      assert.equal(
        received.filter((c) => c.path.startsWith('/hooks/late')).length,
        0,
        'the receiver was never called',
      );
    });
  });
}
