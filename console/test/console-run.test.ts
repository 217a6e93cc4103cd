/**
 * Running a script from the console on three real agents and watching it live: the target
 * picker flags an unknown address, the dangerous-command check warns while typing, the step
 * result fills in from the event stream (groups, counts, ANSI colours), a running host's log is
 * followed by offset (shown once however the selection moves, downloaded whole), and retrying the
 * failed host makes a second attempt.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
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

const { startFleet, runScript, b64, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;
const { get, eventually } = serverHelpers.api;

const SCRIPT = [
  'printf "\\033[32mgreen on %s\\033[0m\\n" "$TEST_AGENT_IP"',
  'for i in 1 2 3; do echo "line $i"; sleep 0.2; done',
  '[ "$TEST_AGENT_IP" = 127.0.0.4 ] && { echo "failing on purpose" >&2; exit 3; }',
  'exit 0',
].join('\n');

describe('console: run a script and follow it', () => {
  let fleet: Fleet;
  let browser: Browser;
  let page: Page;
  let url: string;

  /** Runs a shell script on hosts by ip; the job's ids. */
  async function run(script: string, ips: string[], extra: Record<string, unknown> = {}) {
    const job = await runScript(fleet, {
      script_content: b64(script),
      target_server: { ip_list: ips.map((ip) => ({ bk_cloud_id: 0, ip })) },
      ...extra,
    });
    assert.ok(job.result, job.message);
    return job.data;
  }

  before(async () => {
    fleet = await startFleet('sqlite', 3);
    url = fleet.server.url;
    const server = { url, adminToken: fleet.server.adminToken };
    const password = await createUser(server, 'opal', { role: 'operator', bizId: BIZ });
    const rule = await serverHelpers.api.admin(
      url,
      fleet.server.adminToken,
      'POST',
      '/v3/create_dangerous_rule',
      {
        expression: 'rm -rf /',
        script_language_list: [1],
        description: 'removes everything',
        action: 1,
      },
    );
    assert.ok(rule.result, rule.message);
    const enabled = await serverHelpers.api.admin(
      url,
      fleet.server.adminToken,
      'POST',
      '/v3/enable_dangerous_rule',
      {
        id: (rule.data as { id: number }).id,
      },
    );
    assert.ok(enabled.result, enabled.message);
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    await signIn(page, url, 'opal', password);
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  test('run on three agents and watch the result arrive live', () =>
    screenshotOnFailure(page, 'run', async () => {
      await page.goto(`${url}/biz/${BIZ}/run/script`);
      const script = page.getByLabel('Script', { exact: true });
      await script.fill('rm -rf /tmp/nothing-here\n');
      await page.getByRole('alert').filter({ hasText: 'dangerous-command rules' }).waitFor();
      await script.fill(SCRIPT);
      await page
        .getByRole('alert')
        .filter({ hasText: 'dangerous-command rules' })
        .waitFor({ state: 'detached' });

      await page.getByLabel('Targets', { exact: true }).fill('127.0.0.2\n127.0.0.[3-4]\n10.99.99.99');
      await page.getByText('3 hosts: 3 agents normal, 0 abnormal · 1 unknown').waitFor();
      await page
        .getByRole('list', { name: 'Entries that are not targets' })
        .getByText('10.99.99.99')
        .waitFor();
      await screenshot(page, 'run-script');

      await page.getByRole('button', { name: 'Run on 3 hosts' }).click();
      await page.waitForURL(/\/jobs\/\d+\/steps\/\d+$/);
      const tabs = page.getByRole('tablist', { name: 'Host groups by status' });
      await tabs.getByRole('tab', { name: /Success\s*2/ }).waitFor({ timeout: 30_000 });
      await tabs.getByRole('tab', { name: /Non-zero exit\s*1/ }).waitFor();
      await page.getByText('Failed', { exact: true }).first().waitFor();

      // The failed group comes first; its log has the host's output.
      const log = page.getByRole('log');
      await log.getByText('failing on purpose').waitFor();
      await tabs.getByRole('tab', { name: /Success/ }).click();
      const green = log.getByText(/green on 127\.0\.0\.[23]/);
      await green.waitFor();
      assert.equal(await green.evaluate((el) => getComputedStyle(el).color), 'rgb(0, 187, 0)');
      await screenshot(page, 'step-result');

      // Retry the failed host: a second attempt, where the others are kept as "last success".
      await tabs.getByRole('tab', { name: /Non-zero exit/ }).click();
      await page.getByRole('button', { name: 'Retry failed hosts' }).click();
      await tabs.getByRole('tab', { name: /Last success\s*2/ }).waitFor({ timeout: 30_000 });
      await tabs.getByRole('tab', { name: /Non-zero exit\s*1/ }).waitFor({ timeout: 30_000 });
      const attempt = page.getByLabel('Attempt');
      assert.equal(await attempt.locator('option').count(), 3, 'latest, attempt 1, attempt 2');
      await attempt.selectOption({ label: 'attempt 1' });
      await tabs.getByRole('tab', { name: /Success\s*2/ }).waitFor();
    }));

  test("follow a running host's log by offset", async () => {
    const job = await run('for i in $(seq 1 12); do echo "tick $i"; sleep 0.5; done', ['127.0.0.2']);
    const logReads: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('get_job_instance_ip_log')) logReads.push(r.url());
    });
    await page.goto(`${url}/biz/${BIZ}/jobs/${job.job_instance_id}/steps/${job.step_instance_id}`);
    const log = page.getByRole('log');
    await log.getByText('tick 2', { exact: true }).waitFor();
    // Still running while the log grows.
    await page.getByRole('tab', { name: /Running\s*1/ }).waitFor();
    await log.getByText('tick 12', { exact: true }).waitFor({ timeout: 30_000 });
    await page.getByRole('tab', { name: /Success\s*1/ }).waitFor();
    const offsets = logReads.map((u) => Number(new URL(u).searchParams.get('log_offset')));
    assert.ok(offsets.length >= 2, `followed in several reads: ${offsets.join(',')}`);
    assert.ok(
      offsets.every((o, i) => i === 0 || o >= (offsets[i - 1] ?? 0)),
      `reads go forward, never the whole log again: ${offsets.join(',')}`,
    );
    assert.ok((offsets[offsets.length - 1] ?? 0) > 0);
    assert.equal(await log.getByText(/^tick \d+$/).count(), 12, 'each line once');
  });

  test('switching hosts while their logs load shows each log once', async () => {
    const job = await run('echo "log of $TEST_AGENT_IP"; echo "its last line"', ['127.0.0.2', '127.0.0.3']);
    await page.goto(`${url}/biz/${BIZ}/jobs/${job.job_instance_id}/steps/${job.step_instance_id}`);
    await page.getByRole('tab', { name: /Success\s*2/ }).waitFor({ timeout: 30_000 });
    const log = page.getByRole('log');
    const row = (ip: string) => page.locator('button.host-row', { hasText: ip });
    await row('127.0.0.3').click();
    await log.getByText('log of 127.0.0.3').waitFor();

    // Every log read answers late, so each click lands while the read of the one before is out.
    let pending = 0;
    const slow = '**/get_job_instance_ip_log?*';
    await page.route(slow, async (route) => {
      pending++;
      try {
        const response = await route.fetch();
        await new Promise((r) => setTimeout(r, 700));
        await route.fulfill({ response });
      } finally {
        pending--;
      }
    });
    try {
      await row('127.0.0.2').click();
      await row('127.0.0.3').click();
      await row('127.0.0.2').click();
      await log.getByText('log of 127.0.0.2').waitFor();
      for (let i = 0; pending > 0 && i < 100; i++) await page.waitForTimeout(50);
      assert.equal(pending, 0, 'every delayed read came back');
      await page.waitForTimeout(300); // for the page to take the last of them
      assert.equal(await log.getByText('log of 127.0.0.2').count(), 1, 'the log once, not twice');
      assert.equal(await log.getByText('its last line').count(), 1);
      assert.equal(await log.getByText('log of 127.0.0.3').count(), 0);
    } finally {
      await page.unroute(slow);
    }
  });

  test("a running host's log downloaded holds what it printed since the panel last read", async () => {
    const { job_instance_id: jobId, step_instance_id: stepId } = await run(
      'echo "shown line"; sleep 2; echo "unread line"; sleep 6',
      ['127.0.0.2'],
    );
    await page.goto(`${url}/biz/${BIZ}/jobs/${jobId}/steps/${stepId}`);
    const log = page.getByRole('log');
    await log.getByText('shown line').waitFor();

    // The panel's reads fail until the download, so the second line is stored but not shown.
    let reads: 'fail' | 'pass' = 'fail';
    const logReads = '**/get_job_instance_ip_log?*';
    await page.route(logReads, (route) => (reads === 'pass' ? route.continue() : route.abort()));
    try {
      await eventually(async () => {
        const r = await get<{ log_content: string | null }>(
          url,
          'get_job_instance_ip_log',
          {
            ...fleet.scope,
            job_instance_id: jobId,
            step_instance_id: stepId,
            bk_cloud_id: 0,
            ip: '127.0.0.2',
          },
          fleet.creds,
        );
        return r.data.log_content?.includes('unread line') ? true : undefined;
      }, 15_000);
      assert.equal(await log.getByText('unread line').count(), 0);
      reads = 'pass';
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Download', exact: true }).click(),
      ]);
      const file = await download.path();
      assert.equal(fs.readFileSync(file, 'utf8'), 'shown line\nunread line\n');
    } finally {
      await page.unroute(logReads);
    }
  });

  test('deep links, job page, history filters in the URL, overview', async () => {
    const { job_instance_id: jobId, step_instance_id: stepId } = await run('echo linked', ['127.0.0.3'], {
      task_name: 'deep link check',
    });
    await page.goto(`${url}/api_execute_step/${jobId}/${stepId}`);
    await page.waitForURL(new RegExp(`/biz/${BIZ}/jobs/${jobId}/steps/${stepId}$`));
    await page.getByRole('log').getByText('linked', { exact: true }).waitFor();
    await page.goto(`${url}/api_execute/${jobId}`);
    await page.waitForURL(new RegExp(`/biz/${BIZ}/jobs/${jobId}$`));
    await page.getByRole('heading', { name: 'deep link check' }).waitFor();
    await page.getByRole('link', { name: /Step 1\/1/ }).waitFor();
    await screenshot(page, 'job');

    await page.goto(`${url}/biz/${BIZ}/jobs?status=4`);
    const table = page.getByRole('table');
    await table
      .getByRole('link', { name: /Script Execution_/ })
      .first()
      .waitFor();
    assert.equal(await table.getByRole('link', { name: 'deep link check' }).count(), 0, 'only failed jobs');
    await page.getByLabel('Status').selectOption({ label: 'All' });
    await page.waitForURL((u) => !u.searchParams.has('status'));
    await table.getByRole('link', { name: 'deep link check' }).waitFor();
    await page.getByLabel('Name').fill('deep link');
    await page.getByLabel('Name').press('Enter');
    await page.waitForURL((u) => u.searchParams.get('name') === 'deep link');
    await screenshot(page, 'history');

    await page.goto(`${url}/biz/${BIZ}`);
    await page.getByText(/3\s+normal/).waitFor();
    await screenshot(page, 'overview');
  });
});
