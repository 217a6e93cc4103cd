/**
 * Drift checks for the error catalogue: the documented table must match the catalogue row for
 * row, and server code must take its codes from the catalogue rather than spell them out.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/api/error-catalogue.js';
import { REPO_ROOT } from './helpers/processes.js';

const DOC = path.join(REPO_ROOT, 'docs', 'api-errors.md');
const SERVER_SRC = path.join(REPO_ROOT, 'server', 'src');
const CATALOGUE_FILE = path.join(SERVER_SRC, 'api', 'error-catalogue.ts');

interface DocRow {
  name: string;
  code: number;
  http: number;
  message: string;
  when: string;
}

function splitRow(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

/** The rows of the first table whose header starts with `| Name | Code |`. */
function docRows(markdown: string): DocRow[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\|\s*Name\s*\|\s*Code\s*\|/.test(l));
  assert.ok(start >= 0, 'docs/api-errors.md has no "| Name | Code | ..." table');
  const header = splitRow(lines[start] ?? '');
  assert.deepEqual(header, ['Name', 'Code', 'HTTP', 'Message template', 'When']);
  const rows: DocRow[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.trim().startsWith('|')) break;
    const cells = splitRow(line);
    assert.equal(cells.length, 5, `table row does not have 5 cells: ${line}`);
    const [name, code, http, message, when] = cells as [string, string, string, string, string];
    rows.push({
      name,
      code: Number(code),
      http: Number(http),
      message: message.replace(/^`(.*)`$/, '$1'),
      when,
    });
  }
  return rows;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/**
 * The text with comments blanked out (line structure kept), so that a comment citing a BK-JOB
 * code does not count as a use. String and template contents are kept: a code in a string is a use.
 */
function withoutComments(src: string): string {
  let out = '';
  let i = 0;
  let quote: string | undefined;
  while (i < src.length) {
    const c = src[i] ?? '';
    const next = src[i + 1] ?? '';
    if (quote) {
      out += c;
      if (c === '\\') {
        out += next;
        i += 2;
        continue;
      }
      if (c === quote) quote = undefined;
      i++;
    } else if (c === '/' && next === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      if (c === '"' || c === "'" || c === '`') quote = c;
      out += c;
      i++;
    }
  }
  return out;
}

const CODE_LITERAL = /(?<![\w.])(?:1_?2\d(?:_?\d){4}|99_?00_?403)(?![\w.])/g;

describe('error catalogue', () => {
  const entries = Object.entries(ERROR_CATALOGUE);

  it('documents every entry exactly as the catalogue defines it', () => {
    const rows = docRows(fs.readFileSync(DOC, 'utf8'));
    const documented = new Map(rows.map((r) => [r.name, r]));
    assert.equal(documented.size, rows.length, 'docs/api-errors.md lists a name twice');
    const problems: string[] = [];
    for (const [name, entry] of entries) {
      const row = documented.get(name);
      if (!row) {
        problems.push(`${name}: missing from docs/api-errors.md`);
        continue;
      }
      if (row.code !== entry.code) problems.push(`${name}: doc code ${row.code}, catalogue ${entry.code}`);
      if (row.http !== entry.http) problems.push(`${name}: doc HTTP ${row.http}, catalogue ${entry.http}`);
      if (row.message !== entry.message)
        problems.push(`${name}: doc message "${row.message}", catalogue "${entry.message}"`);
      if (row.when.length < 10) problems.push(`${name}: the "When" column does not say when it is used`);
    }
    for (const row of rows) {
      if (!(row.name in ERROR_CATALOGUE)) problems.push(`${row.name}: documented but not in the catalogue`);
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(
      rows.map((r) => r.name),
      entries.map(([name]) => name),
      'docs/api-errors.md lists the entries in catalogue order',
    );
  });

  it('gives every entry its own code and a well-formed template', () => {
    const byCode = new Map<number, string[]>();
    for (const [name, e] of entries) byCode.set(e.code, [...(byCode.get(e.code) ?? []), name]);
    const shared = [...byCode].filter(([, names]) => names.length > 1);
    assert.deepEqual(shared, [], 'two catalogue entries share a code');
    for (const [name, e] of entries) {
      assert.ok(/^(12\d{5}|9900403)$/.test(String(e.code)), `${name}: code ${e.code} is not a BK-JOB code`);
      assert.ok(e.http === 200 || e.http === 404, `${name}: HTTP ${e.http}`);
      assert.equal(e.message.split('{').length, e.message.split('}').length, `${name}: unbalanced braces`);
    }
  });

  it('is the only place in server/src that spells out an error code', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(SERVER_SRC)) {
      if (file === CATALOGUE_FILE) continue;
      const lines = withoutComments(fs.readFileSync(file, 'utf8')).split('\n');
      lines.forEach((line, n) => {
        for (const m of line.matchAll(CODE_LITERAL)) {
          offenders.push(`${path.relative(REPO_ROOT, file)}:${n + 1}: ${m[0]}`);
        }
      });
    }
    assert.deepEqual(offenders, [], 'use new ApiError(<name>) or ERROR_CATALOGUE.<name>.code instead');
  });

  it('is only ever thrown with names it defines', () => {
    const unknown: string[] = [];
    let uses = 0;
    for (const file of sourceFiles(SERVER_SRC)) {
      const src = withoutComments(fs.readFileSync(file, 'utf8'));
      for (const m of src.matchAll(/new\s+ApiError\(\s*(['"`])([^'"`]*)\1/g)) {
        uses++;
        const name = m[2] ?? '';
        if (!(name in ERROR_CATALOGUE)) unknown.push(`${path.relative(REPO_ROOT, file)}: ${name}`);
      }
    }
    assert.ok(uses > 10, `found only ${uses} uses of new ApiError(...); is the scan broken?`);
    assert.deepEqual(unknown, []);
  });

  it('recognises code literals and ignores comments (self-check of the scanner)', () => {
    const sample = [
      '// 1244001 in a comment',
      '/* 9900403 in a block',
      '   comment */ const a = 1244030;',
      "const b = '1247403'; const c = 1_240_003; const d = 12440011; const e = 'http://x/1244002';",
    ].join('\n');
    const found = [...withoutComments(sample).matchAll(CODE_LITERAL)].map((m) => m[0]);
    assert.deepEqual(found, ['1244030', '1247403', '1_240_003', '1244002']);
  });
});
