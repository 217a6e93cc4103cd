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

      await page.getByRole('button', { name: 'File transfers' }).click();
      const panel = page.getByRole('region', { name: 'File transfers' });
      await panel.getByRole('cell', { name: 'Done' }).first().waitFor();
      await panel.getByRole('cell', { name: '100%' }).first().waitFor();
      await panel
        .getByRole('cell', { name: /\/srv\/drop\/payload\.bin/ })
        .first()
        .waitFor();
      await screenshot(page, 'step-file-transfers');
    }));
});
