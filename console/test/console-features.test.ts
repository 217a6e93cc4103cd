/**
 * Launch features of the console against real agents: a business script from the library run by
 * its online version, a failed host retried from the page and the retry in the job's operation
 * records, every host's log exported as one archive; a local file uploaded from the page (an
 * oversized one refused with its code) and pushed to two agents, checked on their disks and in
 * the step's file-transfer panel.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import {
  createUser,
  launchBrowser,
  newPage,
  screenshot,
  screenshotOnFailure,
  serverHelpers,
  signIn,
} from './helpers/browser.js';

const { startFleet, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;
const { post } = serverHelpers.api;

const UPLOAD_LIMIT = 64 * 1024;
/** Fails on 127.0.0.3 until `marker` exists, so that a retry of that host succeeds. */
const libraryScript = (marker: string) =>
  [
    'echo "library version 2 on $TEST_AGENT_IP"',
    `[ "$TEST_AGENT_IP" = 127.0.0.3 ] && [ ! -e '${marker}' ] && exit 3`,
    'exit 0',
  ].join('\n');

describe('console: library scripts, local uploads and step panels', () => {
  let fleet: Fleet;
  let browser: Browser;
  let page: Page;
  let url: string;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'jf-console-features-'));
  const marker = path.join(work, 'retry-ok');

  before(async () => {
    fleet = await startFleet('sqlite', 3, {
      fileRoots: true,
      env: { JOBFLEET_UPLOAD_MAX_BYTES: String(UPLOAD_LIMIT) },
    });
    url = fleet.server.url;
    const password = await createUser({ url, adminToken: fleet.server.adminToken }, 'lina', {
      role: 'operator',
      bizId: BIZ,
    });
    // A script with a draft version 1 and an online version 2: the page must run version 2.
    const made = await post<{ script_id: string }>(
      url,
      'create_script',
      {
        ...fleet.scope,
        name: 'report host',
        script_language: 1,
        version: 'v1',
        content: Buffer.from('echo "draft version 1"').toString('base64'),
      },
      fleet.creds,
    );
    assert.ok(made.result, made.message);
    const v2 = await post<{ id: number }>(
      url,
      'create_script_version',
      {
        ...fleet.scope,
        script_id: made.data.script_id,
        version: 'v2',
        content: Buffer.from(libraryScript(marker)).toString('base64'),
      },
      fleet.creds,
    );
    assert.ok(v2.result, v2.message);
    const published = await post(
      url,
      'publish_script_version',
      { ...fleet.scope, script_id: made.data.script_id, script_version_id: v2.data.id },
      fleet.creds,
    );
    assert.ok(published.result, published.message);
    const { admin } = serverHelpers.api;
    const win = await admin(url, fleet.server.adminToken, 'POST', '/accounts', {
      bk_biz_id: BIZ,
      alias: 'winadmin',
      os_user: 'Administrator',
      os_type: 'windows',
    });
    assert.ok(win.result, win.message);
    const system = await admin<{ accounts: { id: number; alias: string }[] }>(
      url,
      fleet.server.adminToken,
      'GET',
      `/accounts?bk_biz_id=${BIZ}`,
    );
    const db = await post(
      url,
      'create_account',
      {
        ...fleet.scope,
        account: 'reader',
        alias: 'mysql-reader',
        type: 9,
        category: 2,
        db_password: 'pw-reader-123',
        db_port: 3306,
        db_system_account_id: system.data.accounts.find((a) => a.alias === fleet.account)?.id,
      },
      fleet.creds,
    );
    assert.ok(db.result, db.message);
    const pub = await admin<{ script_id: string; id: number }>(
      url,
      fleet.server.adminToken,
      'POST',
      '/v3/create_public_script',
      {
        name: 'public hello',
        script_language: 4,
        version: '1.0',
        content: Buffer.from('print("hello from the public library")').toString('base64'),
      },
    );
    assert.ok(pub.result, pub.message);
    const pubOnline = await admin(url, fleet.server.adminToken, 'POST', '/v3/publish_public_script_version', {
      script_id: pub.data.script_id,
      script_version_id: pub.data.id,
    });
    assert.ok(pubOnline.result, pubOnline.message);
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    await signIn(page, url, 'lina', password);
  });
  after(async () => {
    await browser?.close();
    await stopAll();
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('run a business script by its online version, retry, records, export', () =>
    screenshotOnFailure(page, 'features-library', async () => {
      await page.goto(`${url}/biz/${BIZ}/run/script`);
      // Bat and PowerShell run on Windows hosts: only Windows accounts are offered for them.
      const account = page.getByLabel('Run as account');
      await page.getByRole('radio', { name: 'PowerShell' }).check();
      await account.locator('option', { hasText: 'winadmin (Administrator)' }).waitFor({ state: 'attached' });
      assert.equal(await account.locator('option').count(), 1);
      await page.getByRole('radio', { name: 'Shell', exact: true }).check();
      await account
        .locator('option', { hasText: `${fleet.account} (${fleet.account})` })
        .waitFor({ state: 'attached' });
      assert.equal(await account.locator('option').count(), 1);

      // SQL runs as a database account (fast_execute_sql), without parameters or rolling.
      await page.getByRole('radio', { name: 'SQL' }).check();
      await account.locator('option', { hasText: 'mysql-reader (reader)' }).waitFor({ state: 'attached' });
      assert.equal(await account.locator('option').count(), 1);
      assert.equal(await page.getByLabel('Script parameters').count(), 0);
      await page.getByRole('radio', { name: 'Shell', exact: true }).check();

      await page.getByRole('radio', { name: 'Public script' }).check();
      await page.getByLabel('Library script').selectOption({ label: 'public hello' });
      await page.getByText('Online version 1.0 (Python), read-only:').waitFor();
      await page.getByText('hello from the public library').waitFor();

      await page.getByRole('radio', { name: 'Business script' }).check();
      await page.getByLabel('Library script').selectOption({ label: 'report host' });
      await page.getByText('Online version v2 (Shell), read-only:').waitFor();
      await page.getByText('library version 2 on').first().waitFor();
      await page.getByLabel('Targets', { exact: true }).fill('127.0.0.2\n127.0.0.3');
      await page.getByText('2 hosts: 2 agents normal').waitFor();
      await screenshot(page, 'run-library-script');
      await page.getByRole('button', { name: 'Run on 2 hosts' }).click();
      await page.waitForURL(/\/jobs\/\d+\/steps\/\d+$/);
      const tabs = page.getByRole('tablist', { name: 'Host groups by status' });
      await tabs.getByRole('tab', { name: /Non-zero exit\s*1/ }).waitFor({ timeout: 30_000 });
      await tabs.getByRole('tab', { name: /Success\s*1/ }).click();
      await page.getByRole('log').getByText('library version 2 on 127.0.0.2').waitFor();

      // The failing host succeeds on its retry (the marker file lets it pass).
      fs.writeFileSync(marker, '');
      await tabs.getByRole('tab', { name: /Non-zero exit/ }).click();
      await page.getByRole('button', { name: 'Retry failed hosts' }).click();
      await tabs.getByRole('tab', { name: /Last success\s*1/ }).waitFor({ timeout: 30_000 });

      await page.getByRole('button', { name: 'Operation records' }).click();
      const records = page.getByRole('region', { name: 'Operation records' });
      await records.getByRole('cell', { name: /^Launched/ }).waitFor();
      await records.getByRole('cell', { name: 'Retry failed hosts' }).waitFor();
      await records.getByRole('cell', { name: 'lina' }).first().waitFor();
      await screenshot(page, 'step-operation-records');

      await page.getByRole('button', { name: 'Variables' }).click();
      await page.getByText('This job has no global variables').waitFor();

      await page.getByRole('button', { name: 'Export logs' }).click();
      const link = page.getByRole('link', { name: 'Download all logs' });
      await link.waitFor();
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      assert.match(download.suggestedFilename(), /^job-\d+-step-\d+-attempt-2-logs\.tar\.gz$/);
      const file = path.join(work, 'logs.tar.gz');
      await download.saveAs(file);
      const tarBytes = zlib.gunzipSync(fs.readFileSync(file)).toString('latin1');
      for (const ip of ['127.0.0.2', '127.0.0.3']) {
        assert.match(tarBytes, new RegExp(`${ip.replace(/\./g, '\\.')}_\\d+\\.log`));
        assert.ok(tarBytes.includes(`library version 2 on ${ip}`), `log of ${ip} in the archive`);
      }
      assert.ok(tarBytes.includes('hosts.tsv'));
    }));

  test('push a local file to two agents and see its transfers', () =>
    screenshotOnFailure(page, 'features-upload', async () => {
      await page.goto(`${url}/biz/${BIZ}/run/file`);
      const picker = page.getByLabel('Choose files to upload');
      // Over the server's limit: refused with the code the API gives.
      await picker.setInputFiles({
        name: 'too-big.bin',
        mimeType: 'application/octet-stream',
        buffer: Buffer.alloc(UPLOAD_LIMIT + 1024, 1),
      });
      await page.getByRole('alert').filter({ hasText: 'Error 1243015' }).waitFor();
      await page.getByRole('button', { name: 'Remove too-big.bin' }).click();

      const body = crypto.randomBytes(20_000);
      await picker.setInputFiles({ name: 'payload.bin', mimeType: 'application/octet-stream', buffer: body });
      await page.getByText('payload.bin: uploaded (20 KB)').waitFor();
      await page.getByRole('textbox', { name: /^Target directory/ }).fill('/srv/drop/');
      await page.getByLabel('Targets', { exact: true }).last().fill('127.0.0.3\n127.0.0.4');
      await page.getByText('2 hosts: 2 agents normal').waitFor();
      await screenshot(page, 'push-file-upload');
      await page.getByRole('button', { name: 'Push to 2 hosts' }).click();
      await page.waitForURL(/\/jobs\/\d+\/steps\/\d+$/);
      const tabs = page.getByRole('tablist', { name: 'Host groups by status' });
      await tabs.getByRole('tab', { name: /Success\s*2/ }).waitFor({ timeout: 30_000 });
      for (const ip of ['127.0.0.3', '127.0.0.4']) {
        const onDisk = fs.readFileSync(path.join(fleet.fileRoots.get(ip) ?? '', 'srv/drop/payload.bin'));
        assert.ok(onDisk.equals(body), `payload.bin on ${ip}`);
      }

      // A file step opens on its transfers.
      const panel = page.getByRole('region', { name: 'File transfers' });
      await panel.getByRole('cell', { name: 'Done' }).first().waitFor();
      await panel.getByRole('cell', { name: '100%' }).first().waitFor();
      await panel
        .getByRole('cell', { name: /\/srv\/drop\/payload\.bin/ })
        .first()
        .waitFor();
      await screenshot(page, 'step-file-transfers');
    }));

  test("a plan job's variables at launch, the cipher masked", () =>
    screenshotOnFailure(page, 'features-variables', async () => {
      const account = { alias: fleet.account };
      const call = async <T>(name: string, body: Record<string, unknown>) => {
        const r = await post<T>(url, name, { ...fleet.scope, ...body }, fleet.creds);
        assert.ok(r.result, `${name}: ${r.message}`);
        return r.data;
      };
      const tpl = await call<{ id: number }>('create_job_template', {
        name: 'greet',
        global_var_list: [
          { name: 'greeting', type: 1, value: 'hello' },
          { name: 'token', type: 4, value: 'never-shown-Zr9' },
        ],
        step_list: [
          {
            name: 'say it',
            type: 1,
            script_info: {
              script_content: Buffer.from('echo "$greeting"').toString('base64'),
              script_language: 1,
              account,
              server: { host_id_list: [fleet.hostIds.get('127.0.0.2')] },
            },
          },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', { job_template_id: tpl.id, name: 'greet' });
      const run = await call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: plan.id,
        global_var_list: [{ name: 'greeting', value: 'hi there' }],
      });
      await page.goto(`${url}/api_execute/${run.job_instance_id}`);
      // The job page has the job's own panels.
      await page.getByRole('button', { name: 'Operation records' }).click();
      await page
        .getByRole('region', { name: 'Operation records' })
        .getByRole('cell', { name: /^Launched/ })
        .waitFor();
      await page
        .getByRole('link', { name: /say it/ })
        .first()
        .click();
      // The job page has a Variables button too: click the step page's, once it is there.
      await page.waitForURL(/\/steps\/\d+$/);
      await page.getByRole('heading', { name: /say it/ }).waitFor();
      await page.getByRole('button', { name: 'Variables' }).click();
      const panel = page.getByRole('region', { name: 'Variables' });
      await panel.getByRole('cell', { name: 'hi there' }).waitFor();
      await panel.getByRole('cell', { name: '******' }).waitFor();
      assert.ok(!(await page.content()).includes('never-shown-Zr9'));
      await screenshot(page, 'step-variables');
    }));
});
