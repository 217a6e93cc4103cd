/**
 * `jobfleet template apply FILE` / `jobfleet template export ID` against a real server:
 * apply creates, applying again changes nothing, export gives back the file, and a changed file
 * updates the template in place (same ids) and removes plans it no longer lists.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { post } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { CLI, stopAll, tempDir } from './helpers/processes.js';

function fileText(account: string): string {
  return `bk_scope_type: biz
bk_scope_id: "2"
name: nightly backup
description: dump, ship, confirm, clean up
global_var_list:
  - name: target_dir
    type: 1
    description: where dumps go
    required: 1
    value: /var/backups
  - name: token
    type: 4
    description: ""
    required: 0
    value: "******"
  - name: hosts
    type: 3
    description: ""
    required: 0
    server:
      ip_list:
        - bk_cloud_id: 0
          ip: 127.0.0.2
step_list:
  - name: dump
    type: 1
    script_info:
      script_type: 1
      script_content: |
        echo "dumping to $target_dir"
      script_language: 1
      script_timeout: 600
      account:
        alias: ${account}
      server:
        variable: hosts
      is_param_sensitive: 0
      is_ignore_error: 0
  - name: report
    type: 1
    script_info:
      script_type: 2
      script: reporter@v1
      script_timeout: 600
      account:
        alias: ${account}
      server:
        variable: hosts
      is_param_sensitive: 0
      is_ignore_error: 0
  - name: approve
    type: 3
    approval_info:
      approval_user:
        user_list:
          - ops
      approval_message: ship it?
      notify_channel: []
plans:
  - name: full
    description: every step
    steps:
      - dump
      - approve
    global_var_list:
      - name: target_dir
        value: /srv/backups
  - name: dump only
    description: ""
    steps:
      - dump
    global_var_list: []
`;
}

for (const engine of engines()) {
  describe(`template files on ${engine}`, () => {
    let fleet: Fleet;
    let dir: string;

    before(async () => {
      fleet = await startFleet(engine, 1);
      dir = tempDir('template-file');
      const script = await post(
        fleet.server.url,
        'create_script',
        { ...fleet.scope, name: 'reporter', script_language: 1, content: b64('echo report'), version: 'v1' },
        fleet.creds,
      );
      assert.equal(script.result, true, script.message);
      const { script_id, id } = script.data as { script_id: string; id: number };
      const published = await post(
        fleet.server.url,
        'publish_script_version',
        { ...fleet.scope, script_id, script_version_id: id },
        fleet.creds,
      );
      assert.equal(published.result, true, published.message);
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    const cli = (...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, 'template', ...args], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          HOME: os.homedir(),
          JOBFLEET_SERVER: fleet.server.url,
          JOBFLEET_APP_CODE: fleet.server.appCode,
          JOBFLEET_APP_SECRET: fleet.server.appSecret,
          JOBFLEET_USERNAME: 'tester',
        },
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const audit = async (templateId: number) => {
      const t = await post<{ last_modify_time: number; step_list: { id: number }[] }>(
        fleet.server.url,
        'get_job_template_detail',
        { ...fleet.scope, job_template_id: templateId },
        fleet.creds,
      );
      const plans = await post<{ data: { id: number; last_modify_time: number }[] }>(
        fleet.server.url,
        'get_job_plan_list',
        { ...fleet.scope, job_template_id: templateId },
        fleet.creds,
      );
      return { template: t.data, plans: plans.data.data };
    };

    test('apply is idempotent and export round-trips exactly', async () => {
      // The file names the account by alias; export writes it back as {id, name}, so the
      // round trip is checked from the first export on.
      const file = path.join(dir, 'backup.yaml');
      fs.writeFileSync(file, fileText(fleet.account));
      const first = cli('apply', file);
      assert.equal(first.code, 0, first.err);
      const { job_template_id: id, job_plan_ids: planIds } = JSON.parse(first.out) as {
        job_template_id: number;
        job_plan_ids: number[];
      };
      assert.equal(planIds.length, 2);
      const exported = cli('export', String(id), '--scope', 'biz:2');
      assert.equal(exported.code, 0, exported.err);
      const doc = JSON.parse(cli('export', String(id), '--scope', 'biz:2', '--json').out) as {
        plans: { name: string }[];
        step_list: { name: string; script_info?: { script_content: string; script?: string } }[];
      };
      assert.deepEqual(
        doc.plans.map((p) => p.name),
        ['full', 'dump only'],
      );
      assert.equal(doc.step_list[0]?.script_info?.script_content, 'echo "dumping to $target_dir"\n');
      assert.equal(doc.step_list[1]?.script_info?.script, 'reporter@v1');

      const before = await audit(id);
      const exportedFile = path.join(dir, 'exported.yaml');
      fs.writeFileSync(exportedFile, exported.out);
      for (const f of [file, exportedFile]) {
        const again = cli('apply', f);
        assert.equal(again.code, 0, again.err);
        assert.deepEqual(JSON.parse(again.out), { job_template_id: id, job_plan_ids: planIds });
      }
      assert.deepEqual(await audit(id), before, 'applying the same content changed something');
      assert.equal(cli('export', String(id), '--scope', 'biz:2').out, exported.out);
    });

    test('a changed file updates in place and drops plans it no longer lists', async () => {
      const file = path.join(dir, 'backup.json');
      const id0 = (JSON.parse(cli('apply', path.join(dir, 'backup.yaml')).out) as { job_template_id: number })
        .job_template_id;
      const doc = JSON.parse(cli('export', String(id0), '--scope', 'biz:2', '--json').out) as {
        step_list: { name: string; approval_info?: { approval_message: string } }[];
        plans: unknown[];
      };
      const approve = doc.step_list[2];
      if (approve?.approval_info) approve.approval_info.approval_message = 'really ship it?';
      doc.plans = doc.plans.slice(0, 1);
      fs.writeFileSync(file, JSON.stringify(doc));
      const r = cli('apply', file);
      assert.equal(r.code, 0, r.err);
      const { job_template_id: id, job_plan_ids: planIds } = JSON.parse(r.out) as {
        job_template_id: number;
        job_plan_ids: number[];
      };
      const now = await audit(id);
      assert.equal(now.plans.length, 1);
      assert.equal(now.plans[0]?.id, planIds[0]);
      assert.equal(id, id0);
      const exported = JSON.parse(cli('export', String(id), '--scope', 'biz:2', '--json').out) as typeof doc;
      assert.equal(exported.step_list[2]?.approval_info?.approval_message, 'really ship it?');

      // A bad file is refused with a message naming the problem; nothing changes.
      fs.writeFileSync(file, JSON.stringify({ ...doc, plans: [{ name: 'x', steps: ['no such step'] }] }));
      const bad = cli('apply', file);
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /no step named "no such step"/);
      assert.equal((await audit(id)).plans.length, 1);
    });
  });
}
