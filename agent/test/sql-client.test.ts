/**
 * SQL tasks on the agent, without a database: how the password reaches the client (an option
 * file the client parses back exactly, never the spool), and refusals that need no server.
 * Runs against a real MariaDB server are in the server's sql-execution tests.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { optionFileText } from '../src/sql-client.js';
import { RecordingReports, runMsg } from './helpers/recording-reports.js';
import { Runners } from './helpers/runners.js';

const runners = new Runners();
after(() => runners.cleanup());

const login = { engine: 'mysql' as const, user: 'app', password: 'p"a\\ss w#rd;\'x\n', port: 3306 };

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p) : [p];
  });
}

describe('SQL client', () => {
  it('writes the password quoted and escaped so that # ; quotes and backslashes survive', () => {
    const text = optionFileText(login);
    assert.match(text, /^\[client\]\n/);
    assert.ok(text.includes('password="p\\"a\\\\ss w#rd;\'x\\n"\n'), text);
    assert.ok(text.includes('host=127.0.0.1\nport=3306\n'));
  });

  it('fails a host clearly for Oracle and DB2, and for a SQL task with no database account', async () => {
    const { runner, reports, stateDir } = runners.open();
    const oracle = runMsg('select 1 from dual', {
      language: 'sql',
      database: { ...login, engine: 'oracle' },
    });
    const none = runMsg('select 1', { language: 'sql' });
    runner.run(oracle);
    runner.run(none);
    const r1 = await reports.finishedResult(oracle.key);
    const r2 = await reports.finishedResult(none.key);
    assert.equal(r1.outcome, 'unsupported');
    assert.match(r1.message, /oracle databases are not supported yet/);
    assert.equal(r2.outcome, 'unsupported');
    assert.match(r2.message, /needs a database account/);
    const spooled = listFiles(stateDir)
      .map((f) => fs.readFileSync(f, 'utf8'))
      .join('\n');
    assert.ok(!spooled.includes('w#rd'), 'the password is not in the spool');
    assert.ok(reports instanceof RecordingReports);
  });
});
