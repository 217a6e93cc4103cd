/** The pure parts of `jf`: target expressions, host folding and gathering. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatherOutputs } from '../src/jf/gather.js';
import { foldHosts } from '../src/jf/host-fold.js';
import { expandBrackets, parseTargets } from '../src/jf/targets.js';
import { CliError } from '../src/jf/exit-codes.js';

test('ranges expand, with zero padding and several brackets', () => {
  assert.deepEqual(expandBrackets('10.0.1.[1-3,7]'), ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.7']);
  assert.deepEqual(expandBrackets('web[08-10]'), ['web08', 'web09', 'web10']);
  assert.deepEqual(expandBrackets('10.0.[1-2].[5-6]'), ['10.0.1.5', '10.0.1.6', '10.0.2.5', '10.0.2.6']);
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
