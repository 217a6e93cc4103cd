/**
 * The agent's valibot checks (agent-checks.ts) against the server's zod schemas (agent-link.ts):
 * the same types at compile time, the same verdict on every message here at run time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as v from 'valibot';
import type { z } from 'zod';
import type {
  DownloadFilesCheck,
  FileRecordCheck,
  FinishedRecordCheck,
  RunScriptCheck,
} from '../src/agent-checks.js';
import { parseRegisterResponse, parseServerMessage } from '../src/agent-checks.js';
import type { DownloadFiles, FileProgress, RunScript, TaskFinished } from '../src/agent-link.js';
import { RegisterResponse, ServerMessage } from '../src/agent-link.js';

/** Compiles only when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameTypes: [
  Same<v.InferOutput<typeof RunScriptCheck>, z.infer<typeof RunScript>>,
  Same<v.InferOutput<typeof DownloadFilesCheck>, z.infer<typeof DownloadFiles>>,
  Same<v.InferOutput<typeof FinishedRecordCheck>, Omit<z.infer<typeof TaskFinished>, 'v' | 'type'>>,
  Same<v.InferOutput<typeof FileRecordCheck>, Omit<z.infer<typeof FileProgress>, 'v' | 'type'>>,
] = [true, true, true, true];

const key = '12:0:34';
const sha = 'a'.repeat(64);
const run = {
  v: 1,
  type: 'task.run',
  key,
  language: 'shell',
  script: 'ZWNobyBoaQ==',
  params: '',
  timeoutSeconds: 10,
  user: '',
  logCapBytes: 1024,
};
const download = {
  v: 1,
  type: 'task.download',
  key,
  sources: [
    {
      url: 'http://127.0.0.2:4000',
      serveId: 's1',
      token: 't',
      label: '0:127.0.0.2',
      files: [{ sourcePath: '/a', relPath: 'a', size: 1, sha256: sha, mode: 0o644 }],
    },
  ],
  targetDir: '/tmp/x',
  targetName: '',
  user: '',
  strict: false,
  rateLimitBytes: 0,
  timeoutSeconds: 60,
};
const serve = {
  v: 1,
  type: 'file.serve',
  serveId: 's1',
  entries: [{ path: '/a' }, { path: '/b', relPath: 'c' }],
  user: '',
  token: 'x'.repeat(16),
  rateLimitBytes: 0,
};
const welcome = {
  v: 1,
  type: 'welcome',
  hostId: 3,
  heartbeatIntervalMs: 5000,
  stored: { [key]: 10 },
  forget: [],
};

const good: unknown[] = [
  welcome,
  { ...welcome, binaryOutput: true, extra: 'ignored' },
  { ...welcome, binaryOutput: true, combinedReports: true, fileReports: true, pingHeartbeat: true },
  run,
  { ...run, env: { A: 'b' }, varsOut: true },
  { ...run, language: 'sql', database: { engine: 'mysql', user: 'u', password: '', port: 3306 } },
  { v: 1, type: 'task.kill', key },
  { v: 1, type: 'task.recorded', key },
  serve,
  { v: 1, type: 'file.unserve', serveId: 's1' },
  download,
];

const bad: unknown[] = [
  null,
  'welcome',
  {},
  { ...welcome, v: 2 },
  { ...welcome, type: 'welcome.nope' },
  { ...welcome, heartbeatIntervalMs: 0 },
  { ...welcome, hostId: 1.5 },
  { ...welcome, stored: { [key]: -1 } },
  { ...welcome, forget: ['x'] },
  { ...welcome, binaryOutput: 'yes' },
  { ...welcome, fileReports: 1 },
  { ...run, key: '1:2' },
  { ...run, language: 'ruby' },
  { ...run, timeoutSeconds: -5 },
  { ...run, logCapBytes: 2 ** 60 },
  { ...run, script: undefined },
  { ...run, env: { A: 1 } },
  { ...run, database: { engine: 'mysql', user: '', password: '', port: 3306 } },
  { ...run, database: { engine: 'mysql', user: 'u', password: '', port: 70000 } },
  { ...serve, entries: [] },
  { ...serve, token: 'short' },
  { ...serve, entries: [{ path: '' }] },
  { v: 1, type: 'file.unserve', serveId: '' },
  { ...download, sources: [] },
  { ...download, sources: [{ ...download.sources[0], url: 'not a url' }] },
  {
    ...download,
    sources: [{ ...download.sources[0], files: [{ ...download.sources[0]?.files[0], sha256: 'x' }] }],
  },
  { ...download, strict: 'true' },
  { ...download, targetDir: '' },
];

describe('agent-side checks', () => {
  it('infer the same types as the zod schemas', () => {
    assert.deepEqual(sameTypes, [true, true, true, true]);
  });

  it('accept what zod accepts, with the same result', () => {
    for (const msg of good) {
      assert.deepEqual(parseServerMessage(msg), ServerMessage.parse(msg), JSON.stringify(msg));
    }
  });

  it('refuse what zod refuses, naming the field', () => {
    for (const msg of bad) {
      assert.equal(ServerMessage.safeParse(msg).success, false, `zod accepts ${JSON.stringify(msg)}`);
      assert.throws(() => parseServerMessage(msg), Error, JSON.stringify(msg));
    }
    assert.throws(() => parseServerMessage({ ...run, timeoutSeconds: 0 }), /timeoutSeconds/);
  });

  it('read a registration answer as zod does', () => {
    const answer = { agentId: 'a', token: 't', hostId: 4 };
    assert.deepEqual(parseRegisterResponse(answer), RegisterResponse.parse(answer));
    assert.throws(() => parseRegisterResponse({ ...answer, hostId: '4' }), /hostId/);
  });
});
