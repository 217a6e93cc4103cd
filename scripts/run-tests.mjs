// Runs every compiled test file (<package>/dist/test/**/*.test.js) with node's test runner.
// Node 20's runner does not expand globs itself, so the files are listed here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
