/**
 * Dangerous-command rules end to end: rule management, check_script, and enforcement on
 * fast_execute_script with a real agent (intercept refuses and creates nothing; scan runs and
 * is recorded).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, get, post } from './helpers/api-client.js';
import type { ApiCreds } from './helpers/api-client.js';
import { engines } from './helpers/databases.js';
import { b64, hostLog, jobCount, runScript, startFleet, waitFinished, stopFleets } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';

interface Rule {
  id: number;
  expression: string;
  script_language_list: number[];
  description: string;
  action: number;
  status: number;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

interface CheckItem {
  line: number;
  line_content: string;
  match_content: string;
  level: number;
  description: string;
}

interface Hit {
  id: number;
  rule_id: number;
  expression: string;
  description: string;
  action: number;
  script_language: number;
  line: number;
  line_content: string;
  match_content: string;
  intercepted: boolean;
  job_instance_id: number | null;
  bk_scope_type: string;
  bk_scope_id: string;
  app_code: string;
  operator: string;
  create_time: number;
}

const RULE_KEYS = [
  'action',
  'create_time',
  'creator',
  'description',
  'expression',
  'id',
  'last_modify_time',
  'last_modify_user',
  'script_language_list',
  'status',
];

for (const engine of engines()) {
  describe(`dangerous-command rules on ${engine}`, () => {
    let fleet: Fleet;
    let hostId: number;
    const call = <T>(name: string, body: Record<string, unknown>, creds?: ApiCreds) =>
      post<T>(fleet.server.url, name, body, creds ?? fleet.creds);
    const create = (body: Record<string, unknown>) => call<Rule>('create_dangerous_rule', body);
    const listAll = async () => (await call<Rule[]>('get_dangerous_rule_list', {})).data;
    const hits = (params: Record<string, string | number> = {}) =>
      get<{ start: number; length: number; total: number; data: Hit[] }>(
        fleet.server.url,
        'get_dangerous_rule_hit_list',
        { ...fleet.scope, ...params },
        fleet.creds,
      );
    /** Creates a rule and enables it; returns its id. */
    const enabledRule = async (body: Record<string, unknown>) => {
      const r = await create(body);
      assert.equal(r.result, true, r.message);
      const e = await call<{ id: number; status: number }>('enable_dangerous_rule', { id: r.data.id });
      assert.equal(e.result, true, e.message);
      return r.data.id;
    };

    before(async () => {
      fleet = await startFleet(engine, 1);
      hostId = fleet.hostIds.get('127.0.0.2') ?? 0;
    });

    after(stopFleets);

    test('create, update, enable, disable, list and delete answer the documented shapes', async () => {
      const t0 = Date.now();
      const c = await create({
        expression: 'rm\\s+-rf',
        script_language_list: [4, 1, 4],
        description: 'wipes files',
        action: 2,
      });
      assert.equal(c.result, true, c.message);
      assert.equal(c.code, 0);
      assert.deepEqual(Object.keys(c.data).sort(), RULE_KEYS);
      const rule = c.data;
      assert.ok(rule.id > 0);
      assert.equal(rule.expression, 'rm\\s+-rf');
      assert.deepEqual(rule.script_language_list, [1, 4]);
      assert.equal(rule.description, 'wipes files');
      assert.equal(rule.action, 2);
      assert.equal(rule.status, 0, 'a new rule is disabled');
      assert.equal(rule.creator, 'tester');
      assert.equal(rule.last_modify_user, 'tester');
      assert.ok(rule.create_time >= t0 && rule.create_time <= Date.now(), 'create_time is in ms');
      assert.equal(rule.last_modify_time, rule.create_time);

      const en = await call<{ id: number; status: number }>('enable_dangerous_rule', { id: rule.id });
      assert.deepEqual(en.data, { id: rule.id, status: 1 });
      const other = { ...fleet.creds, username: 'other' };
      const up = await call<Rule>(
        'update_dangerous_rule',
        { id: rule.id, expression: 'rm -r', script_language_list: [1], description: 'recursive', action: 1 },
        other,
      );
      assert.equal(up.result, true, up.message);
      assert.deepEqual(
        { ...up.data, last_modify_time: 0 },
        {
          ...rule,
          expression: 'rm -r',
          script_language_list: [1],
          description: 'recursive',
          action: 1,
          status: 1,
          last_modify_user: 'other',
          last_modify_time: 0,
        },
        'update keeps id, creator, create time and status',
      );
      assert.ok(up.data.last_modify_time >= rule.create_time);
      const dis = await call<{ id: number; status: number }>('disable_dangerous_rule', { id: rule.id });
      assert.deepEqual(dis.data, { id: rule.id, status: 0 });

      const second = await create({ expression: 'mkfs', script_language_list: [4], action: 2 });
      assert.equal(second.result, true, second.message);
      assert.equal(second.data.description, '', 'description defaults to empty');
      const all = await call<Rule[]>('get_dangerous_rule_list', {});
      assert.ok(Array.isArray(all.data), 'the list is a plain array');
      assert.deepEqual(
        all.data.map((r) => r.id),
        [rule.id, second.data.id],
      );
      assert.deepEqual(all.data[0], {
        ...up.data,
        status: 0,
        last_modify_user: 'tester',
        last_modify_time: all.data[0]?.last_modify_time,
      });
      const ids = async (filter: Record<string, unknown>) =>
        (await call<Rule[]>('get_dangerous_rule_list', filter)).data.map((r) => r.id);
      assert.deepEqual(await ids({ expression: 'RM' }), [rule.id], 'expression: part, any case');
      assert.deepEqual(await ids({ description: 'cursi' }), [rule.id]);
      assert.deepEqual(await ids({ action: 2 }), [second.data.id]);
      assert.deepEqual(await ids({ script_language_list: [4] }), [second.data.id]);
      assert.deepEqual(await ids({ script_language_list: [1, 4] }), [rule.id, second.data.id]);
      assert.deepEqual(await ids({ script_language_list: [2] }), []);
      assert.deepEqual(await ids({ action: 1, expression: 'mkfs' }), []);
      const viaGet = await get<Rule[]>(
        fleet.server.url,
        'get_dangerous_rule_list',
        { script_language_list: '4,2', action: 2 },
        fleet.creds,
      );
      assert.deepEqual(
        viaGet.data.map((r) => r.id),
        [second.data.id],
      );

      for (const id of [rule.id, second.data.id]) {
        const del = await call('delete_dangerous_rule', { id });
        assert.equal(del.result, true, del.message);
        assert.equal(del.data, null);
      }
      assert.deepEqual(await listAll(), []);
    });

    test('bad input answers a documented code naming the field, and changes nothing', async () => {
      const keep = await create({ expression: 'dd if=', script_language_list: [1], action: 1 });
      assert.equal(keep.result, true, keep.message);
      const taken = await create({ expression: 'halt', script_language_list: [1, 4], action: 2 });
      assert.equal(taken.result, true, taken.message);
      const before = await listAll();
      const valid = { expression: 'poweroff', script_language_list: [1], description: 'd', action: 2 };
      const omit = (k: keyof typeof valid) =>
        Object.fromEntries(Object.entries(valid).filter(([x]) => x !== k));
      const cases: [string, Record<string, unknown>, number, RegExp][] = [
        ['create_dangerous_rule', omit('expression'), 1240003, /expression is required/],
        ['create_dangerous_rule', { ...valid, expression: '   ' }, 1240003, /expression: must not be blank/],
        ['create_dangerous_rule', { ...valid, expression: 'x'.repeat(251) }, 1240003, /expression: .*250/],
        ['create_dangerous_rule', { ...valid, expression: 'rm (-rf' }, 1240003, /expression: .*regular expr/],
        ['create_dangerous_rule', { ...valid, expression: '[z-a]' }, 1240003, /expression: .*regular expr/],
        [
          'create_dangerous_rule',
          { ...valid, expression: `(?s)a${'.{1000}'.repeat(10)}z` },
          1240003,
          /expression: is too complex .*10004 instructions/,
        ],
        [
          'create_dangerous_rule',
          { ...valid, expression: 'rm\u0000' },
          1240003,
          /expression: must not contain NUL/,
        ],
        [
          'create_dangerous_rule',
          { ...valid, description: 'a\u0000' },
          1240003,
          /description: must not contain NUL/,
        ],
        ['create_dangerous_rule', omit('script_language_list'), 1240003, /script_language_list is required/],
        ['create_dangerous_rule', { ...valid, script_language_list: [] }, 1240003, /script_language_list/],
        [
          'create_dangerous_rule',
          { ...valid, script_language_list: [7] },
          1240003,
          /script_language_list\[0\]/,
        ],
        ['create_dangerous_rule', { ...valid, script_language_list: ['x'] }, 1240003, /script_language_list/],
        ['create_dangerous_rule', omit('action'), 1240003, /action is required/],
        ['create_dangerous_rule', { ...valid, action: 3 }, 1240003, /action: must be 1 \(scan\) or 2/],
        ['create_dangerous_rule', { ...valid, description: 'd'.repeat(1001) }, 1240003, /description/],
        [
          'create_dangerous_rule',
          { ...valid, expression: 'halt', script_language_list: [4, 1] },
          1243056,
          /halt/,
        ],
        ['update_dangerous_rule', valid, 1240003, /id is required/],
        ['update_dangerous_rule', { ...valid, id: 0 }, 1240003, /id: /],
        ['update_dangerous_rule', { ...valid, id: 999_999 }, 1243901, /999999 does not exist/],
        ['update_dangerous_rule', { ...valid, id: keep.data.id, action: 0 }, 1240003, /action/],
        [
          'update_dangerous_rule',
          { ...valid, id: keep.data.id, expression: 'halt', script_language_list: [1, 4] },
          1243056,
          /already exists/,
        ],
        ['enable_dangerous_rule', {}, 1240003, /id is required/],
        ['enable_dangerous_rule', { id: 999_999 }, 1243901, /999999/],
        ['disable_dangerous_rule', { id: 'abc' }, 1240003, /id: /],
        ['disable_dangerous_rule', { id: 999_999 }, 1243901, /999999/],
        ['delete_dangerous_rule', { id: 999_999 }, 1243901, /999999/],
        ['delete_dangerous_rule', {}, 1240003, /id is required/],
        ['get_dangerous_rule_list', { action: 5 }, 1240003, /action/],
        ['get_dangerous_rule_list', { script_language_list: [0] }, 1240003, /script_language_list/],
      ];
      for (const [name, body, code, message] of cases) {
        const r = await call(name, body);
        assert.equal(r.result, false, `${name} ${JSON.stringify(body).slice(0, 80)}`);
        assert.equal(r.code, code, `${name} ${JSON.stringify(body).slice(0, 80)}: ${r.message}`);
        assert.match(r.message, message);
        assert.equal(r.data, null);
      }
      // An app not granted every scope may read rules but not change them.
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/apps', {
        app_code: 'biz-only',
        app_secret: 'biz-only-secret',
        scopes: [{ type: 'biz', id: 2 }],
      });
      const bizOnly = { appCode: 'biz-only', appSecret: 'biz-only-secret', username: 'mallory' };
      const denied = await call('create_dangerous_rule', valid, bizOnly);
      assert.equal(denied.code, 9900403);
      assert.ok(denied.permission, 'a permission denial carries the permission object');
      assert.equal((await call('enable_dangerous_rule', { id: keep.data.id }, bizOnly)).code, 9900403);
      assert.equal((await call('delete_dangerous_rule', { id: keep.data.id }, bizOnly)).code, 9900403);
      assert.equal((await call<Rule[]>('get_dangerous_rule_list', {}, bizOnly)).data.length, before.length);

      assert.deepEqual(await listAll(), before, 'no refused call changed any rule');
      for (const r of before) await call('delete_dangerous_rule', { id: r.id });
    });

    test('check_script reports every line and every enabled rule that matches it', async () => {
      const wipe = await enabledRule({
        expression: 'rm -rf',
        script_language_list: [1],
        description: 'wipes files',
        action: 1,
      });
      const stop = await enabledRule({
        expression: 'shut(down|off)',
        script_language_list: [1, 4],
        description: 'stops the host',
        action: 2,
      });
      const pyWipe = await enabledRule({
        expression: 'rm -rf',
        script_language_list: [4],
        description: 'python wipe',
        action: 1,
      });
      const off = await create({ expression: 'echo', script_language_list: [1], action: 2 });
      assert.equal(off.result, true, off.message);

      const lines = [
        '#!/bin/bash',
        'echo start',
        'rm -rf /tmp/a && shutdown -h now',
        '',
        '  rm -rf /tmp/b',
        '  # rm -rf / is never run: comment lines are not checked',
      ];
      const check = async (language: number, text: string) => {
        const r = await call<CheckItem[]>('check_script', { script_language: language, content: b64(text) });
        assert.equal(r.result, true, r.message);
        return r.data;
      };
      const shell = [
        {
          line: 3,
          line_content: lines[2],
          match_content: 'rm -rf',
          level: 3,
          description: 'wipes files',
        },
        {
          line: 3,
          line_content: lines[2],
          match_content: 'shutdown',
          level: 3,
          description: 'stops the host',
        },
        { line: 5, line_content: lines[4], match_content: 'rm -rf', level: 3, description: 'wipes files' },
      ];
      assert.deepEqual(await check(1, lines.join('\n') + '\n'), shell);
      assert.deepEqual(await check(1, lines.join('\r\n')), shell, 'CRLF lines number the same');
      assert.deepEqual(
        (await check(4, lines.join('\n'))).map((i) => [i.line, i.description]),
        [
          [3, 'stops the host'],
          [3, 'python wipe'],
          [5, 'python wipe'],
        ],
      );
      assert.deepEqual(await check(2, lines.join('\n')), [], 'no rule watches bat');
      // A reply is bounded: at most 1,000 findings, each line cut to 1,024 characters.
      const many = await check(1, `${'rm -rf /tmp/x '.repeat(200)}\n`.repeat(3000));
      assert.equal(many.length, 1000);
      assert.equal(many[0]?.line_content.length, 1025);
      assert.ok(many[0]?.line_content.endsWith('…'));
      assert.equal(many[0]?.match_content, 'rm -rf');
      // A bat comment starts with REM; `#` is no comment there.
      const batWipe = await enabledRule({ expression: 'del /s', script_language_list: [2], action: 1 });
      assert.deepEqual(
        (await check(2, 'REM del /s C:\\\n# del /s C:\\\n')).map((i) => i.line),
        [2],
      );
      await call('delete_dangerous_rule', { id: batWipe });
      assert.deepEqual(await check(1, 'echo fine\n'), [], 'a disabled rule does not apply');

      await call('disable_dangerous_rule', { id: wipe });
      assert.deepEqual(
        (await check(1, lines.join('\n'))).map((i) => i.match_content),
        ['shutdown'],
      );

      for (const [body, field] of [
        [{ content: b64('x') }, /script_language is required/],
        [{ script_language: 9, content: b64('x') }, /script_language/],
        [{ script_language: 1 }, /content is required/],
        [{ script_language: 1, content: '' }, /content/],
        [{ script_language: 1, content: 'not base64!' }, /content: is not valid base64/],
      ] as const) {
        const r = await call('check_script', body);
        assert.equal(r.code, 1240003, JSON.stringify(body));
        assert.match(r.message, field);
      }
      for (const id of [wipe, stop, pyWipe, off.data.id]) await call('delete_dangerous_rule', { id });
    });

    test('an intercept rule refuses fast_execute_script with 1244019 and creates nothing', async () => {
      const id = await enabledRule({
        expression: '\\bdanger_zone\\b',
        script_language_list: [1],
        description: 'not on this fleet',
        action: 2,
      });
      const jobsBefore = await jobCount(fleet);
      const hitsBefore = (await hits()).data.total;
      const script = b64('echo ok\necho danger_zone\ntrue\necho danger_zone again\n');
      const r = await runScript(fleet, { script_content: script, target_server: { host_id_list: [hostId] } });
      assert.equal(r.result, false);
      assert.equal(r.code, 1244019);
      assert.equal(r.data, null);
      assert.match(r.message, /\\bdanger_zone\\b/);
      assert.match(r.message, /not on this fleet/);
      assert.match(r.message, /lines 2, 4/);
      // The rule check comes before the account (BK-JOB's order): an unknown account does not mask it.
      const early = await runScript(fleet, {
        script_content: script,
        account_alias: 'no-such-account',
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(early.code, 1244019);
      assert.equal(await jobCount(fleet), jobsBefore, 'no job was created');

      const h = await hits();
      assert.equal(h.data.total, hitsBefore + 4, 'each refused submission records both of its hits');
      const newest = h.data.data[0];
      assert.ok(newest);
      assert.equal(newest.rule_id, id);
      assert.equal(newest.expression, '\\bdanger_zone\\b');
      assert.equal(newest.action, 2);
      assert.equal(newest.intercepted, true);
      assert.equal(newest.job_instance_id, null);
      assert.equal(newest.line, 4);
      assert.equal(newest.line_content, 'echo danger_zone again');
      assert.equal(newest.match_content, 'danger_zone');
      assert.equal(newest.script_language, 1);
      assert.equal(newest.app_code, fleet.creds.appCode);
      assert.equal(newest.operator, 'tester');
      assert.equal(newest.bk_scope_type, 'biz');
      assert.equal(newest.bk_scope_id, fleet.scope.bk_scope_id);
      assert.equal(typeof newest.create_time, 'number');

      // Disabled, the rule no longer applies: the same script runs.
      await call('disable_dangerous_rule', { id });
      const ok = await runScript(fleet, {
        script_content: script,
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(ok.result, true, ok.message);
      assert.equal((await waitFinished(fleet, ok.data.job_instance_id)).job_instance.status, 3);
      assert.equal(await jobCount(fleet), jobsBefore + 1);
      await call('delete_dangerous_rule', { id });
    });

    test('a scan rule lets the job run on the agent and records the hit against the job', async () => {
      const id = await enabledRule({
        expression: 'echo (scan_me|scan_too)',
        script_language_list: [1, 4],
        description: 'watched',
        action: 1,
      });
      const r = await runScript(fleet, {
        script_content: b64('echo scan_me\necho middle\necho scan_too\n'),
        target_server: { host_id_list: [hostId] },
      });
      assert.equal(r.result, true, r.message);
      const st = await waitFinished(fleet, r.data.job_instance_id);
      assert.equal(st.job_instance.status, 3);
      assert.equal(
        await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, hostId),
        'scan_me\nmiddle\nscan_too\n',
      );

      const ofJob = await hits({ job_instance_id: r.data.job_instance_id });
      assert.equal(ofJob.result, true, ofJob.message);
      assert.equal(ofJob.data.total, 2);
      assert.deepEqual(
        ofJob.data.data.map((h) => [h.line, h.match_content, h.intercepted, h.job_instance_id, h.rule_id]),
        [
          [3, 'echo scan_too', false, r.data.job_instance_id, id],
          [1, 'echo scan_me', false, r.data.job_instance_id, id],
        ],
        'newest first',
      );
      // Paging over every hit in the scope.
      const all = await hits({ length: 1000 });
      assert.ok(all.data.total >= 6);
      const ids = all.data.data.map((h) => h.id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => b - a),
      );
      const page = await hits({ start: 1, length: 2 });
      assert.deepEqual([page.data.start, page.data.length, page.data.total], [1, 2, all.data.total]);
      assert.deepEqual(
        page.data.data.map((h) => h.id),
        ids.slice(1, 3),
      );
      assert.equal((await hits({ length: 0 })).code, 1240003);

      // Hits belong to the scope they were submitted in.
      await admin(fleet.server.url, fleet.server.adminToken, 'POST', '/biz', { id: 3, name: 'other' });
      const elsewhere = await get<{ total: number }>(
        fleet.server.url,
        'get_dangerous_rule_hit_list',
        { bk_scope_type: 'biz', bk_scope_id: '3' },
        fleet.creds,
      );
      assert.equal(elsewhere.data.total, 0);
      await call('delete_dangerous_rule', { id });
    });
  });
}
