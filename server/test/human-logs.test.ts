/**
 * Log output of the real server and agent processes: JSON lines when stdout is a pipe, pretty
 * and coloured when it is a terminal (a pseudo-terminal from util-linux `script`), the same
 * fields either way; JOBFLEET_LOG_FORMAT overrides the choice.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { eventually } from './helpers/api-client.js';
import { CLI, killProcess, tempDir } from './helpers/processes.js';

const running: ReturnType<typeof spawn>[] = [];
after(async () => {
  await Promise.all(running.map((p) => killProcess(p, 'SIGKILL')));
});

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI with stdout a pipe, or a terminal when `tty`; collects what it prints. */
function run(args: string[], opts: { tty: boolean; env?: Record<string, string> }) {
  const argv = [process.execPath, CLI, ...args];
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TERM: 'xterm', ...opts.env };
  const proc = opts.tty
    ? spawn('script', ['-qfec', argv.map(quote).join(' '), '/dev/null'], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
      })
    : spawn(argv[0] ?? '', argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    output: () => out,
    waitFor: (text: string) =>
      eventually(async () => (out.includes(text) ? true : undefined), 30_000, `"${text}" in:\n${out}`),
    stop: () => killProcess(proc, 'SIGTERM'),
  };
}

const serverArgs = () => ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', tempDir('logs')];
const agentArgs = () => [
  ...['agent', '--server', 'http://127.0.0.1:9', '--token', 'x'.repeat(12), '--ip', '127.0.0.9'],
  ...['--state-dir', tempDir('logs-agent')],
];
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[\d+m/;

function jsonLine(output: string, msg: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.includes(`"msg":"${msg}`));
  assert.ok(line, `no JSON line "${msg}" in:\n${output}`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe('human logs', () => {
  it('server: JSON on a pipe, pretty and coloured on a terminal, same fields', async () => {
    const piped = run(serverArgs(), { tty: false });
    const tty = run(serverArgs(), { tty: true });
    await Promise.all([piped.waitFor('jobfleet server listening'), tty.waitFor('jobfleet server listening')]);
    const json = jsonLine(piped.output(), 'jobfleet server listening');
    assert.deepEqual(Object.keys(json).sort(), ['level', 'msg', 'service', 'time', 'url']);
    assert.equal(json.service, 'jobfleet-server');
    const pretty = tty.output();
    assert.match(pretty, ANSI, 'no colour on a terminal');
    assert.doesNotMatch(pretty, /"msg":/);
    const plain = pretty.replace(/\u001b\[\d+m/g, ''); // eslint-disable-line no-control-regex
    assert.match(plain, /INFO.*jobfleet server listening/);
    assert.match(plain, /service: "jobfleet-server"/);
    assert.match(plain, /url: "http:\/\/127\.0\.0\.1:\d+"/);
    await Promise.all([piped.stop(), tty.stop()]);
  });

  it('agent: JSON on a pipe, pretty and coloured on a terminal, same fields', async () => {
    const piped = run(agentArgs(), { tty: false });
    const tty = run(agentArgs(), { tty: true });
    await Promise.all([piped.waitFor('state registering'), tty.waitFor('state registering')]);
    const json = jsonLine(piped.output(), 'state registering');
    assert.deepEqual(Object.keys(json).sort(), ['ip', 'level', 'msg', 'service', 'time']);
    assert.equal(json.service, 'jobfleet-agent');
    const pretty = tty.output();
    assert.match(pretty, ANSI);
    const plain = pretty.replace(/\u001b\[\d+m/g, ''); // eslint-disable-line no-control-regex
    assert.match(plain, /INFO.*state registering/);
    assert.match(plain, /ip: "127\.0\.0\.9"/);
    await Promise.all([piped.stop(), tty.stop()]);
  });

  it('JOBFLEET_LOG_FORMAT chooses: json on a terminal, pretty (without colour) on a pipe', async () => {
    const json = run(agentArgs(), { tty: true, env: { JOBFLEET_LOG_FORMAT: 'json' } });
    const pretty = run(agentArgs(), { tty: false, env: { JOBFLEET_LOG_FORMAT: 'pretty' } });
    await Promise.all([json.waitFor('state registering'), pretty.waitFor('state registering')]);
    assert.equal(jsonLine(json.output(), 'state registering').ip, '127.0.0.9');
    assert.doesNotMatch(pretty.output(), ANSI);
    assert.match(pretty.output(), /INFO.*state registering/);
    await Promise.all([json.stop(), pretty.stop()]);
  });
});
