/**
 * The console's resource pages in a real browser against a real server and two real agents: a
 * script created, versioned, diffed and published; a plan with a confirmation step opened by
 * BK-JOB's deep link, launched and confirmed from the console, finishing on the agents, then its
 * sync preview and sync after the template changed; a cron built, saved with its next fire times
 * shown, and turned on; a viewer who sees no run, launch or edit button and whom the API refuses
 * when they try anyway; the fleet table and "run on selection"; a dangerous rule tried in the
 * rules page; pickers that read every page of a large scope, and the cron list's pager. Each page is saved as a screenshot in artifacts/console/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import { createUser, launchBrowser, newPage, screenshot, serverHelpers, signIn } from './helpers/browser.js';

const { startFleet, BIZ, b64, waitFinished } = serverHelpers.fleet;
const { admin, post } = serverHelpers.api;
const { stopAll } = serverHelpers.processes;

/** Replaces what a CodeMirror editor holds (it is a contenteditable, not an input). */
async function typeInEditor(page: Page, label: string, text: string): Promise<void> {
  const editor = page.getByRole('textbox', { name: label, exact: true });
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

describe('console: resource pages', () => {
  let fleet: Fleet;
  let browser: Browser;
  let server: { url: string; adminToken: string };
  let adaPassword: string;
  let veraPassword: string;
  let planId: number;
  let templateId: number;
  let templateDetail: Record<string, unknown> & { step_list: unknown[] };
  const base = `/biz/${BIZ}`;

  const call = async <T>(name: string, body: Record<string, unknown>): Promise<T> => {
    const r = await post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
    assert.equal(r.result, true, `${name}: ${r.message}`);
    return r.data;
  };

  before(async () => {
    fleet = await startFleet('sqlite', 2);
    server = { url: fleet.server.url, adminToken: fleet.server.adminToken };
    adaPassword = await createUser(server, 'ada', 'platform-admin');
    veraPassword = await createUser(server, 'vera', { role: 'viewer', bizId: BIZ });
    const hosts = { host_id_list: [...fleet.hostIds.values()] };
    const account = { alias: fleet.account };
    templateId = (
      await call<{ id: number }>('create_job_template', {
        name: 'release',
        global_var_list: [
          { name: 'greeting', type: 1, value: 'hello', required: 1 },
          { name: 'servers', type: 3, server: hosts, required: 1 },
        ],
        step_list: [
          {
            name: 'prepare',
            type: 1,
            script_info: {
              script_content: b64('echo "prepare $greeting"'),
              account,
              server: { variable: 'servers' },
            },
          },
          {
            name: 'approve',
            type: 3,
            approval_info: { approval_user: { user_list: ['ada'] }, approval_message: 'ship it?' },
          },
          {
            name: 'ship',
            type: 1,
            script_info: {
              script_content: b64('echo "ship $greeting"'),
              account,
              server: { variable: 'servers' },
            },
          },
        ],
      })
    ).id;
    planId = (
      await call<{ id: number }>('create_job_plan', { job_template_id: templateId, name: 'release all' })
    ).id;
    templateDetail = await call('get_job_template_detail', { job_template_id: templateId });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  test('a script is created, versioned, diffed and published', async () => {
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/scripts`);
    await page.getByRole('link', { name: 'New script' }).click();
    await page.getByLabel('Name', { exact: true }).fill('rotate-logs');
    await page.getByLabel('Version', { exact: true }).fill('1.0');
    await typeInEditor(page, 'Script', '#!/bin/bash\nfind /var/log -name "*.gz" -mtime +7\necho done\n');
    await page.getByText('No dangerous-command rule matches this script.').waitFor();
    await page.getByRole('button', { name: 'Create script' }).click();
    await page.getByRole('heading', { name: /rotate-logs/ }).waitFor();

    await typeInEditor(
      page,
      'Script of version 1.0',
      '#!/bin/bash\nfind /var/log -name "*.gz" -mtime +14 -delete\necho done\n',
    );
    await page.getByLabel('New version name').fill('2.0');
    await page.getByRole('button', { name: 'Save as new version' }).click();
    await page.getByRole('button', { name: '2.0', exact: true }).waitFor();
    // The diff opens on the two versions just compared: one line changed.
    await page.getByText('Lines added: 1, removed: 1').waitFor();
    const added = page.locator('.diff-add');
    assert.match((await added.innerText()).replace(/\s+/g, ' '), /-mtime \+14 -delete/);
    assert.match((await page.locator('.diff-del').innerText()).replace(/\s+/g, ' '), /-mtime \+7/);

    const row = page.getByRole('row').filter({ has: page.getByRole('button', { name: '2.0', exact: true }) });
    await row.getByRole('button', { name: 'Publish' }).click();
    await row.getByText('online').waitFor();
    await screenshot(page, 'script-versions');
    await page.goto(`${server.url}${base}/scripts`);
    await page.getByRole('row').filter({ hasText: 'rotate-logs' }).getByText('yes').waitFor();
    await screenshot(page, 'scripts');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('a plan with a confirmation step is launched and confirmed from the console and finishes on the agents', async () => {
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    // BK-JOB's deep link finds the plan's scope and lands on its page.
    await page.goto(`${server.url}/api_plan/${planId}`);
    await page.waitForURL(new RegExp(`${base}/plans/${planId}$`));
    await page.getByRole('heading', { name: 'Job plan: release all' }).waitFor();
    // Plan times come in seconds: read as ms they would show a day of January 1970.
    await page.getByText(new RegExp(`changed by tester at ${new Date().getFullYear()}-`)).waitFor();
    // The detail lists the variable's hosts again in ip_list; each shows once, by its id.
    assert.equal(
      await page.getByLabel(/servers/).inputValue(),
      [...fleet.hostIds.values()].map((id) => `#${id}`).join('\n'),
    );
    await page.getByLabel(/greeting/).fill('from the console');
    await screenshot(page, 'plan-launch');
    await page.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL(new RegExp(`${base}/jobs/(\\d+)`));
    const jobId = Number(/jobs\/(\d+)/.exec(page.url())?.[1]);

    // The confirmation waits; its approver confirms it from the step's page.
    await page.getByRole('link', { name: /approve/ }).click();
    await page.getByRole('button', { name: 'Confirm and continue' }).click();
    const done = await waitFinished(fleet, jobId, 30_000);
    assert.equal(done.job_instance.status, 3);
    assert.deepEqual(
      done.step_instance_list.map((s) => s.status),
      [3, 3, 3],
    );
    const log = await post<{ log_content: string }>(
      fleet.server.url,
      'get_job_instance_ip_log',
      {
        ...fleet.scope,
        job_instance_id: jobId,
        step_instance_id: done.step_instance_list[2]?.step_instance_id,
        bk_host_id: [...fleet.hostIds.values()][0],
      },
      fleet.creds,
    );
    assert.match(log.data.log_content, /ship from the console/);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('after the template changes, the plan page shows what a sync changes and syncs', async () => {
    await call('update_job_template', {
      ...templateDetail,
      job_template_id: templateId,
      step_list: [
        ...templateDetail.step_list,
        {
          name: 'verify',
          type: 1,
          script_info: {
            script_content: b64('echo verify'),
            account: { alias: fleet.account },
            server: { variable: 'servers' },
          },
        },
      ],
    });
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/plans/${planId}`);
    const panel = page.getByRole('region', { name: 'The template changed since this plan was synced' });
    await panel.getByRole('row').filter({ hasText: 'verify' }).getByText('new step: will run').waitFor();
    await screenshot(page, 'plan-sync');
    await panel.getByRole('button', { name: 'Sync plan' }).click();
    await panel.waitFor({ state: 'detached' });
    await page.getByRole('listitem').filter({ hasText: 'verify' }).waitFor();
    await page.goto(`${server.url}${base}/templates/${templateId}`);
    await page.getByRole('listitem', { name: 'Step 2: approve' }).waitFor();
    await screenshot(page, 'template-editor');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('a cron is built, saved with its next fire times shown, and turned on', async () => {
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/crons/new`);
    await page.getByLabel('Name', { exact: true }).fill('nightly release');
    await page.getByRole('combobox', { name: /^Job plan/ }).selectOption(String(planId));
    await page.getByRole('combobox', { name: /^Every/ }).selectOption('weekly');
    await page.getByRole('spinbutton', { name: 'Hour' }).fill('3');
    await page.getByRole('spinbutton', { name: 'Minute' }).fill('30');
    await page.getByLabel('Tue').check();
    await page.getByRole('combobox', { name: 'Time zone' }).fill('Asia/Shanghai');
    await page.getByText('At 03:30, only on Monday and Tuesday').waitFor();
    const times = page.getByRole('region', { name: /Next fire times/ }).getByRole('listitem');
    await times.nth(9).waitFor();
    assert.equal(await times.count(), 10);
    for (const text of await times.allInnerTexts()) assert.match(text, /^\d{4}-\d\d-\d\d (Mon|Tue) 03:30$/);
    await page.getByRole('button', { name: 'Save cron' }).click();
    await page.getByRole('heading', { name: 'Cron: nightly release' }).waitFor();
    await times.nth(9).waitFor();
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByText('The scheduler fires it next at:').waitFor();
    await screenshot(page, 'cron');
    await page.goto(`${server.url}${base}/crons`);
    await page.getByRole('switch', { name: 'Cron nightly release on' }).waitFor();
    await screenshot(page, 'crons');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('saving a template keeps what the editor does not show; a zone being typed is an error, not a crash', async () => {
    const script = await call<{ script_id: string; id: number }>('create_script', {
      name: 'pinned',
      script_language: 1,
      content: b64('echo one'),
      version: 'v1',
    });
    await call('publish_script_version', { script_id: script.script_id, script_version_id: script.id });
    const v2 = await call<{ id: number }>('create_script_version', {
      script_id: script.script_id,
      content: b64('echo two'),
      version: 'v2',
    });
    await call('publish_script_version', { script_id: script.script_id, script_version_id: v2.id });
    const set = await admin<{ id: number }>(server.url, server.adminToken, 'POST', '/topology/sets', {
      bk_biz_id: BIZ,
      name: 'edge',
    });
    assert.equal(set.result, true, set.message);
    const account = { alias: fleet.account };
    const [first, second] = [...fleet.hostIds.values()];
    const created = await call<{ id: number }>('create_job_template', {
      name: 'kept as it was',
      step_list: [
        {
          name: 'pinned step',
          type: 1,
          script_info: {
            script_type: 2,
            script_id: script.script_id,
            script_version_id: script.id,
            account,
            server: { host_id_list: [first], topo_node_list: [{ id: set.data.id, node_type: 'set' }] },
          },
        },
        {
          name: 'two sources',
          type: 2,
          file_info: {
            file_source_list: [
              { file_list: ['/etc/hostname'], account, server: { host_id_list: [first] } },
              { file_list: ['/etc/hosts'], account, server: { host_id_list: [second] } },
            ],
            file_destination: { path: '/tmp/kept/', account, server: { host_id_list: [second] } },
          },
        },
      ],
    });
    type Detail = { name: string; step_list: Record<string, unknown>[] };
    const before = await call<Detail>('get_job_template_detail', { job_template_id: created.id });
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/templates/${created.id}`);
    await page.getByLabel('Name', { exact: true }).first().fill('kept as it was, renamed');
    await page.getByRole('button', { name: 'Save template' }).click();
    let after: Detail | undefined;
    for (let i = 0; i < 100 && after?.name !== 'kept as it was, renamed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await call<Detail>('get_job_template_detail', { job_template_id: created.id });
    }
    assert.equal(after?.name, 'kept as it was, renamed');
    assert.deepEqual(after?.step_list, before.step_list);

    // A zone typed letter by letter: an error under the field, the page and the form stay.
    await page.goto(`${server.url}${base}/crons/new`);
    await page.getByLabel('Name', { exact: true }).fill('zone typed');
    await page.getByRole('combobox', { name: 'Time zone' }).fill('Europe/Berl');
    await page.getByText('Europe/Berl is not a time zone the browser knows').waitFor();
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'zone typed');
    assert.equal(await page.getByRole('button', { name: 'Save cron' }).isDisabled(), true);
    await page.getByRole('combobox', { name: 'Time zone' }).fill('Europe/Berlin');
    await page.getByText('Runs in Europe/Berlin').waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('a viewer sees no run, launch or edit button, and the API refuses them anyway', async () => {
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'vera', veraPassword);
    await page.goto(`${server.url}${base}/plans/${planId}`);
    await page.getByRole('heading', { name: 'Job plan: release all' }).waitFor();
    await page.getByLabel(/greeting/).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Launch' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Delete plan' }).count(), 0);
    // A narrow window: the page reflows, nothing wider than the window but the tables' own scroll.
    await page.setViewportSize({ width: 480, height: 800 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
    await screenshot(page, 'plan-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${server.url}${base}/hosts`);
    await page.getByText('2 agents OK').waitFor();
    assert.equal(await page.getByRole('button', { name: /Run a script/ }).count(), 0);
    await page.goto(`${server.url}${base}/scripts`);
    await page.getByRole('link', { name: 'rotate-logs' }).click();
    await page.getByRole('heading', { name: /rotate-logs/ }).waitFor();
    for (const name of ['Publish', 'Disable', 'Save as new version', 'Delete script'])
      assert.equal(await page.getByRole('button', { name }).count(), 0, name);
    assert.equal(
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Run script' }).count(),
      0,
    );

    // Straight to the API with the viewer's own session: refused with the role it lacks.
    const refused = await page.evaluate(async (id) => {
      const me = (await (await fetch('/api/auth/me')).json()) as { data: { csrf_token: string } };
      const res = await fetch('/api/v3/execute_job_plan', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.data.csrf_token },
        body: JSON.stringify({ bk_scope_type: 'biz', bk_scope_id: '2', job_plan_id: id }),
      });
      return (await res.json()) as { result: boolean; code: number; message: string };
    }, planId);
    assert.equal(refused.result, false);
    assert.equal(refused.code, 1238014);
    assert.match(refused.message, /operator/);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('the fleet table, run on selection, a dangerous rule tried, and the platform pages', async () => {
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/hosts`);
    await page.getByText('2 agents OK').waitFor();
    await page.getByLabel('Select every host shown').check();
    // A filter that hides a selected host: the button counts what it hands over.
    await page.getByLabel('Address or name contains').fill('127.0.0.2');
    await page.getByRole('button', { name: 'Run a script on 1 selected' }).waitFor();
    await page.getByLabel('Address or name contains').fill('');
    await screenshot(page, 'hosts');
    await page.getByRole('button', { name: 'Run a script on 2 selected' }).click();
    await page.waitForURL(new RegExp(`${base}/run/script$`));
    // The run-script page opens with the selected hosts as its targets.
    assert.deepEqual(
      (await page.getByRole('textbox', { name: /^Targets/ }).inputValue()).split('\n').sort(),
      ['127.0.0.2', '127.0.0.3'],
    );

    await page.goto(`${server.url}/dangerous-rules`);
    await page.getByLabel('Expression').fill('rm\\s+-rf\\s+/');
    await page.getByLabel('Description').fill('wipes the disk');
    await page.getByLabel('Action').selectOption('2');
    await page.getByRole('button', { name: 'Create and turn on' }).click();
    await page
      .getByRole('row')
      .filter({ hasText: 'wipes the disk' })
      .getByText('on', { exact: true })
      .waitFor();
    await typeInEditor(page, 'Script to try against the rules', 'cd /tmp\nrm -rf /\n');
    await page.getByText('Line 2:').waitFor();
    await screenshot(page, 'dangerous-rules');

    for (const [path, heading, name] of [
      [`${base}/accounts`, 'Accounts', 'accounts'],
      [`${base}/templates`, 'Job templates', 'templates'],
      ['/admin/users', 'Users and roles', 'users'],
      ['/admin/apps', 'Apps', 'apps'],
      ['/admin/audit', 'Audit log', 'audit'],
    ] as const) {
      await page.goto(`${server.url}${path}`);
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      await page.locator('.data-table tbody tr').first().waitFor();
      await screenshot(page, name);
    }
    await page.goto(`${server.url}/tokens`);
    await page.getByLabel('Name', { exact: true }).fill('laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    assert.match(await page.locator('.token-value').innerText(), /^jft_/);
    await page.getByRole('button', { name: 'Revoke token laptop' }).waitFor();
    await screenshot(page, 'tokens');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('pickers read every page of a large scope; the cron list pages and filters by name', async () => {
    // 1,001 plans, newest first: the first plan is one past the 1,000 a list answers a page.
    for (let i = 0; i < 1000; i += 25)
      await Promise.all(
        Array.from({ length: 25 }, (_, k) =>
          call('create_job_plan', { job_template_id: templateId, name: `extra ${i + k}` }),
        ),
      );
    for (let i = 0; i < 51; i++)
      await call('save_cron', { job_plan_id: planId, name: `cron ${i}`, expression: '0 4 * * *' });
    const { page, context, errors } = await newPage(browser);
    await signIn(page, server.url, 'ada', adaPassword);
    await page.goto(`${server.url}${base}/crons/new`);
    const picker = page.getByRole('combobox', { name: /^Job plan/ });
    await picker.locator(`option[value="${planId}"]`).waitFor({ state: 'attached' });
    await picker.selectOption(String(planId));
    await page.goto(`${server.url}${base}/crons`);
    const rows = page.locator('.data-table tbody tr');
    const { total } = await call<{ total: number }>('get_cron_list', { length: 1 });
    // Newest first, 50 a page: "cron 0" (and any earlier test's cron) is on the second.
    await page.getByRole('link', { name: 'cron 50' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'cron 0', exact: true }).count(), 0);
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('button', { name: 'Next' }).click();
    await page.getByRole('link', { name: 'cron 0', exact: true }).waitFor();
    assert.equal(await rows.count(), total - 50);
    await page.getByRole('searchbox', { name: 'Name contains' }).fill('cron 4');
    await page.getByRole('link', { name: 'cron 49' }).waitFor();
    await page.getByRole('navigation', { name: 'Pages' }).waitFor({ state: 'detached' });
    assert.equal(await rows.count(), 11); // cron 4 and cron 40 … cron 49
    assert.deepEqual(errors, []);
    await context.close();
  });
});
