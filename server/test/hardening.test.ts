/**
 * What a hostile or careless client found, each tried again against a real server with real
 * agents: a registered agent writing into other hosts' tasks, sensitive parameters at rest,
 * secrets in the server log, racing uploads, a regular expression that freezes the server,
 * over-long input, URLs the router cannot take, and job-name filters with `_` or `%`.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type WebSocket from 'ws';
import { apiUrl, eventually, get, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, startFleet, waitFinished } from './helpers/fleet.js';
import { handAgent } from './helpers/hand-agent.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';
import { encodeOutputFrame } from '@jobfleet/protocol';

after(async () => {
  await stopAll();
  await dropFreshDatabases();
});

/** A registered agent driven by hand: it says hello, then sends whatever the test gives it. */
function rogueAgent(fleet: Fleet, ip: string): Promise<{ ws: WebSocket; hostId: number }> {
  return handAgent(fleet.server, ip, 'rogue');
}

/** Every agent message type that names a task or an offer, about `key` (step:count:host). */
function forgedMessages(key: string, serveId: string, label: string): Record<string, unknown>[] {
  const now = Date.now();
  return [
    { v: 1, type: 'task.started', key, startTime: now },
    { v: 1, type: 'task.output', key, offset: 0, data: b64('FORGED OUTPUT\n') },
    {
      v: 1,
      type: 'task.file',
      key,
      label,
      sourcePath: '/forged/source.txt',
      targetPath: '/forged/target.txt',
      status: 'finished',
      size: 1,
      bytes: 1,
      speed: 1,
      message: 'forged',
    },
    {
      v: 1,
      type: 'file.served',
      serveId,
      url: 'http://127.0.0.66:1',
      files: [],
      error: { kind: 'missing', paths: ['/forged'], message: 'forged' },
    },
    {
      v: 1,
      type: 'task.finished',
      key,
      outcome: 'exited',
      exitCode: 0,
      startTime: now,
      endTime: now,
      outputBytes: 0,
      droppedBytes: 0,
      message: '',
    },
    {
      v: 1,
      type: 'task.report',
      key,
      startTime: now,
      output: { offset: 0, data: b64('FORGED REPORT\n') },
      result: {
        outcome: 'exited',
        exitCode: 0,
        startTime: now,
        endTime: now,
        outputBytes: 14,
        droppedBytes: 0,
        message: '',
      },
    },
  ];
}

/** Sends the forged messages every 50 ms until `done` settles. */
async function keepForging(ws: WebSocket, messages: () => Record<string, unknown>[], done: Promise<unknown>) {
  let over = false;
  void done.finally(() => (over = true));
  while (!over) {
    for (const m of messages()) {
      ws.send(JSON.stringify(m));
      // The same output as a binary frame, the form agents send it in to servers that offer it.
      if (m.type === 'task.output' && typeof m.key === 'string')
        ws.send(encodeOutputFrame(m.key, 0, Buffer.from('FORGED FRAME\n')), { binary: true });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface FileLogView {
  file_logs: { src_path: string; dest_path?: string; log_content: string }[] | null;
}

for (const engine of engines()) {
  describe(`hardening on ${engine}`, () => {
    let fleet: Fleet;
    let hostA: number;
    let hostB: number;
    let databaseUrl: string | undefined;

    before(async () => {
      fleet = await startFleet(engine, 2, { fileRoots: true });
      hostA = fleet.hostIds.get('127.0.0.2') ?? 0;
      hostB = fleet.hostIds.get('127.0.0.3') ?? 0;
      if (engine === 'postgres') {
        // The store logs its location without the password: the test's own URL gives that.
        const line = fleet.server
          .output()
          .split('\n')
          .find((l) => l.includes('"msg":"store ready"'));
        const url = new URL(process.env.JOBFLEET_TEST_PG_URL ?? '');
        url.pathname = new URL((JSON.parse(line ?? '{}') as { location: string }).location).pathname;
        databaseUrl = url.toString();
      }
    });

    test('finding 1: an agent cannot report on another host’s tasks, of any message type', async () => {
      const rogue = await rogueAgent(fleet, '127.0.0.66');
      // A script step on host A that fails with 3 after a while: a forged success would end it early at 0.
      const script = await post<{ job_instance_id: number; step_instance_id: number }>(
        fleet.server.url,
        'fast_execute_script',
        {
          ...fleet.scope,
          script_language: 1,
          account_alias: fleet.account,
          script_content: b64('sleep 2; echo real output; exit 3'),
          target_server: { host_id_list: [hostA] },
        },
        fleet.creds,
      );
      assert.equal(script.result, true, script.message);
      const step = script.data.step_instance_id;
      const finished = waitFinished(fleet, script.data.job_instance_id);
      await keepForging(
        rogue.ws,
        () => [
          ...forgedMessages(`${step}:0:${hostA}`, `${step}-0-src-${hostA}`, '0:127.0.0.2'),
          ...forgedMessages(`${step}:0:${rogue.hostId}`, `${step}-0-src-${rogue.hostId}`, '0:127.0.0.2'),
        ],
        finished,
      );
      const st = await finished;
      const h = st.step_instance_list[0]?.step_ip_result_list?.find((r) => r.bk_host_id === hostA);
      assert.equal(h?.exit_code, 3, JSON.stringify(st));
      const log = await hostLog(fleet, script.data.job_instance_id, step, hostA);
      assert.match(log ?? '', /real output/);
      assert.doesNotMatch(log ?? '', /FORGED/);

      // A file step from host A to host B, slowed so the rogue has time to write into its logs.
      const root = fleet.fileRoots.get('127.0.0.2') ?? '';
      fs.mkdirSync(path.join(root, 'src'), { recursive: true });
      fs.writeFileSync(path.join(root, 'src', 'payload.bin'), crypto.randomBytes(3 * 1024 * 1024));
      const transfer = await post<{ job_instance_id: number; step_instance_id: number }>(
        fleet.server.url,
        'fast_transfer_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/dst/',
          download_speed_limit: 1,
          file_source_list: [
            {
              file_list: ['/src/payload.bin'],
              account: { alias: fleet.account },
              server: { host_id_list: [hostA] },
            },
          ],
          target_server: { host_id_list: [hostB] },
        },
        fleet.creds,
      );
      assert.equal(transfer.result, true, transfer.message);
      const fstep = transfer.data.step_instance_id;
      const fdone = waitFinished(fleet, transfer.data.job_instance_id, 30_000);
      await keepForging(
        rogue.ws,
        () => [
          ...forgedMessages(`${fstep}:0:${hostB}`, `${fstep}-0-src-${hostA}`, '0:127.0.0.2'),
          ...forgedMessages(`${fstep}:0:${rogue.hostId}`, `${fstep}-0-seed-${rogue.hostId}`, '0:127.0.0.2'),
        ],
        fdone,
      );
      const fst = await fdone;
      assert.equal(fst.job_instance.status, 3, JSON.stringify(fst));
      for (const host of [hostA, hostB]) {
        const logs = await get<FileLogView>(
          fleet.server.url,
          'get_job_instance_ip_log',
          {
            ...fleet.scope,
            job_instance_id: transfer.data.job_instance_id,
            step_instance_id: fstep,
            bk_host_id: host,
          },
          fleet.creds,
        );
        assert.equal(logs.result, true, logs.message);
        assert.ok((logs.data.file_logs ?? []).length > 0);
        assert.doesNotMatch(JSON.stringify(logs.data), /forged/, `file logs of host ${host}`);
      }
      const batch = await post<{ job_instance_id: number; file_task_logs: unknown }>(
        fleet.server.url,
        'batch_get_job_instance_ip_log',
        {
          ...fleet.scope,
          job_instance_id: transfer.data.job_instance_id,
          step_instance_id: fstep,
          host_id_list: [hostA, hostB, rogue.hostId],
        },
        fleet.creds,
      );
      assert.equal(batch.result, true, batch.message);
      assert.doesNotMatch(JSON.stringify(batch.data), /forged/);
      assert.match(fleet.server.output(), /agent message about another host; dropped/);
      rogue.ws.close();
    });

    test('finding 2: a sensitive parameter is sealed at rest and on the agent, and reaches the script', async () => {
      const secret = `TOPSECRET-${crypto.randomBytes(6).toString('hex')}`;
      const r = await post<{ job_instance_id: number; step_instance_id: number }>(
        fleet.server.url,
        'fast_execute_script',
        {
          ...fleet.scope,
          script_language: 1,
          account_alias: fleet.account,
          // The script prints a digest: its own output is not what this test is about.
          script_content: b64('printf %s "$1" | sha256sum; sleep 1'),
          script_param: b64(secret),
          is_param_sensitive: 1,
          target_server: { host_id_list: [hostA] },
        },
        fleet.creds,
      );
      assert.equal(r.result, true, r.message);
      // While it runs, the agent's task spool (its journal) holds the request: without the parameter.
      const spool = path.join(fleet.agents[0]?.stateDir ?? '', 'spool');
      const key = `"key":"${r.data.step_instance_id}:0:${hostA}"`;
      const journal = await eventually(async () => {
        const bytes = fs.existsSync(spool)
          ? fs
              .readdirSync(spool)
              .map((f) => fs.readFileSync(path.join(spool, f), 'latin1'))
              .join('')
          : '';
        return bytes.includes(key) ? bytes : undefined;
      });
      assert.equal(journal.includes(secret), false, 'the agent spool holds the parameter');
      assert.equal(journal.includes(b64(secret)), false, 'the agent spool holds the parameter in base64');
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      assert.match(
        (await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, hostA)) ?? '',
        new RegExp(crypto.createHash('sha256').update(secret).digest('hex')),
      );
      // Replies show ****** (script-execution.test.ts).
      if (databaseUrl === undefined) {
        // The database file and its WAL, byte for byte.
        for (const f of fs.readdirSync(fleet.server.dataDir).filter((n) => n.startsWith('jobfleet.db'))) {
          const bytes = fs.readFileSync(path.join(fleet.server.dataDir, f));
          assert.equal(bytes.includes(secret), false, `${f} holds the parameter in plain text`);
          assert.equal(bytes.includes(b64(secret)), false, `${f} holds the parameter in base64`);
        }
      } else {
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        try {
          const rows = await client.query<{ spec: string; sealed_key: string | null }>(
            'select spec, sealed_key from step_instance where id = $1',
            [r.data.step_instance_id],
          );
          assert.equal(rows.rows[0]?.spec.includes(secret), false);
          assert.match(rows.rows[0]?.spec ?? '', /"scriptParam":"sb1:/);
        } finally {
          await client.end();
        }
      }
    });

    test('finding 3: credentials, tokens and sensitive parameters never reach the server log', async () => {
      const param = `LOGSECRET-${crypto.randomBytes(6).toString('hex')}`;
      // GET with credentials in the query string, as the README's curl example does.
      const st = await get(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: 1, create_time_end: 2 },
        fleet.creds,
      );
      assert.equal(st.code, 0, st.message);
      // POST with a sensitive script_param in the query string and the secret in the header.
      const q = new URLSearchParams({
        script_param: b64(param),
        is_param_sensitive: '1',
        bk_signature: 'SIGSECRET',
      });
      const res = await fetch(`${apiUrl(fleet.server.url, 'fast_execute_script')}?${q}`, {
        method: 'POST',
        headers: {
          'x-bkapi-authorization': JSON.stringify({
            bk_app_code: fleet.creds.appCode,
            bk_app_secret: fleet.creds.appSecret,
            bk_username: 'tester',
          }),
        },
        body: JSON.stringify({
          ...fleet.scope,
          script_language: 1,
          account_alias: fleet.account,
          script_content: b64('true'),
          target_server: { host_id_list: [hostA] },
        }),
      });
      const env = (await res.json()) as Envelope<{ job_instance_id: number }>;
      assert.equal(env.result, true, env.message);
      await waitFinished(fleet, env.data.job_instance_id);
      // A wrong secret in the query string, and an unknown path with credentials.
      await fetch(
        `${apiUrl(fleet.server.url, 'get_job_instance_list')}?bk_app_code=x&bk_app_secret=WRONGSECRET`,
      );
      await fetch(`${fleet.server.url}/nope?bk_app_secret=WRONGSECRET2&token=TOKENSECRET`);
      // Calls that only read are not logged one by one: the unknown path's line is the one, and it
      // may reach the pipe after the reply does.
      const out = await eventually(
        async () => {
          const text = fleet.server.output();
          return /bk_app_secret=\*\*\*[&"]/.test(text) ? text : undefined;
        },
        10_000,
        'request URLs still logged, redacted',
      );
      for (const leaked of [
        fleet.creds.appSecret,
        'WRONGSECRET',
        'TOKENSECRET',
        'SIGSECRET',
        param,
        b64(param),
        encodeURIComponent(b64(param)),
        fleet.server.adminToken,
        fleet.server.bootstrapToken,
      ])
        assert.equal(out.includes(leaked), false, `the server log holds ${leaked}`);
    });

    test('finding 4: a second upload racing on one URL never destroys the first', async () => {
      const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['race.bin'] },
        fleet.creds,
      );
      assert.equal(urls.result, true, urls.message);
      const entry = urls.data.url_map['race.bin'];
      assert.ok(entry);
      const slowData = crypto.randomBytes(256 * 1024);
      const fastData = crypto.randomBytes(1024);
      // The slow upload sends half, waits until the fast one has been answered, then the rest.
      let releaseSlow: () => void = () => undefined;
      const slowMayFinish = new Promise<void>((r) => (releaseSlow = r));
      const slow = new Promise<Envelope>((resolve, reject) => {
        const req = http.request(entry.upload_url, { method: 'PUT' }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(JSON.parse(text) as Envelope));
        });
        req.on('error', reject);
        req.write(slowData.subarray(0, slowData.length / 2));
        void slowMayFinish.then(() => req.end(slowData.subarray(slowData.length / 2)));
      });
      await new Promise((r) => setTimeout(r, 500));
      const fast = (await (
        await fetch(entry.upload_url, { method: 'PUT', body: fastData })
      ).json()) as Envelope;
      releaseSlow();
      const first = await slow;
      const ok = [first, fast].filter((e) => e.result);
      assert.equal(ok.length, 1, `exactly one upload is kept: ${JSON.stringify([first, fast])}`);
      assert.equal(first.result, true, 'the upload that claimed the URL first is the one kept');
      assert.equal(
        fleet.server.output().includes(new URL(entry.upload_url).pathname),
        false,
        'upload token logged',
      );
      assert.equal(fast.code, 1243016);
      const t = await post<{ job_instance_id: number }>(
        fleet.server.url,
        'fast_transfer_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/race/',
          file_source_list: [{ file_type: 2, file_list: [entry.path] }],
          target_server: { host_id_list: [hostB] },
        },
        fleet.creds,
      );
      assert.equal(t.result, true, t.message);
      const st = await waitFinished(fleet, t.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      const got = fs.readFileSync(path.join(fleet.fileRoots.get('127.0.0.3') ?? '', 'race', 'race.bin'));
      assert.ok(got.equals(slowData));
    });

    test('a refused upload is answered with its envelope while its body is still on the way', async () => {
      const urls = await post<{ url_map: Record<string, { upload_url: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['once.bin'] },
        fleet.creds,
      );
      assert.equal(urls.result, true, urls.message);
      const url = urls.data.url_map['once.bin']?.upload_url ?? '';
      const first = (await (
        await fetch(url, { method: 'PUT', body: Buffer.alloc(1024) })
      ).json()) as Envelope;
      assert.equal(first.result, true, first.message);
      // The URL is used: each later PUT is refused before a byte of it is read. The server
      // closes the connection after its answer; a client still sending must get the answer,
      // not a broken pipe.
      const body = crypto.randomBytes(16 * 1024 * 1024);
      for (let i = 0; i < 5; i++) {
        const again = (await (await fetch(url, { method: 'PUT', body })).json()) as Envelope;
        assert.equal(again.code, 1243016, again.message);
      }
    });

    test('finding 6: over-long input gets a clear code, and long file names are stored', async () => {
      const now = Date.now();
      const list = await post(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: now - 3600_000, create_time_end: now, name: 'x'.repeat(60_000) },
        fleet.creds,
      );
      assert.equal(list.code, 1241002, list.message);
      assert.match(list.message, /name/);
      // 250 characters: the target takes it; the server's own temporary name must too.
      const longName = `${'n'.repeat(246)}.txt`;
      const push = await post<{ job_instance_id: number }>(
        fleet.server.url,
        'push_config_file',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          file_target_path: '/conf/',
          file_list: [{ file_name: longName, content: b64('long') }],
          target_server: { host_id_list: [hostB] },
        },
        fleet.creds,
      );
      assert.equal(push.result, true, push.message);
      const st = await waitFinished(fleet, push.data.job_instance_id);
      assert.equal(st.job_instance.status, 3, JSON.stringify(st));
      assert.equal(
        fs.readFileSync(path.join(fleet.fileRoots.get('127.0.0.3') ?? '', 'conf', longName), 'utf8'),
        'long',
      );
      // 1,024 characters, BK-JOB's limit for an upload's name.
      const uploadName = 'u'.repeat(1024);
      const urls = await post<{ url_map: Record<string, { upload_url: string; path: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: [uploadName] },
        fleet.creds,
      );
      assert.equal(urls.result, true, urls.message);
      const up = (await (
        await fetch(urls.data.url_map[uploadName]?.upload_url ?? '', { method: 'PUT', body: 'bytes' })
      ).json()) as Envelope<{ size: number }>;
      assert.equal(up.result, true, up.message);
      assert.equal(up.data.size, 5);
      const tooLong = await post(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['u'.repeat(1025)] },
        fleet.creds,
      );
      assert.equal(tooLong.code, 1241010);
      // A name that is a property of every object is a name like any other.
      const proto = await post<{ url_map: Record<string, { upload_url: string }> }>(
        fleet.server.url,
        'generate_local_file_upload_url',
        { ...fleet.scope, file_name_list: ['__proto__', 'constructor'] },
        fleet.creds,
      );
      assert.equal(proto.result, true, proto.message);
      assert.deepEqual(Object.keys(proto.data.url_map).sort(), ['__proto__', 'constructor']);
      assert.ok(Object.hasOwn(proto.data.url_map, '__proto__'));
      // More topology nodes than a target may list: refused before any is read.
      const nodes = await post(
        fleet.server.url,
        'fast_execute_script',
        {
          ...fleet.scope,
          account_alias: fleet.account,
          script_content: b64('echo never'),
          target_server: {
            topo_node_list: Array.from({ length: 5001 }, (_, i) => ({ id: i + 1, node_type: 'module' })),
          },
        },
        fleet.creds,
      );
      assert.equal(nodes.result, false);
      assert.match(nodes.message, /topo_node_list.*more than 5000 nodes/);
      // A run of digits longer than any host id is no host (PostgreSQL refused the query).
      const huge = '9'.repeat(20);
      const resolved = await post<{ invalid: string[] }>(
        fleet.server.url,
        'resolve_hosts',
        { ...fleet.scope, entries: [huge, `${huge}:10.0.0.1`] },
        fleet.creds,
      );
      assert.equal(resolved.result, true, resolved.message);
      assert.deepEqual(resolved.data.invalid, [huge, `${huge}:10.0.0.1`]);
    });

    test('finding 7: URLs the router cannot take are answered with the envelope', async () => {
      for (const p of [
        '/api/v3/%zz',
        `/api/v3/${'x'.repeat(150)}`,
        `/api/c/compapi/v2/jobv3/${'y'.repeat(101)}/`,
      ]) {
        const res = await fetch(`${fleet.server.url}${p}`);
        assert.equal(res.status, 200, p);
        const env = (await res.json()) as Envelope;
        assert.equal(env.result, false);
        assert.equal(env.code, 1240003, `${p}: ${env.message}`);
        assert.ok(env.request_id);
      }
      // Over Node's 16 KiB header limit, refused by the HTTP parser before any route runs.
      const res = await fetch(`${fleet.server.url}/api/v3/get_job_instance_list?name=${'z'.repeat(20_000)}`);
      assert.equal(res.status, 200);
      const env = (await res.json()) as Envelope;
      assert.equal(env.code, 1240003, env.message);
      assert.match(env.message, /larger than 16 KiB/);
    });

    test('a second hello on one agent connection closes it', async () => {
      const rogue = await rogueAgent(fleet, '127.0.0.67');
      const closed = new Promise<number>((resolve) =>
        rogue.ws.once('close', (code: number) => resolve(code)),
      );
      rogue.ws.send(
        JSON.stringify({
          v: 1,
          type: 'hello',
          agentVersion: 'rogue',
          host: { ip: '127.0.0.67', ipv6: '', cloudId: 0, hostname: 'rogue-127.0.0.67', osType: 'linux' },
          held: [],
        }),
      );
      assert.equal(await closed, 4001);
    });

    test('a client resetting an agent-link upgrade, at any moment, does not end the server', async () => {
      const { hostname, port } = new URL(fleet.server.url);
      const request = [
        'GET /agent/v1/link HTTP/1.1',
        `Host: ${hostname}:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Version: 13',
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`,
        'Authorization: Bearer not-a-token.at-all',
        '',
        '',
      ].join('\r\n');
      for (const delayMs of [0, 0, 1, 2, 5, 10, 20, 50]) {
        await new Promise<void>((resolve) => {
          const sock = net.connect(Number(port), hostname, () => {
            sock.write(request);
            setTimeout(() => {
              sock.resetAndDestroy();
              resolve();
            }, delayMs);
          });
          sock.on('error', () => resolve());
        });
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fleet.server.proc.exitCode, null, fleet.server.output().slice(-2000));
      const r = await get(
        fleet.server.url,
        'get_job_instance_list',
        { ...fleet.scope, create_time_start: Date.now() - 60_000, create_time_end: Date.now() },
        fleet.creds,
      );
      assert.equal(r.result, true, r.message);
    });

    test('finding 8: job-name filters with _ and % match literally', async () => {
      const start = Date.now() - 1000;
      const names = ['deploy_web%1', 'deployXweb-1'];
      for (const task_name of names) {
        const r = await post(
          fleet.server.url,
          'fast_execute_script',
          {
            ...fleet.scope,
            task_name,
            script_language: 1,
            account_alias: fleet.account,
            script_content: b64('true'),
            target_server: { host_id_list: [hostA] },
            start_task: false,
          },
          fleet.creds,
        );
        assert.equal(r.result, true, r.message);
      }
      const find = async (name: string) => {
        const r = await get<{ data: { name: string }[] | null }>(
          fleet.server.url,
          'get_job_instance_list',
          { ...fleet.scope, create_time_start: start, create_time_end: Date.now() + 1000, name },
          fleet.creds,
        );
        assert.equal(r.result, true, r.message);
        return (r.data.data ?? []).map((j) => j.name);
      };
      assert.deepEqual(await find('deploy_web'), ['deploy_web%1']);
      assert.deepEqual(await find('web%'), ['deploy_web%1']);
      assert.deepEqual(await find('y_w'), ['deploy_web%1']);
      assert.deepEqual((await find('deploy')).sort(), [...names].sort());
    });

    test(
      'finding 5: dangerous-command rules match in linear time; the server never stalls',
      // A backtracking engine would take hours here: fail instead of holding the suite.
      { timeout: 60_000 },
      async () => {
        const create = (expression: string) =>
          post<{ id: number }>(
            fleet.server.url,
            'create_dangerous_rule',
            { expression, script_language_list: [1], description: 'nested quantifier', action: 1 },
            fleet.creds,
          );
        const nested = await create('^(a+)+$');
        assert.equal(nested.result, true, nested.message);
        const on = await post(fleet.server.url, 'enable_dangerous_rule', { id: nested.data.id }, fleet.creds);
        assert.equal(on.result, true, on.message);
        // 40 characters: a backtracking engine would need about 2^40 steps; RE2 needs 40.
        const checking = post<{ line: number }[]>(
          fleet.server.url,
          'check_script',
          { script_language: 1, content: b64(`${'a'.repeat(40)}!\n${'a'.repeat(40)}\n`) },
          fleet.creds,
        );
        // Health checks are answered while (and after) the script is checked.
        await new Promise((r) => setTimeout(r, 100));
        assert.equal((await fetch(`${fleet.server.url}/healthz`)).status, 200);
        const check = await checking;
        assert.equal(check.result, true, check.message);
        assert.deepEqual(
          check.data.map((m) => m.line),
          [2],
        );
        const backref = await create('(a)\\1');
        assert.equal(backref.code, 1240003);
        assert.match(backref.message, /linear-time \(RE2\)/);
        const lookahead = await create('rm(?= -rf)');
        assert.equal(lookahead.code, 1240003);
        // A line too long to check within the bound is refused with its own code.
        const huge = await post(
          fleet.server.url,
          'check_script',
          { script_language: 1, content: b64('a'.repeat(1024 * 1024 + 1)) },
          fleet.creds,
        );
        assert.equal(huge.code, 1243903, huge.message);
        const del = await post(
          fleet.server.url,
          'delete_dangerous_rule',
          { id: nested.data.id },
          fleet.creds,
        );
        assert.equal(del.result, true, del.message);
      },
    );
  });
}
