// Runs every compiled test file (<package>/dist/test/**/*.test.js) with node's test runner.
// Node 20's runner does not expand globs itself, so the files are listed here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const packages = ['protocol', 'server', 'agent', 'cli', 'console'];
const filter = process.argv.slice(2);

function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.test.js') ? [p] : [];
  });
}

const files = packages
  .flatMap((p) => walk(path.join(p, 'dist', 'test')))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
if (!process.env.JOBFLEET_TEST_PG_URL) {
  // Not an error (developers may have no PostgreSQL), but say so: CI must run both engines.
  console.error(
    'JOBFLEET_TEST_PG_URL is not set: tests run on SQLite only (see scripts/start-test-postgres.sh)',
  );
}
// Every directory the tests make (servers' data, agents' state, uploads) goes under one
// directory of this run, removed when every test passed and kept to look into when one failed:
// left in the system's temporary directory, a full run's leftovers numbered in the hundreds.
// Open to every account as the system's is (sticky): agents run scripts as other accounts.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobfleet-tests-'));
fs.chmodSync(tmp, 0o1777);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: tmp },
});
if (r.status === 0) fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
else console.error(`the tests' files are kept in ${tmp}`);
process.exit(r.status ?? 1);
