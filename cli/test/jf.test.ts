/**
 * `jf` end to end: real `jf` processes (stdout and stderr piped, as in a script) against a real
 * server with two real agents on loopback, and 60 simulated hosts (the bench's fleet simulator,
 * running real scripts) for gathering.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import {
  ESC,
  JOBFLEET,
  REPO,
  RESTART_HEARTBEAT_ENV,
  admin,
  oneErrorLine,
  runJf,
  startFleet,
  stopAll,
  tempDir,
} from './helpers/jf-process.js';
import type { Run, RunOptions } from './helpers/jf-process.js';

const SIMULATOR = path.join(REPO, 'bench', 'dist', 'src', 'fleet-simulator.js');

let fleet: Fleet;
let configHome: string;
let baseEnv: Record<string, string>;

function jf(args: string[], env: Record<string, string> = {}, opts: RunOptions = {}): Promise<Run> {
  return runJf(baseEnv, args, env, opts);
}

interface FakeServer {
  url: string;
  /** Resolves at the next request it receives. */
  nextRequest: () => Promise<void>;
  close: () => void;
}

/**
 * A server that is not a Jobfleet server: `routes` answer by path; any other request is held
 * unanswered, as a stalled server holds it.
 */
function fakeServer(routes: Record<string, (res: http.ServerResponse) => void>): Promise<FakeServer> {
  let waiting: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    for (const w of waiting.splice(0)) w();
    const route = routes[(req.url ?? '').split('?')[0] ?? ''];
    if (route) req.resume().on('end', () => route(res));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        nextRequest: () => new Promise((r) => waiting.push(r)),
        close: () => {
          waiting = [];
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

before(async () => {
  fleet = await startFleet('sqlite', 2, { env: RESTART_HEARTBEAT_ENV });
  configHome = tempDir('jf-config');
  baseEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    XDG_CONFIG_HOME: configHome,
    JOBFLEET_URL: fleet.server.url,
    JOBFLEET_TOKEN: `${fleet.creds.appCode}:${fleet.creds.appSecret}`,
    JOBFLEET_SCOPE: 'biz:2',
  };
});

after(() => stopAll());

describe('jf', () => {
  test('--version and usage errors', async () => {
    const v = await jf(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout.trim(), '0.1.0');
    const bad = await jf(['run', 'script', '-c', 'true', '-t', '127.0.0.2', '--no-such-flag']);
    oneErrorLine(bad, 2, /^jf: error: unknown option '--no-such-flag' \(add --help for usage\)$/m);
    const two = await jf(['run', 'script', '-c', 'true', '-f', 'x.sh', '-t', '127.0.0.2']);
    oneErrorLine(two, 2, /exactly one of -c CMD, -f FILE or --script/);
    const fmt = await jf(['jobs', 'ls', '-o', 'xml']);
    oneErrorLine(fmt, 2, /-o xml: choose one of human, json, ndjson, yaml/);
  });

  test('login writes a 0600 profile that later commands use; doctor checks it', async () => {
    const env = { JOBFLEET_URL: '', JOBFLEET_TOKEN: '', JOBFLEET_SCOPE: '' };
    const login = await jf(
      [
        'login',
        '--server',
        fleet.server.url,
        '--token',
        `${fleet.creds.appCode}:${fleet.creds.appSecret}`,
        '--scope',
        'biz:2',
      ],
      env,
    );
    assert.equal(login.code, 0, login.stderr);
    const file = path.join(configHome, 'jobfleet', 'config.yaml');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const doctor = await jf(['doctor'], env);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /ok +server/);
    assert.match(doctor.stdout, /ok +auth/);
    assert.match(doctor.stdout, /ok +scope +biz:2/);
    assert.match(doctor.stdout, /ok +clock/);
    const json = await jf(['doctor', '-o', 'json'], env);
    assert.equal((JSON.parse(json.stdout) as unknown[]).length, 4);
    // Flags override the profile: a wrong secret is an auth failure (4), with one line.
    const wrong = await jf(['jobs', 'ls', '--token', `${fleet.creds.appCode}:wrong-secret`], env);
    oneErrorLine(wrong, 4, /authentication failed/i);
    const doctorWrong = await jf(['doctor', '--token', `${fleet.creds.appCode}:wrong-secret`], env);
    assert.equal(doctorWrong.code, 4);
    assert.match(doctorWrong.stdout, /FAIL auth/);
    const unreachable = await jf(['jobs', 'ls', '--server', 'http://127.0.0.1:1'], env);
    oneErrorLine(unreachable, 1, /cannot reach http:\/\/127\.0\.0\.1:1/);
  });

  test('run script follows the job and prints gathered output with no escape codes when piped', async () => {
    const same = await jf(['run', 'script', '-c', 'echo same output', '-t', '127.0.0.[2-3]']);
    assert.equal(same.code, 0, same.stderr);
    assert.ok(!same.stdout.includes(ESC) && !same.stderr.includes(ESC), 'no escape codes');
    assert.match(same.stdout, /^-+\n127\.0\.0\.\[2-3\] \(2\)\n-+\nsame output\n$/);
    assert.match(same.stderr, /^job \d+ success: 2 ok, 0 failed/m);

    const each = await jf([
      'run',
      'script',
      '-c',
      'echo "I am $TEST_AGENT_IP"',
      '-t',
      `${fleet.hostIds.get('127.0.0.2')},${fleet.hostIds.get('127.0.0.3')}`,
      '-o',
      'json',
    ]);
    assert.equal(each.code, 0, each.stderr);
    const doc = JSON.parse(each.stdout) as {
      status: number;
      steps: { groups: { folded: string; output: string; count: number }[] }[];
    };
    assert.equal(doc.status, 3);
    assert.deepEqual(doc.steps[0]?.groups.map((g) => [g.folded, g.output]).sort(), [
      ['127.0.0.2', 'I am 127.0.0.2\n'],
      ['127.0.0.3', 'I am 127.0.0.3\n'],
    ]);
  });

  test('failed hosts exit 1, --maxrc the largest host exit code', async () => {
    const script = 'if [ "$TEST_AGENT_IP" = 127.0.0.2 ]; then echo bad; exit 7; fi; echo good';
    const failed = await jf(['run', 'script', '-c', script, '-t', '127.0.0.[2-3]']);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /127\.0\.0\.2 \(1\) exit 7, non-zero exit\n-+\nbad/);
    assert.match(failed.stdout, /127\.0\.0\.3 \(1\)\n-+\ngood/);
    const maxrc = await jf(['run', 'script', '-c', script, '-t', '127.0.0.[2-3]', '--maxrc', '-q']);
    assert.equal(maxrc.code, 7);
    assert.equal(maxrc.stderr, '');
  });

  test('an output longer than a group shows is marked as cut; logs prints all of it', async () => {
    const run = await jf(['run', 'script', '-c', 'yes abcdefghi | head -n 30000', '-t', '127.0.0.2']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout.slice(-300),
      /abcd\n\[the output goes on past its first 256 KiB: jf logs shows all of it\]\n$/,
    );
    const id = /^job (\d+) success/m.exec(run.stderr)?.[1] ?? '';
    const logs = await jf(['logs', id]);
    assert.equal(logs.stdout.split('\n').filter((l) => l === '127.0.0.2: abcdefghi').length, 30000);
  });

  test('detach, then watch, result, logs, hosts and jobs on the same job', async () => {
    const started = await jf([
      'run',
      'script',
      '-c',
      'for i in 1 2 3; do echo "line $i"; done',
      '-t',
      '127.0.0.[2-3]',
      '--detach',
    ]);
    assert.equal(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    assert.match(id, /^\d+$/);
    const watch = await jf(['watch', id]);
    assert.equal(watch.code, 0, watch.stderr);
    assert.match(watch.stdout, new RegExp(`^job ${id} success: 2 ok, 0 failed`));
    assert.ok(!watch.stderr.includes(ESC));

    const result = await jf(['result', id, '-o', 'yaml']);
    assert.match(result.stdout, /folded: 127\.0\.0\.\[2-3\]/);

    const logs = await jf(['logs', id]);
    assert.equal(logs.code, 0);
    assert.deepEqual(logs.stdout.trim().split('\n').sort(), [
      '127.0.0.2: line 1',
      '127.0.0.2: line 2',
      '127.0.0.2: line 3',
      '127.0.0.3: line 1',
      '127.0.0.3: line 2',
      '127.0.0.3: line 3',
    ]);
    const tail = await jf(['logs', id, '-H', '127.0.0.3', '--tail', '1']);
    assert.equal(tail.stdout, '127.0.0.3: line 3\n');
    const ndjson = await jf(['logs', id, '-H', '127.0.0.2', '-o', 'ndjson']);
    assert.deepEqual(JSON.parse(ndjson.stdout.split('\n')[0] ?? ''), { host: '127.0.0.2', line: 'line 1' });

    const hosts = await jf(['hosts', id, '--format', 'folded']);
    assert.equal(hosts.stdout, '127.0.0.[2-3]\n');

    const ls = await jf(['jobs', 'ls', '-o', 'json']);
    const jobs = JSON.parse(ls.stdout) as { job_instance_id: number }[];
    assert.ok(jobs.some((j) => j.job_instance_id === Number(id)));
    const table = await jf(['jobs', 'ls']);
    assert.match(table.stdout, /^ID +STATUS +OPERATOR/);
    // The documented maximum: 30 days, the longest window the server accepts.
    const month = await jf(['jobs', 'ls', '--since', '720', '-o', 'json']);
    assert.equal(month.code, 0, month.stderr);
    assert.ok(
      (JSON.parse(month.stdout) as { job_instance_id: number }[]).some(
        (j) => j.job_instance_id === Number(id),
      ),
    );
  });

  test('logs --follow prints a running job line by line until it ends', async () => {
    const started = await jf(['run', 'script', '-c', 'echo one; sleep 2; echo two', '-t', '127.0.0.2', '-d']);
    const follow = await jf(['logs', started.stdout.trim(), '--follow']);
    assert.equal(follow.code, 0, follow.stderr);
    assert.equal(follow.stdout, '127.0.0.2: one\n127.0.0.2: two\n');
  });

  test('terminate: the job ends terminated and watch exits 3', async () => {
    const started = await jf(['run', 'script', '-c', 'sleep 60', '-t', '127.0.0.2', '-d']);
    const id = started.stdout.trim();
    // The host must be running before a terminate reaches it.
    for (let i = 0; i < 50; i++) {
      const st = await jf(['jobs', 'get', id, '-o', 'json']);
      if ((JSON.parse(st.stdout) as { job_instance: { status: number } }).job_instance.status === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const term = await jf(['terminate', id]);
    assert.equal(term.code, 0, term.stderr);
    const watch = await jf(['watch', id]);
    assert.equal(watch.code, 3, watch.stdout + watch.stderr);
  });

  test('unknown jobs, bad targets and --wait-timeout give their exit codes', async () => {
    oneErrorLine(await jf(['result', '999999']), 1, /999999|not exist/i);
    oneErrorLine(await jf(['watch', 'abc']), 2, /job id "abc" is not a positive integer/);
    oneErrorLine(await jf(['run', 'script', '-c', 'true', '-t', '10.0.1.[1-']), 2, /unbalanced bracket/);
    oneErrorLine(await jf(['run', 'script', '-c', 'true', '-t', 'web01']), 2, /not a host id, ip/);
    const slow = await jf(['run', 'script', '-c', 'sleep 30', '-t', '127.0.0.3', '--wait-timeout', '1']);
    oneErrorLine(slow, 5, /still running after the wait timeout/);
  });

  test('rules test, api and completion', async () => {
    const dir = tempDir('jf-rules');
    const script = path.join(dir, 'a.sh');
    fs.writeFileSync(script, 'echo hello\n');
    const clean = await jf(['rules', 'test', script]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(clean.stdout, 'no rule hit\n');
    const api = await jf(['api', 'POST', '/api/v3/get_latest_service_version', '-d', '{}']);
    assert.equal(api.code, 0);
    assert.equal((JSON.parse(api.stdout) as { result: boolean }).result, true);
    for (const shell of ['bash', 'zsh', 'fish']) {
      const c = await jf(['completion', shell]);
      assert.equal(c.code, 0);
      assert.match(c.stdout, shell === 'fish' ? /complete -c jf .*-a 'run'/ : /complete -F _jf_complete jf/);
    }
  });

  test('gather on 60 hosts with 3 distinct outputs prints 3 groups with folded ranges', async () => {
    const sim = spawn(
      process.execPath,
      [
        SIMULATOR,
        '--server',
        fleet.server.url,
        '--token',
        fleet.server.bootstrapToken,
        '--agents',
        '60',
        '--biz',
        '2',
        '--state-root',
        tempDir('jf-sim'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        sim.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('"event":"ready"')) resolve();
        });
        sim.on('exit', (code) => reject(new Error(`simulator exited ${code}`)));
      });
      const hosts = await admin<{ hosts: { bk_host_id: number; ip: string }[] }>(
        fleet.server.url,
        fleet.server.adminToken,
        'GET',
        '/hosts?bk_biz_id=2',
      );
      // Each simulated host reads its output from a file named after its host id (the script's
      // working directory carries the id): 10.0.0.1-30 "alpha", 31-50 "beta", 51-60 "gamma" exit 3.
      const outputs = tempDir('jf-outputs');
      for (const h of hosts.data.hosts) {
        const m = /^10\.0\.0\.(\d+)$/.exec(h.ip);
        if (!m) continue;
        const n = Number(m[1]);
        fs.writeFileSync(
          path.join(outputs, String(h.bk_host_id)),
          n <= 30 ? 'alpha' : n <= 50 ? 'beta' : 'gamma',
        );
      }
      const script = `id=$(basename "$PWD" | cut -d_ -f3 | cut -d- -f1); v=$(cat ${outputs}/$id); echo "$v"; [ "$v" = gamma ] && exit 3; exit 0`;
      const r = await jf(['run', 'script', '-c', script, '-t', '10.0.0.[1-60]']);
      assert.equal(r.code, 1, r.stderr + r.stdout.slice(0, 2000));
      const headers = r.stdout.split('\n').filter((l) => /^\S+ \(\d+\)/.test(l));
      if (headers.length !== 3) assert.fail(r.stdout.slice(0, 3000));
      assert.deepEqual(headers, [
        '10.0.0.[1-30] (30)',
        '10.0.0.[31-50] (20)',
        '10.0.0.[51-60] (10) exit 3, non-zero exit',
      ]);
      assert.equal(r.stdout.split('\n').filter((l) => l === 'alpha').length, 1);
      const maxrc = await jf(['run', 'script', '-c', script, '-t', '10.0.0.[1-60]', '--maxrc', '-o', 'json']);
      assert.equal(maxrc.code, 3);
      const doc = JSON.parse(maxrc.stdout) as {
        job_instance_id: number;
        steps: { groups: { count: number }[] }[];
      };
      assert.deepEqual(
        doc.steps[0]?.groups.map((g) => g.count),
        [30, 20, 10],
      );
      const diff = await jf(['result', String(doc.job_instance_id), '--diff']);
      assert.equal(diff.code, 1, diff.stderr);
      assert.match(
        diff.stdout,
        /^--- 10\.0\.0\.\[1-30\]\t\(30\)\n\+\+\+ 10\.0\.0\.\[31-50\]\t\(20\)\n@@ -1,1 \+1,1 @@\n-alpha\n\+beta\n/m,
      );
      assert.match(diff.stdout, /^\+\+\+ 10\.0\.0\.\[51-60\]\t\(10\)\n@@ -1,1 \+1,1 @@\n-alpha\n\+gamma\n/m);
    } finally {
      sim.kill('SIGTERM');
    }
  });

  test('a watch that loses the server mid-job resumes and prints the final summary once', async () => {
    const started = await jf(['run', 'script', '-c', 'sleep 6; echo finished', '-t', '127.0.0.2', '-d']);
    const id = started.stdout.trim();
    const watching = jf(['watch', id]);
    await new Promise((r) => setTimeout(r, 1500));
    await fleet.server.kill();
    fleet.server = await fleet.server.restart();
    const watch = await watching;
    assert.equal(watch.code, 0, watch.stdout + watch.stderr);
    assert.equal(watch.stdout.match(/^job \d+ success/gm)?.length, 1, watch.stdout);
    const logs = await jf(['logs', id]);
    assert.equal(logs.stdout, '127.0.0.2: finished\n');
  });

  test('a personal API token is sent as a bearer token; a viewer may not run (exit 4)', async () => {
    const tokenOf = async (name: string, role: string): Promise<string> => {
      const adm = (method: string, p: string, body: unknown) =>
        admin(fleet.server.url, fleet.server.adminToken, method as 'POST', p, body);
      assert.ok((await adm('POST', '/users', { name, password: `${name}-password-1` })).result);
      assert.ok(
        (await adm('POST', `/users/${name}/roles`, { roles: [{ scope_type: 'biz', scope_id: 2, role }] }))
          .result,
      );
      const res = await fetch(`${fleet.server.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: name, password: `${name}-password-1` }),
      });
      const session = (await res.json()) as { data: { csrf_token: string } };
      const made = await fetch(`${fleet.server.url}/api/auth/tokens`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          cookie: (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
          'x-csrf-token': session.data.csrf_token,
        },
        body: JSON.stringify({ name: 'cli' }),
      });
      return ((await made.json()) as { data: { token: string } }).data.token;
    };
    const oper = await tokenOf('oper', 'operator');
    const run = await jf(['run', 'script', '-c', 'echo with a token', '-t', '127.0.0.2', '--token', oper]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /with a token/);
    const doctor = await jf(['doctor', '--token', oper]);
    assert.match(doctor.stdout, /ok +auth +personal token/);
    const viewer = await tokenOf('watcher', 'viewer');
    oneErrorLine(
      await jf(['run', 'script', '-c', 'true', '-t', '127.0.0.2', '--token', viewer]),
      4,
      /watcher/,
    );
    assert.equal((await jf(['jobs', 'ls', '--token', viewer])).code, 0);
  });
  test('an option value that looks like an option belongs to the command option it follows', async () => {
    const literal = await jf(['run', 'script', '-c', 'echo "[$*]"', '-p', '-o json', '-t', '127.0.0.2']);
    assert.equal(literal.code, 0, literal.stderr);
    assert.match(literal.stdout, /^\[-o json\]$/m);
    // Not quiet: the summary line is there.
    const quiet = await jf(['run', 'script', '-c', 'echo "[$*]"', '-t', '127.0.0.2', '-p', '-q']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /^\[-q\]$/m);
    assert.match(quiet.stderr, /^job \d+ success/m);
  });

  test('secrets come from standard input, a file or the environment rather than the command line', async () => {
    const env = {
      JOBFLEET_URL: '',
      JOBFLEET_TOKEN: '',
      JOBFLEET_SCOPE: '',
      XDG_CONFIG_HOME: tempDir('jf-secrets'),
    };
    const url = fleet.server.url;
    const secret = `${fleet.creds.appCode}:${fleet.creds.appSecret}`;
    const login = ['login', '--server', url, '--scope', 'biz:2'];
    const piped = await jf([...login, '--token-stdin'], env, { input: `${secret}\nnot this line\n` });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal((await jf(['jobs', 'ls'], env)).code, 0);
    const fromEnv = await jf([...login, '--name', 'from-env'], { ...env, JOBFLEET_TOKEN: secret });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal((await jf(['jobs', 'ls', '--profile', 'from-env'], env)).code, 0);
    oneErrorLine(await jf([...login, '--token-stdin'], env, { input: '' }), 2, /no token on standard input/);
    oneErrorLine(
      await jf([...login, '--token-stdin', '--token', secret], env, { input: secret }),
      2,
      /--token-stdin or --token, not both/,
    );

    const created = await jf(
      [
        'admin',
        '--server',
        url,
        '--admin-token',
        fleet.server.adminToken,
        'app-create',
        'stdin-app',
        'biz:2',
        '--secret-stdin',
      ],
      {},
      { bin: JOBFLEET, input: 'stdin-app-secret\n' },
    );
    assert.equal(created.code, 0, created.stderr);
    const asApp = await jf(['jobs', 'ls', '--token', 'stdin-app:stdin-app-secret']);
    assert.equal(asApp.code, 0, asApp.stderr);

    const sensitive = await jf(
      [
        'run',
        'script',
        '-c',
        'echo "[$*]"',
        '--param-file',
        '-',
        '--sensitive',
        '-t',
        '127.0.0.2',
        '-o',
        'json',
      ],
      {},
      { input: 'hidden words\n' },
    );
    assert.equal(sensitive.code, 0, sensitive.stderr);
    const doc = JSON.parse(sensitive.stdout) as {
      job_instance_id: number;
      steps: { groups: { output: string }[] }[];
    };
    assert.equal(doc.steps[0]?.groups[0]?.output, '[hidden words]\n');
    const id = String(doc.job_instance_id);
    oneErrorLine(await jf(['redo', id]), 2, /sensitive parameters.*--param-file/);
    const file = path.join(tempDir('jf-param'), 'args');
    fs.writeFileSync(file, 'other words\n');
    const redo = await jf(['redo', id, '--param-file', file]);
    assert.equal(redo.code, 0, redo.stderr);
    assert.match(redo.stdout, /^\[other words\]$/m);
    oneErrorLine(
      await jf(['redo', id, '--param-file', file, '-p', 'x']),
      2,
      /--param or --param-file, not both/,
    );
  });

  test('a reader that stops early leaves the exit code of the job; before there is one, 141', async () => {
    const failed = await jf(
      ['run', 'script', '-c', 'echo out; exit 3', '-t', '127.0.0.2'],
      {},
      { closeStdout: true },
    );
    assert.equal(failed.code, 1, failed.stderr);
    const id = (await jf(['run', 'script', '-c', 'sleep 5', '-t', '127.0.0.2', '-d'])).stdout.trim();
    const following = await jf(['watch', id, '-o', 'ndjson'], {}, { closeStdout: true });
    assert.equal(following.code, 141, following.stderr);
  });

  test(
    'a stalled server: --wait-timeout and Ctrl-C end the wait at once; Ctrl-C exits 130',
    { timeout: 60_000 },
    async () => {
      // The stream says the job is over; the status read that follows is never answered.
      const fake = await fakeServer({ '/api/v3/get_job_event_stream': (res) => res.writeHead(204).end() });
      try {
        const via = ['--server', fake.url];
        const startedAt = Date.now();
        const [polled, streamed] = await Promise.all([
          jf(['watch', '1', '--wait-timeout', '1', ...via], { JOBFLEET_NO_STREAM: '1' }),
          jf(['watch', '1', '--wait-timeout', '1', ...via]),
        ]);
        oneErrorLine(polled, 5, /still running after the wait timeout/);
        oneErrorLine(streamed, 5, /still running after the wait timeout/);
        assert.ok(Date.now() - startedAt < 15_000, 'not held by the unanswered read');
        const ways: Record<string, string>[] = [{ JOBFLEET_NO_STREAM: '1' }, {}];
        for (const poll of ways) {
          const asked = fake.nextRequest();
          const interrupted = await jf(['watch', '1', ...via], poll, {
            started: (p) => void asked.then(() => setTimeout(() => p.kill('SIGINT'), 200)),
          });
          oneErrorLine(interrupted, 130, /detached; job 1 goes on \(jf watch 1\)/);
        }
      } finally {
        fake.close();
      }
    },
  );

  test('a stream refused for too many streams is followed by polling; the job outcome decides the exit', async () => {
    const started = await jf(['run', 'script', '-c', 'echo done', '-t', '127.0.0.2']);
    assert.equal(started.code, 0, started.stderr);
    const id = /job (\d+)/.exec(started.stderr + started.stdout)?.[1] ?? '';
    const status = await fetch(`${fleet.server.url}/api/v3/get_job_instance_status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        bk_app_code: fleet.creds.appCode,
        bk_app_secret: fleet.creds.appSecret,
        bk_scope_type: 'biz',
        bk_scope_id: '2',
        job_instance_id: Number(id),
        return_ip_result: true,
      }),
    }).then((r) => r.text());
    const envelope = (code: number) => (res: http.ServerResponse) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ result: false, code, message: 'refused', data: null }));
    for (const code of [1240430, 1240429]) {
      // Refused twice; a stream then (a rate limit lasts its second): it says the job is over.
      let asked = 0;
      const fake = await fakeServer({
        '/api/v3/get_job_event_stream': (res) =>
          ++asked <= 2 ? envelope(code)(res) : res.writeHead(204).end(),
        '/api/v3/get_job_instance_status': (res) =>
          res.writeHead(200, { 'content-type': 'application/json' }).end(status),
      });
      try {
        const watched = await jf(['watch', id, '--server', fake.url]);
        assert.equal(watched.code, 0, `${code}: ${watched.stderr}`);
      } finally {
        fake.close();
      }
    }
  });

  test('replies that are no v3 envelope, and jf api, get the exit codes of every other call', async () => {
    const send = (status: number, type: string, body: string) => (res: http.ServerResponse) =>
      res.writeHead(status, { 'content-type': type }).end(body);
    const fake = await fakeServer({
      '/api/v3/system/query_agent_info': send(200, 'text/html', '<html><body>maintenance</body></html>'),
      '/api/v3/gateway': send(502, 'application/json', '{"error":"upstream unreachable"}'),
      '/api/v3/user_auth': send(
        200,
        'application/json',
        '{"result":false,"code":1238001,"message":"user authentication failed","data":null}',
      ),
    });
    try {
      const via = ['--server', fake.url];
      oneErrorLine(await jf(['agents', 'ls', '1', ...via]), 1, /did not answer as a Jobfleet server/);
      const gateway = await jf(['api', 'POST', '/api/v3/gateway', ...via]);
      assert.deepEqual([gateway.code, gateway.stdout], [1, '{"error":"upstream unreachable"}\n']);
      assert.equal((await jf(['api', 'POST', '/api/v3/user_auth', ...via])).code, 4);
      oneErrorLine(
        await jf(['api', 'POST', '/api/v3/x', '-d', '@/nonexistent/body.json', ...via]),
        2,
        /cannot read \/nonexistent\/body\.json/,
      );
    } finally {
      fake.close();
    }
  });
});
