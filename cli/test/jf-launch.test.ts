/**
 * `jf` end to end, second part: following by the event stream (and by polling where a proxy
 * refuses the stream), logs by offset across a server restart, file runs, plans, redo,
 * templates, crons and the script library. Real `jf` processes against a real server with two
 * real agents on loopback, each agent with its own file root.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import {
  ESC,
  RESTART_HEARTBEAT_ENV,
  oneErrorLine,
  post,
  runJf,
  startFleet,
  stopAll,
  tempDir,
} from './helpers/jf-process.js';
import type { Run } from './helpers/jf-process.js';

let fleet: Fleet;
let baseEnv: Record<string, string>;
let proxy: http.Server;
let proxyUrl: string;
let work: string;

function jf(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runJf(baseEnv, args, env);
}

/** A job id printed by --detach. */
async function detached(args: string[]): Promise<string> {
  const r = await jf([...args, '--detach']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\d+\n$/);
  return r.stdout.trim();
}

/** Waits until the job is at `status` (7: waiting for someone). */
async function statusReached(id: string, status: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await jf(['jobs', 'get', id, '-o', 'json']);
    if ((JSON.parse(r.stdout) as { job_instance: { status: number } }).job_instance.status === status) return;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  assert.fail(`job ${id} never reached status ${status}`);
}

/** Bad input, tried at once: each is refused with one line on stderr and its exit code. */
async function refusals(cases: [string[], number, RegExp][]): Promise<void> {
  const runs = await Promise.all(cases.map(([args]) => jf(args)));
  cases.forEach(([, code, pattern], i) => oneErrorLine(runs[i] as Run, code, pattern));
}

const noEscapes = (r: Run) =>
  assert.ok(!r.stdout.includes(ESC) && !r.stderr.includes(ESC), 'no escape codes');

/** The refusal of batch_get_job_instance_ip_log for logs past its reply budget, as the server words it. */
const overBudget = (hosts: number) =>
  JSON.stringify({
    result: false,
    code: 1241007,
    message: `Missing or illegal request parameter [host_id_list]: the logs of these ${hosts} hosts hold more than 256 MiB: ask for fewer hosts at a time, or read each in windows with log_offset and log_length`,
    data: null,
  });
let budgetRefusals = 0;

/**
 * A proxy in front of the server that serves no event stream (an HTML 404, as a web server
 * would) and, like an older server, no output groups; that refuses host logs read more than one
 * host a call, as the server does past its reply budget; everything else passes through.
 */
function startProxy(): Promise<void> {
  proxy = http.createServer((req, res) => {
    if (req.url?.includes('batch_get_job_instance_ip_log')) {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const hosts = (JSON.parse(body) as { host_id_list?: number[] }).host_id_list?.length ?? 0;
        if (hosts > 1) {
          budgetRefusals++;
          res.writeHead(200, { 'content-type': 'application/json' }).end(overBudget(hosts));
          return;
        }
        const up = http.request(
          new URL(req.url ?? '/', fleet.server.url),
          { method: req.method, headers: { ...req.headers, 'content-length': Buffer.byteLength(body) } },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        up.on('error', () => res.destroy());
        up.end(body);
      });
      return;
    }
    if (req.url?.includes('get_job_event_stream')) {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>Not Found</body></html>');
      return;
    }
    if (req.url?.includes('get_step_output_groups')) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ result: false, code: 1240004, message: 'No such path', data: null }));
      return;
    }
    const up = http.request(
      new URL(req.url ?? '/', fleet.server.url),
      { method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) =>
    proxy.listen(0, '127.0.0.1', () => {
      proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
      resolve();
    }),
  );
}

before(async () => {
  // The server restarts while a task runs: the agents get the wider heartbeat window to return.
  fleet = await startFleet('sqlite', 2, { fileRoots: true, env: RESTART_HEARTBEAT_ENV });
  work = tempDir('jf-launch');
  baseEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    XDG_CONFIG_HOME: tempDir('jf-config'),
    JOBFLEET_URL: fleet.server.url,
    JOBFLEET_TOKEN: `${fleet.creds.appCode}:${fleet.creds.appSecret}`,
    JOBFLEET_SCOPE: 'biz:2',
  };
  await startProxy();
});

after(async () => {
  proxy.closeAllConnections();
  proxy.close();
  await stopAll();
});

describe('jf following', () => {
  test('watch -o ndjson streams events with cursors, then one summary', async () => {
    const id = await detached(['run', 'script', '-c', 'echo a; sleep 1; echo b', '-t', '127.0.0.[2-3]']);
    const w = await jf(['watch', id, '-o', 'ndjson']);
    assert.equal(w.code, 0, w.stderr);
    const lines = w.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; id?: number; data: Record<string, unknown> });
    const ids = lines.filter((l) => l.id !== undefined).map((l) => l.id as number);
    assert.ok(ids.length >= 4, w.stdout);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
      'cursors grow',
    );
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    assert.equal(lines[0]?.event, 'job');
    assert.equal(lines[0]?.data.created, true);
    assert.equal(lines.filter((l) => l.event === 'host' && l.data.status === 9).length, 2);
    assert.equal(lines.filter((l) => l.event === 'summary').length, 1);
    const since = ids[2] ?? 0;
    const resumed = await jf(['watch', id, '-o', 'ndjson', '--since', String(since)]);
    const again = resumed.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id?: number }).id)
      .filter((x) => x !== undefined);
    assert.deepEqual(again, ids.slice(3), 'resumes after the cursor, nothing twice');
    const run = await jf(['run', 'script', '-c', 'echo ran', '-t', '127.0.0.2', '-o', 'ndjson']);
    const events = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; id?: number });
    assert.equal(events.at(-1)?.event, 'result');
    assert.ok(
      events.slice(0, -2).every((e) => typeof e.id === 'number'),
      'stream events carry cursors',
    );
    assert.equal(events.at(-2)?.event, 'end');
    await refusals([
      [['watch', id, '--since', 'x'], 2, /cursor "x" is not an event id/],
      [['watch', id, '--token', 'test-app:wrong-secret'], 4, /authentication failed/i],
      [['watch', '999999'], 1, /999999|not exist/i],
    ]);
    assert.deepEqual(lines.at(-1), {
      event: 'summary',
      data: {
        job_instance_id: Number(id),
        status: 3,
        status_name: 'success',
        counts: { ok: 2, failed: 0, running: 0, waiting: 0 },
      },
    });
  });

  test('logs --follow across a server restart prints every line once', async () => {
    const id = await detached([
      'run',
      'script',
      '-c',
      'for i in 1 2 3 4 5 6; do echo "n $i"; sleep 0.7; done',
      '-t',
      '127.0.0.2',
    ]);
    const following = jf(['logs', id, '--follow']);
    await new Promise((r) => setTimeout(r, 1500));
    await fleet.server.kill();
    fleet.server = await fleet.server.restart();
    const r = await following;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [1, 2, 3, 4, 5, 6].map((i) => `127.0.0.2: n ${i}\n`).join(''));
    const tail = await jf(['logs', id, '--follow', '--tail', '2']);
    assert.equal(tail.stdout, '127.0.0.2: n 5\n127.0.0.2: n 6\n');
  });

  test('where no stream is served, run, watch and logs --follow poll; result gathers on the client with the same normalisers', async () => {
    const via = ['--server', proxyUrl];
    const script = 'echo "host $TEST_AGENT_IP pid $$"; sleep 1; echo done';
    const run = await jf(['run', 'script', '-c', script, '-t', '127.0.0.[2-3]', ...via]);
    assert.equal(run.code, 0, run.stderr);
    noEscapes(run);
    assert.equal(run.stdout.match(/^127\.0\.0\.\d \(1\)$/gm)?.length, 2, run.stdout);
    const id = /^job (\d+) success/m.exec(run.stderr)?.[1] ?? '';
    const normalised = ['result', id, '--normalise', 'host,numbers'];
    for (const server of [[], via]) {
      const r = await jf([...normalised, ...server]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^-+\n127\.0\.0\.\[2-3\] \(2\)\n-+\nhost 127\.0\.0\.\d pid \d+\ndone\n$/);
    }
    oneErrorLine(await jf(['result', id, '--normalise', 'pids']), 2, /--normalise pids: choose from host/);

    const slow = await detached(['run', 'script', '-c', 'echo one; sleep 1.5; echo two', '-t', '127.0.0.3']);
    const [watch, logs] = await Promise.all([
      jf(['watch', slow, ...via]),
      jf(['logs', slow, '--follow', ...via]),
    ]);
    assert.equal(watch.code, 0, watch.stderr);
    assert.match(watch.stdout, new RegExp(`^job ${slow} success: 1 ok, 0 failed`));
    assert.equal(logs.stdout, '127.0.0.3: one\n127.0.0.3: two\n');

    // Logs the server finds too large for one reply are read in smaller batches.
    const refusedBefore = budgetRefusals;
    const plain = await jf(['logs', id, ...via]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(
      plain.stdout
        .split('\n')
        .sort()
        .map((l) => l.replace(/pid \d+/, 'pid N')),
      [
        '',
        '127.0.0.2: done',
        '127.0.0.2: host 127.0.0.2 pid N',
        '127.0.0.3: done',
        '127.0.0.3: host 127.0.0.3 pid N',
      ],
    );
    const outdir = path.join(work, 'halved');
    const saved = await jf(['result', id, '--outdir', outdir, ...via]);
    assert.equal(saved.code, 0, saved.stderr);
    assert.match(
      fs.readFileSync(path.join(outdir, '127.0.0.3'), 'utf8'),
      /^host 127\.0\.0\.3 pid \d+\ndone\n$/,
    );
    assert.ok(budgetRefusals > refusedBefore + 1, `${budgetRefusals - refusedBefore} refusals`);
  });
});

describe('jf run file, run plan, redo', () => {
  test('run file: local files are uploaded, HOST:/path files come from that host', async () => {
    const root = (ip: string) => fleet.fileRoots.get(ip) ?? '';
    fs.writeFileSync(path.join(work, 'a.txt'), 'alpha\n');
    fs.writeFileSync(path.join(work, 'b.txt'), 'beta\n');
    const local = await jf([
      'run',
      'file',
      path.join(work, 'a.txt'),
      path.join(work, 'b.txt'),
      '--to',
      '/dest/',
      '-t',
      '127.0.0.[2-3]',
      '-o',
      'json',
    ]);
    assert.equal(local.code, 0, local.stderr);
    const doc = JSON.parse(local.stdout) as { job_instance_id: number; status: number };
    assert.equal(doc.status, 3);
    for (const ip of ['127.0.0.2', '127.0.0.3']) {
      assert.equal(fs.readFileSync(path.join(root(ip), 'dest', 'a.txt'), 'utf8'), 'alpha\n');
      assert.equal(fs.readFileSync(path.join(root(ip), 'dest', 'b.txt'), 'utf8'), 'beta\n');
    }

    fs.mkdirSync(path.join(root('127.0.0.2'), 'src'), { recursive: true });
    fs.writeFileSync(path.join(root('127.0.0.2'), 'src', 'c.txt'), 'gamma\n');
    const remote = await jf(['run', 'file', '127.0.0.2:/src/c.txt', '--to', '/dest2/', '-t', '127.0.0.3']);
    assert.equal(remote.code, 0, remote.stderr);
    noEscapes(remote);
    assert.match(remote.stderr, /^job \d+ success: 1 ok, 0 failed/m);
    assert.equal(fs.readFileSync(path.join(root('127.0.0.3'), 'dest2', 'c.txt'), 'utf8'), 'gamma\n');
    assert.match(remote.stdout, /^127\.0\.0\.3 \(1\)\n-+\n\/dest2\/c\.txt 6\.0 Bytes download success\n$/m);
    const remoteJob = /^job (\d+) success/m.exec(remote.stderr)?.[1] ?? '';
    const logs = await jf(['logs', remoteJob, '--follow']);
    assert.equal(logs.stdout, '127.0.0.3: /dest2/c.txt 6.0 Bytes download success\n');

    // redo sends the same files again, from the server's copy of the upload.
    fs.rmSync(path.join(root('127.0.0.2'), 'dest'), { recursive: true });
    const redo = await jf(['redo', String(doc.job_instance_id), '-q']);
    assert.equal(redo.code, 0, redo.stderr);
    assert.equal(fs.readFileSync(path.join(root('127.0.0.2'), 'dest', 'b.txt'), 'utf8'), 'beta\n');

    await refusals([
      [
        ['run', 'file', path.join(work, 'nope.txt'), '--to', '/d/', '-t', '127.0.0.2'],
        2,
        /no local file .*nope\.txt \(a file on a host is HOST:\/path\)/,
      ],
      [
        ['run', 'file', path.join(work, 'a.txt'), '--to', 'dest', '-t', '127.0.0.2'],
        2,
        /--to dest: give an absolute directory/,
      ],
      [
        ['run', 'file', path.join(work, 'a.txt'), '-t', '127.0.0.2'],
        2,
        /^jf: error: required option '--to <dir>' not specified \(add --help for usage\)$/m,
      ],
      [['run', 'file', 'web01:/etc/hosts', '--to', '/d/', '-t', '127.0.0.2'], 2, /web01.*not a host id, ip/],
    ]);
  });

  test('templates apply/ls/show/export, plans ls/show, run plan --var and redo', async () => {
    const file = path.join(work, 'greet.yaml');
    fs.writeFileSync(
      file,
      `bk_scope_type: biz
bk_scope_id: "2"
name: greet
description: say hello
global_var_list:
  - {name: greeting, type: 1, description: "", required: 1, value: hello}
step_list:
  - name: say
    type: 1
    script_info:
      script_content: |
        echo "$greeting from $TEST_AGENT_IP"
      script_language: 1
      account: {alias: ${fleet.account}}
      server: {ip_list: [{bk_cloud_id: 0, ip: 127.0.0.2}]}
plans:
  - name: greet all
    description: ""
    steps: [say]
    global_var_list: []
`,
    );
    const applied = await jf(['templates', 'apply', file, '-o', 'json']);
    assert.equal(applied.code, 0, applied.stderr);
    const { job_template_id: templateId } = JSON.parse(applied.stdout) as { job_template_id: number };
    const [ls, show, exported, plans, planShow, planLs] = await Promise.all([
      jf(['templates', 'ls']),
      jf(['templates', 'show', String(templateId)]),
      jf(['templates', 'export', String(templateId)]),
      jf(['plans', 'ls', '--template', String(templateId), '-o', 'json']),
      jf(['plans', 'show', 'greet all']),
      jf(['plans', 'ls', '--template', String(templateId)]),
    ]);
    assert.match(ls.stdout, new RegExp(`^${templateId} .* greet$`, 'm'));
    // Template and plan times are seconds: read as ms they would show a day of January 1970.
    const stamp = `${new Date().getUTCFullYear()}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d`;
    assert.match(ls.stdout, new RegExp(`^${templateId} +${stamp} `, 'm'));
    assert.match(planLs.stdout, new RegExp(`^\\d+ +${templateId} +${stamp} .* greet all$`, 'm'));
    assert.match(show.stdout, /^template \d+: greet \(say hello\)/);
    assert.match(show.stdout, /^\d+ +script +say$/m);
    assert.match(show.stdout, /^greeting +string +hello$/m);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^name: greet$/m);
    assert.match(exported.stdout, /echo "\$greeting from \$TEST_AGENT_IP"/);

    assert.deepEqual(
      (JSON.parse(plans.stdout) as { name: string }[]).map((p) => p.name),
      ['greet all'],
    );
    assert.match(planShow.stdout, /^plan \d+: greet all/);

    const run = await jf(['run', 'plan', 'greet all', '--var', 'greeting=hi']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '---------------\n127.0.0.2 (1)\n---------------\nhi from 127.0.0.2\n');
    const planJob = /^job (\d+) success/m.exec(run.stderr)?.[1] ?? '';
    const again = await jf(['redo', planJob, '--var', 'greeting=again', '-o', 'json']);
    assert.equal(again.code, 0, again.stderr);
    const redone = JSON.parse(again.stdout) as {
      job_instance_id: number;
      steps: { groups: { output: string }[] }[];
    };
    assert.notEqual(redone.job_instance_id, Number(planJob));
    assert.equal(redone.steps[0]?.groups[0]?.output, 'again from 127.0.0.2\n');
    const valueFile = path.join(work, 'greeting.txt');
    fs.writeFileSync(valueFile, 'off the command line\n');
    const fromFile = await jf(['plans', 'launch', 'greet all', '--var-file', `greeting=${valueFile}`]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /^off the command line from 127\.0\.0\.2$/m);

    const scriptJob = await detached([
      'run',
      'script',
      '-c',
      'echo "redo me $1"',
      '-p',
      'please',
      '-t',
      '127.0.0.3',
    ]);
    const redo = await jf(['redo', scriptJob]);
    assert.equal(redo.code, 0, redo.stderr);
    assert.match(redo.stdout, /^127\.0\.0\.3 \(1\)\n-+\nredo me please$/m);

    // 1,000 more plans whose names hold "greet all", newer: the plan named so is one past the
    // first page of 1,000 of every list and lookup by name.
    for (let i = 0; i < 1000; i += 25)
      await Promise.all(
        Array.from({ length: 25 }, async (_, k) => {
          const r = await post(
            fleet.server.url,
            'create_job_plan',
            { ...fleet.scope, job_template_id: templateId, name: `greet all ${i + k}` },
            fleet.creds,
          );
          assert.equal(r.result, true, r.message);
        }),
      );
    const [many, byName] = await Promise.all([
      jf(['plans', 'ls', '--template', String(templateId), '-o', 'json']),
      jf(['plans', 'launch', 'greet all', '--var', 'greeting=page two']),
    ]);
    assert.equal((JSON.parse(many.stdout) as unknown[]).length, 1001);
    assert.match(byName.stdout, /^page two from 127\.0\.0\.2$/m);

    await refusals([
      [['run', 'plan', 'no such plan'], 1, /no plan named "no such plan"/],
      [['run', 'plan', 'greet all', '--var', 'greeting'], 2, /--var greeting: give NAME=VALUE/],
      [['run', 'plan', 'greet all', '--var-file', 'greeting'], 2, /--var-file greeting: give NAME=FILE/],
      [
        ['crons', 'save', '--id', '1', '--var-file', 'greeting=/nonexistent/v'],
        2,
        /cannot read \/nonexistent\/v/,
      ],
      [['redo', scriptJob, '--var', 'a=b'], 2, /not a plan's job/],
      [['redo', '999999'], 1, /999999|not exist/i],
      [['templates', 'apply', path.join(work, 'missing.yaml')], 2, /cannot read/],
    ]);
  });

  test('confirm continues or refuses a confirmation step, with its reason, and starts the next batch of a rolling step', async () => {
    const file = path.join(work, 'gated.yaml');
    fs.writeFileSync(
      file,
      `bk_scope_type: biz
bk_scope_id: "2"
name: gated
description: ""
global_var_list: []
step_list:
  - name: first
    type: 1
    script_info:
      script_content: |
        echo "first 1"; echo "first 2"
      script_language: 1
      account: {alias: ${fleet.account}}
      server: {ip_list: [{bk_cloud_id: 0, ip: 127.0.0.2}]}
  - name: approve
    type: 3
    approval_info: {approval_user: {user_list: [${fleet.creds.appCode}]}, approval_message: go on?}
  - name: second
    type: 1
    script_info:
      script_content: |
        echo "second a"; echo "second b"
      script_language: 1
      account: {alias: ${fleet.account}}
      server: {ip_list: [{bk_cloud_id: 0, ip: 127.0.0.2}]}
plans:
  - {name: gated, description: "", steps: [first, approve, second], global_var_list: []}
  - {name: two steps, description: "", steps: [first, second], global_var_list: []}
`,
    );
    const applied = await jf(['templates', 'apply', file]);
    assert.equal(applied.code, 0, applied.stderr);
    const waiting = async (args: string[]) => {
      const id = await detached(args);
      await statusReached(id, 7);
      return id;
    };

    const confirmed = await waiting(['run', 'plan', 'gated']);
    const yes = await jf(['confirm', confirmed, '--reason', 'canary looks fine']);
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /^job \d+ step \d+: confirmed\n$/);
    const done = await jf(['watch', confirmed, '--maxrc']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    /** get_step_instance_detail, through `jf api`, of the job's step of `type` (the first, without). */
    const stepDetail = async <T>(id: string, type?: number): Promise<T> => {
      const st = JSON.parse((await jf(['jobs', 'get', id, '-o', 'json'])).stdout) as {
        step_instance_list: { step_instance_id: number; type: number }[];
      };
      const step = st.step_instance_list.find((x) => type === undefined || x.type === type);
      const detail = await jf([
        'api',
        'POST',
        '/api/v3/get_step_instance_detail',
        '-d',
        JSON.stringify({
          bk_scope_type: 'biz',
          bk_scope_id: '2',
          job_instance_id: Number(id),
          step_instance_id: step?.step_instance_id,
        }),
      ]);
      return (JSON.parse(detail.stdout) as { data: T }).data;
    };
    const kept = await stepDetail<{
      approval_info: { confirmation_list: { action: string; reason: string }[] };
    }>(confirmed, 3);
    assert.deepEqual(
      kept.approval_info.confirmation_list.map((c) => [c.action, c.reason]),
      [['continue', 'canary looks fine']],
    );

    const refused = await waiting(['run', 'plan', 'gated']);
    const no = await jf(['confirm', refused, '--refuse', '--reason', 'error rate is up']);
    assert.equal(no.code, 0, no.stderr);
    assert.match(no.stdout, /^job \d+ step \d+: refused\n$/);
    // Every host that ran exited 0, yet the job did not succeed: --maxrc says so too.
    const [plain, maxrc] = await Promise.all([jf(['watch', refused]), jf(['result', refused, '--maxrc'])]);
    assert.deepEqual([plain.code, maxrc.code], [3, 3], plain.stdout + maxrc.stderr);

    const rolling = await waiting([
      'run',
      'script',
      '-c',
      'echo batch',
      '-t',
      '127.0.0.[2-3]',
      '--rolling',
      '1',
      '--rolling-mode',
      'confirm',
    ]);
    oneErrorLine(await jf(['confirm', rolling, '--refuse']), 2, /rolling step waiting between batches/);
    const next = await jf(['confirm', rolling]);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, /next batch started/);
    const rolled = await jf(['watch', rolling]);
    assert.equal(rolled.code, 0, rolled.stdout + rolled.stderr);

    // redo rolls as the job did (one host a batch, a confirmation between), unless told otherwise.
    const rollingOf = async (id: string) =>
      (await stepDetail<{ rolling_config: unknown }>(id)).rolling_config;
    const expected = { type: 1, mode: 3, execution_mode: 1, expression: '1' };
    assert.deepEqual(await rollingOf(rolling), expected);
    const redone = await detached(['redo', rolling]);
    assert.deepEqual(await rollingOf(redone), expected);
    await statusReached(redone, 7);
    assert.equal((await jf(['confirm', redone])).code, 0);
    assert.equal((await jf(['watch', redone])).code, 0);
    const once = await jf(['redo', redone, '--rolling', '2', '-o', 'json']);
    assert.equal(once.code, 0, once.stderr);
    const onceId = String((JSON.parse(once.stdout) as { job_instance_id: number }).job_instance_id);
    assert.deepEqual(await rollingOf(onceId), { ...expected, mode: 1, expression: '2' });

    // logs -f --tail N of a job whose last step is over: that step's last lines, not the whole
    // output of the steps before it.
    const two = await jf(['run', 'plan', 'two steps', '-o', 'json']);
    assert.equal(two.code, 0, two.stderr);
    const twoId = String((JSON.parse(two.stdout) as { job_instance_id: number }).job_instance_id);
    for (const server of [[], ['--server', proxyUrl]]) {
      const tail = await jf(['logs', twoId, '-f', '--tail', '1', ...server]);
      assert.equal(tail.stdout, '127.0.0.2: second b\n', tail.stderr);
    }
  });

  test('crons save, ls, show, enable, disable, delete', async () => {
    const saved = await jf([
      'crons',
      'save',
      '--plan',
      'greet all',
      '--name',
      'nightly greet',
      '--cron',
      '0 2 * * *',
      '--tz',
      'UTC',
      '--var',
      'greeting=night',
      '-o',
      'json',
    ]);
    assert.equal(saved.code, 0, saved.stderr);
    const { id } = JSON.parse(saved.stdout) as { id: number };
    assert.equal((await jf(['crons', 'enable', String(id)])).stdout, `cron ${id} enabled\n`);
    const detail = await jf(['crons', 'show', String(id), '-o', 'json']);
    const d = JSON.parse(detail.stdout) as { status: number; next_run_times: number[] };
    assert.equal(d.status, 1);
    assert.equal(d.next_run_times.length, 5);
    assert.ok(d.next_run_times.every((t) => new Date(t * 1000).getUTCHours() === 2));
    const human = await jf(['crons', 'show', String(id)]);
    assert.match(
      human.stdout,
      /^cron \d+: nightly greet \(enabled\), plan \d+\nschedule: 0 2 \* \* \* UTC\nnext: /,
    );
    const ls = await jf(['crons', 'ls', '--status', 'enabled']);
    assert.match(ls.stdout, new RegExp(`^${id} +enabled +\\d+ +0 2 \\* \\* \\* +nightly greet$`, 'm'));
    assert.equal((await jf(['crons', 'disable', String(id)])).code, 0);
    assert.equal((await jf(['crons', 'ls', '--status', 'enabled', '-o', 'json'])).stdout, '[]\n');
    assert.equal((await jf(['crons', 'delete', String(id)])).stdout, `cron ${id} deleted\n`);
    await refusals([
      [['crons', 'show', String(id)], 1, /cron|not exist/i],
      [['crons', 'save', '--name', 'x'], 2, /a new cron needs --plan, --name and --cron or --at/],
      [
        ['crons', 'save', '--plan', 'greet all', '--name', 'x', '--at', 'tomorrow'],
        2,
        /--at tomorrow: not a time/,
      ],
      [['crons', 'save', '--plan', 'greet all', '--name', 'x', '--cron', '0 2 * * ?'], 1, /expression|\?/],
    ]);
  });

  test('scripts push, publish and diff round-trip local files', async () => {
    const v1 = path.join(work, 'check.sh');
    fs.writeFileSync(v1, 'echo one\necho two\n');
    const push = (version: string, ...more: string[]) =>
      jf(['scripts', 'push', v1, '--name', 'check', '--script-version', version, ...more]);
    const pushed = await push('v1', '--publish');
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /^script \S+ version v1 \(\d+\) online$/m);
    fs.writeFileSync(v1, 'echo one\necho three\n');
    const draft = await push('v2', '-o', 'json');
    assert.equal((JSON.parse(draft.stdout) as { published: boolean }).published, false);

    const diff = await jf(['scripts', 'diff', 'check', 'v1', 'v2']);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(
      diff.stdout,
      /^--- check@v1\n\+\+\+ check@v2\n@@ -1,2 \+1,2 @@\n echo one\n-echo two\n\+echo three\n$/,
    );
    const local = await jf(['scripts', 'diff', 'check', v1]);
    assert.equal(local.code, 1);
    assert.match(local.stdout, /^--- check@v1\n\+\+\+ .*check\.sh\n/);
    const published = await jf(['scripts', 'publish', 'check', 'v2']);
    assert.equal(published.stdout, 'script check version v2 is online\n');
    const same = await jf(['scripts', 'diff', 'check', v1, '-o', 'json']);
    assert.equal(same.code, 0, same.stderr);
    assert.equal((JSON.parse(same.stdout) as { identical: boolean }).identical, true);

    await refusals([
      [['scripts', 'publish', 'check', 'v9'], 1, /script check has no version "v9"/],
      [
        ['scripts', 'push', path.join(work, 'none.sh'), '--name', 'x', '--script-version', 'v1'],
        2,
        /cannot read/,
      ],
    ]);

    // A file in another encoding (GBK's "你好"): it runs as its bytes; the library, which holds
    // UTF-8 text only, refuses it rather than storing it with its bytes replaced.
    const gbk = path.join(work, 'gbk.sh');
    fs.writeFileSync(
      gbk,
      Buffer.concat([
        Buffer.from("s='"),
        Buffer.from([0xc4, 0xe3, 0xba, 0xc3]),
        Buffer.from('\'; printf %s "$s" | od -An -tx1\n'),
      ]),
    );
    const ran = await jf(['run', 'script', '-f', gbk, '-t', '127.0.0.2']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^ c4 e3 ba c3$/m);
    const pushedGbk = await jf(['scripts', 'push', gbk, '--name', 'gbk', '--script-version', 'v1']);
    assert.equal(pushedGbk.code, 1, pushedGbk.stdout);
    assert.match(pushedGbk.stderr, /does not decode to UTF-8 text/);
  });
});
