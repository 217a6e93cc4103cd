/**
 * `jf` end to end: real `jf` processes (stdout and stderr piped, as in a script) against a real
 * server with two real agents on loopback, and 60 simulated hosts (the bench's fleet simulator,
 * running real scripts) for gathering.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as FleetModule from '../../server/test/helpers/fleet.js';
import type * as ProcessesModule from '../../server/test/helpers/processes.js';
import type * as ApiModule from '../../server/test/helpers/api-client.js';
import type { Fleet } from '../../server/test/helpers/fleet.js';

// The server's test helpers, loaded from their compiled place (they are not part of its package API).
const REPO = path.resolve(import.meta.dirname, '../../..');
const { startFleet } = (await import(
  path.join(REPO, 'server/dist/test/helpers/fleet.js')
)) as typeof FleetModule;
const { RESTART_HEARTBEAT_ENV, stopAll, tempDir } = (await import(
  path.join(REPO, 'server/dist/test/helpers/processes.js')
)) as typeof ProcessesModule;
const { admin } = (await import(
  path.join(REPO, 'server/dist/test/helpers/api-client.js')
)) as typeof ApiModule;

const JF = path.join(REPO, 'cli', 'bin', 'jf.js');
const SIMULATOR = path.join(REPO, 'bench', 'dist', 'src', 'fleet-simulator.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let fleet: Fleet;
let configHome: string;
let baseEnv: Record<string, string>;

function jf(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [JF, ...args], {
      env: { ...baseEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One clear line on stderr, nothing on stdout. */
function oneErrorLine(r: Run, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}

const ESC = '\u001b';

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
    assert.equal(bad.code, 2);
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
});
