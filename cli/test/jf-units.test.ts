/** The pure parts of `jf`: target expressions, host folding and gathering. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatherOutputs } from '../src/jf/gather.js';
import { foldHosts } from '../src/jf/host-fold.js';
import { expandBrackets, parseTargets } from '../src/jf/targets.js';
import { CliError, Exit } from '../src/jf/exit-codes.js';
import type { JobStatus } from '../src/jf/api-client.js';

test('ranges expand, with zero padding and several brackets', () => {
  assert.deepEqual(expandBrackets('10.0.1.[1-3,7]'), ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.7']);
  assert.deepEqual(expandBrackets('web[08-10]'), ['web08', 'web09', 'web10']);
  assert.deepEqual(expandBrackets('10.0.[1-2].[5-6]'), ['10.0.1.5', '10.0.1.6', '10.0.2.5', '10.0.2.6']);
  assert.equal(expandBrackets('10.0.[0-255].[0-255]').length, 65_536);
});

test('brackets that multiply past 100,000 names are a usage error, found before they are made', () => {
  for (const expr of ['web[1-100000][1-100000]', '10.[0-255].[0-255].[0-255]', 'h[1-60000,1-60000]'])
    assert.throws(
      () => expandBrackets(expr),
      (err: unknown) =>
        err instanceof CliError && err.exitCode === Exit.USAGE && /more than 100000/.test(err.message),
    );
});

test('targets become a target_server; bad ones are usage errors (exit 2)', () => {
  const files: Record<string, string> = { 'hosts.txt': '# web\n10.0.2.[1-2]\n3:10.9.9.9\n' };
  assert.deepEqual(
    parseTargets(['10.0.1.[1-2]', 'topo:module:7', 'group:g1', '@hosts.txt'], (f) => files[f] ?? ''),
    {
      ip_list: [
        { bk_cloud_id: 0, ip: '10.0.1.1' },
        { bk_cloud_id: 0, ip: '10.0.1.2' },
        { bk_cloud_id: 0, ip: '10.0.2.1' },
        { bk_cloud_id: 0, ip: '10.0.2.2' },
        { bk_cloud_id: 3, ip: '10.9.9.9' },
      ],
      topo_node_list: [{ node_type: 'module', id: 7 }],
      dynamic_group_list: [{ id: 'g1' }],
    },
  );
  assert.deepEqual(parseTargets(['42,17', '17']), { host_id_list: [42, 17] });
  for (const bad of ['10.0.1.[1-', '42,10.0.1.1', '10.0.1.[5-2]', '10.0.1.300', 'web01', '10.0.1.[a]', ''])
    assert.throws(
      () => parseTargets([bad]),
      (e: unknown) => e instanceof CliError && e.exitCode === 2,
      bad,
    );
});

test('host lists fold into ranges as dshbak -c does', () => {
  assert.equal(foldHosts(['10.0.1.3', '10.0.1.1', '10.0.1.2', '10.0.1.7']), '10.0.1.[1-3,7]');
  assert.equal(foldHosts(['web01', 'web02', 'web10', 'db1']), 'web[01-02,10],db1');
  assert.equal(foldHosts(['10.0.1.5']), '10.0.1.5');
  assert.equal(foldHosts(['alpha', '10.0.0.1', '10.0.1.1']), '10.0.0.1,10.0.1.1,alpha');
});

test('gathering keys on output and exit code, largest group first', () => {
  const o = (host: string, output: string, exitCode = 0) => ({
    host,
    hostId: 0,
    status: exitCode ? 104 : 9,
    exitCode,
    output,
  });
  const groups = gatherOutputs([o('h1', 'a'), o('h2', 'b'), o('h3', 'a'), o('h4', 'a', 1), o('h5', 'b')]);
  assert.deepEqual(
    groups.map((g) => [g.folded, g.exitCode]),
    [
      ['h[1,3]', 0],
      ['h[2,5]', 0],
      ['h4', 1],
    ],
  );
});

test('every jf command has --help with examples, and completion knows every command', async () => {
  const { Command } = await import('commander');
  const { addOperatorCommands } = await import('../src/jf/program.js');
  const { completionScript } = await import('../src/jf/completion.js');
  const root = addOperatorCommands(new Command('jf'), true);
  const missing: string[] = [];
  const walk = (c: InstanceType<typeof Command>, name: string) => {
    if (c.commands.length === 0) {
      let help = '';
      c.configureOutput({ writeOut: (s) => (help += s) });
      c.outputHelp();
      if (!/\nExamples:\n {2}jf /.test(help)) missing.push(name);
    }
    for (const s of c.commands) walk(s, `${name} ${s.name()}`);
  };
  walk(root, 'jf');
  assert.deepEqual(missing, []);
  const bash = completionScript(root, 'bash');
  assert.match(bash, /"crons"\) words="ls show save enable disable delete/);
  assert.match(bash, /"run"\) words="script file plan/);
});

test('a profile file jf wrote (JSON) and one written by hand (YAML) are both read; a broken one is a usage error', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { resolveConnection, saveProfile } = await import('../src/jf/profile.js');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'jf-profile-'));
  const file = path.join(home, 'jobfleet', 'config.yaml');
  const env = { XDG_CONFIG_HOME: home };
  await saveProfile('ci', { server: 'http://a:1/', token: 'app:secret', scope: 'biz:3' }, file);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const written = await resolveConnection({}, env);
  assert.deepEqual(
    [written.server, written.scope, written.profileName],
    ['http://a:1', { type: 'biz', id: '3' }, 'ci'],
  );
  fs.writeFileSync(
    file,
    'current: prod\nprofiles:\n  prod:\n    server: http://b:2\n    token: jft_x\n    account: deploy\n',
  );
  const yaml = await resolveConnection({}, env);
  assert.deepEqual(
    [yaml.server, yaml.auth, yaml.account],
    ['http://b:2', { kind: 'bearer', token: 'jft_x' }, 'deploy'],
  );
  fs.writeFileSync(file, 'profiles: [1, 2');
  await assert.rejects(
    resolveConnection({}, env),
    (e: CliError) => e.exitCode === 2 && /not a jobfleet profile file/.test(e.message),
  );
});

/** A job status as get_job_instance_status returns it, with one host result per step. */
function jobStatus(
  status: number,
  steps: { type?: number; status: number; host?: { status: number; exit_code: number | null } }[],
): JobStatus {
  return {
    finished: true,
    job_instance: { job_instance_id: 9, name: 'j', status, create_time: 0, start_time: 0, end_time: 1 },
    step_instance_list: steps.map((s, i) => ({
      step_instance_id: 100 + i,
      name: `s${i}`,
      status: s.status,
      type: s.type ?? 1,
      execute_count: 0,
      step_ip_result_list: s.host
        ? [{ bk_host_id: 1, ip: '10.0.0.1', bk_cloud_id: 0, start_time: 0, end_time: 1, ...s.host }]
        : [],
    })),
  };
}

test('--maxrc never answers less than the job status does', async () => {
  const { exitCodeOf } = await import('../src/jf/job-report.js');
  const ok = { status: 9, exit_code: 0 };
  // Confirmation refused after a successful step: the hosts all exited 0.
  const refused = jobStatus(13, [
    { status: 3, host: ok },
    { type: 3, status: 13 },
  ]);
  assert.deepEqual([exitCodeOf(refused, false), exitCodeOf(refused, true)], [3, 3]);
  // Stopped before its hosts ran: no host exit code at all.
  const stopped = jobStatus(11, [{ status: 11, host: { status: 5, exit_code: null } }]);
  assert.equal(exitCodeOf(stopped, true), 3);
  const abnormal = jobStatus(9, [{ status: 9, host: { status: 5, exit_code: null } }]);
  assert.equal(exitCodeOf(abnormal, true), 1);
  const failed = jobStatus(4, [{ status: 4, host: { status: 104, exit_code: 7 } }]);
  assert.deepEqual([exitCodeOf(failed, false), exitCodeOf(failed, true)], [1, 7]);
  assert.equal(exitCodeOf(jobStatus(3, [{ status: 3, host: ok }]), true), 0);
});

test('confirm answers a confirmation step with 6 or 9, a rolling step between batches with 13', async () => {
  const { confirmOperation } = await import('../src/jf/job-commands.js');
  const confirmStep = jobStatus(7, [{ status: 3 }, { type: 3, status: 7 }]);
  assert.deepEqual(confirmOperation(confirmStep, false), { stepId: 101, code: 6 });
  assert.deepEqual(confirmOperation(confirmStep, true), { stepId: 101, code: 9 });
  const rolling = jobStatus(7, [{ status: 7 }]);
  assert.deepEqual(confirmOperation(rolling, false), { stepId: 100, code: 13 });
  assert.throws(
    () => confirmOperation(rolling, true),
    (e: unknown) => e instanceof CliError && e.exitCode === 2 && /rolling step/.test(e.message),
  );
  // 15: a rolling step going on to its next batch by itself waits for nobody.
  assert.throws(
    () => confirmOperation(jobStatus(2, [{ status: 15 }]), false),
    (e: unknown) => e instanceof CliError && /no step waiting for confirmation/.test(e.message),
  );
});

test('common options are read before or after the command, never from a command option value', async () => {
  const { Command } = await import('commander');
  const { addOperatorCommands } = await import('../src/jf/program.js');
  const { globalOptionsOf } = await import('../src/jf/context.js');
  /** What `run script` would get from argv: its own flags and the common options. */
  const parse = async (optionsOnRoot: boolean, argv: string[]) => {
    const root = addOperatorCommands(new Command(optionsOnRoot ? 'jf' : 'jobfleet'), optionsOnRoot);
    const script = root.commands.find((c) => c.name() === 'run')?.commands.find((c) => c.name() === 'script');
    let seen: { param?: string; common: GlobalOptionsShape } | undefined;
    script?.action((flags: { param?: string }, cmd: InstanceType<typeof Command>) => {
      seen = { param: flags.param, common: globalOptionsOf(cmd) };
    });
    await root.parseAsync(argv, { from: 'user' });
    return seen;
  };
  type GlobalOptionsShape = ReturnType<typeof globalOptionsOf>;
  for (const onRoot of [true, false]) {
    const literal = await parse(onRoot, ['run', 'script', '-f', 'x.sh', '-p', '-o json', '-t', '1']);
    assert.deepEqual(literal, { param: '-o json', common: {} });
    const quiet = await parse(onRoot, ['run', 'script', '-c', 'x', '-p', '-q', '-t', '1', '-o', 'yaml']);
    assert.deepEqual(quiet, { param: '-q', common: { output: 'yaml' } });
  }
  const before = await parse(true, ['--no-color', '-o', 'json', 'run', 'script', '-c', 'x', '-t', '1']);
  assert.deepEqual(before?.common, { output: 'json', color: false });
  const nearest = await parse(true, [
    '-o',
    'json',
    '--scope',
    'biz:3',
    'run',
    'script',
    '-c',
    'x',
    '-t',
    '1',
    '-o',
    'ndjson',
  ]);
  assert.deepEqual(nearest?.common, { output: 'ndjson', scope: 'biz:3' });
});
