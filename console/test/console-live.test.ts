/**
 * What the console shows while things change under it, on three real agents: the overview's
 * tiles count every running and failed status; the target picker leaves nothing to launch on
 * until the text on screen is resolved; a host's last lines show even when they were announced
 * during a read; a reply overtaken by a newer filter is dropped; and a failed event stream falls
 * back to polling, or to the sign-in page when the session ended elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import {
  createUser,
  launchBrowser,
  newPage,
  screenshotOnFailure,
  serverHelpers,
  signIn,
} from './helpers/browser.js';

const { startFleet, runScript, operateJob, jobStatus, waitFinished, b64, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;
const { post, eventually } = serverHelpers.api;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The envelope a stream's reconnect gets once it is refused (not a stream: EventSource gives up). */
const REFUSED_STREAM = {
  status: 200,
  contentType: 'application/json',
  body: JSON.stringify({ result: false, code: 1240002, message: 'refused in this test', data: null }),
};

describe('console: live pages', () => {
  let fleet: Fleet;
  let browser: Browser;
  let page: Page;
  let url: string;
  let password: string;
  const base = () => `${url}/biz/${BIZ}`;

  const call = async <T>(name: string, body: Record<string, unknown>): Promise<T> => {
    const r = await post<T>(url, name, { ...fleet.scope, ...body }, fleet.creds);
    assert.ok(r.result, `${name}: ${r.message}`);
    return r.data;
  };

  async function run(script: string, ips: string[], extra: Record<string, unknown> = {}) {
    const job = await runScript(fleet, {
      script_content: b64(script),
      target_server: { ip_list: ips.map((ip) => ({ bk_cloud_id: 0, ip })) },
      ...extra,
    });
    assert.ok(job.result, job.message);
    return job.data;
  }

  async function waitStatus(jobId: number, status: number) {
    await eventually(
      async () => ((await jobStatus(fleet, jobId)).job_instance.status === status ? true : undefined),
      20_000,
      `job ${jobId} at status ${status}`,
    );
  }

  before(async () => {
    fleet = await startFleet('sqlite', 3);
    url = fleet.server.url;
    password = await createUser({ url, adminToken: fleet.server.adminToken }, 'lena', {
      role: 'operator',
      bizId: BIZ,
    });
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    await signIn(page, url, 'lena', password);
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  test('the overview counts jobs waiting for a person and every way of failing', () =>
    screenshotOnFailure(page, 'live-overview', async () => {
      // A plan that stops at a confirmation: one job left waiting (7), one refused (13).
      const template = await call<{ id: number }>('create_job_template', {
        name: 'gate',
        step_list: [
          {
            name: 'approve',
            type: 3,
            approval_info: { approval_user: { user_list: ['tester'] }, approval_message: 'go on?' },
          },
        ],
      });
      const plan = await call<{ id: number }>('create_job_plan', {
        job_template_id: template.id,
        name: 'gate',
      });
      const waiting = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.id });
      const refused = await call<{ job_instance_id: number }>('execute_job_plan', { job_plan_id: plan.id });
      await waitStatus(waiting.job_instance_id, 7);
      await waitStatus(refused.job_instance_id, 7);
      const gate = (await jobStatus(fleet, refused.job_instance_id)).step_instance_list[0]?.step_instance_id;
      await call('operate_step_instance', {
        job_instance_id: refused.job_instance_id,
        step_instance_id: gate,
        operation_code: 9,
      });
      await waitStatus(refused.job_instance_id, 13);
      // One running (2), one stopped (11), one failed (4).
      const running = await run('sleep 120', ['127.0.0.2']);
      const stopped = await run('sleep 120', ['127.0.0.3']);
      const failed = await run('exit 3', ['127.0.0.4']);
      await waitStatus(running.job_instance_id, 2);
      await waitStatus(stopped.job_instance_id, 2);
      assert.ok((await operateJob(fleet, stopped.job_instance_id, 1)).result);
      await waitStatus(stopped.job_instance_id, 11);
      await waitStatus(failed.job_instance_id, 4);

      await page.goto(base());
      const tile = (name: string) => page.getByRole('region', { name }).locator('.big');
      await page.getByText(/3\s+normal/).waitFor();
      await eventually(
        async () => ((await tile('Running now').textContent())?.trim() === '2' ? true : undefined),
        10_000,
        'running: the job waiting for its confirmation and the running one',
      );
      await eventually(
        async () =>
          (await tile('Failed in the last 24 hours').textContent())?.trim() === '3' ? true : undefined,
        10_000,
        'failed: refused, stopped and failed',
      );
      const runningList = page.getByRole('region', { name: 'Running now' });
      await runningList.getByText('Waiting for confirmation').waitFor();

      // Nothing left running for the tests that follow.
      assert.ok((await operateJob(fleet, running.job_instance_id, 1)).result);
      assert.ok((await operateJob(fleet, waiting.job_instance_id, 1)).result);
      await waitFinished(fleet, running.job_instance_id);
      await waitFinished(fleet, waiting.job_instance_id);
    }));

  test('the target picker leaves nothing to launch on until the text on screen is resolved', () =>
    screenshotOnFailure(page, 'live-targets', async () => {
      await page.goto(`${base()}/run/script`);
      // (Its accessible name takes in what it holds, so it is found by place, not by label.)
      const targets = page.locator('.target-picker textarea');
      const launch = page.locator('form.run-form button[type="submit"]');
      await targets.fill('127.0.0.2\n127.0.0.3');
      await page.getByRole('button', { name: 'Run on 2 hosts' }).waitFor();
      assert.equal(await launch.isEnabled(), true);

      // A slow resolution: from the edit until its answer, the host just removed is not launchable.
      const resolve = '**/api/v3/resolve_hosts';
      let hold = true;
      await page.route(resolve, async (route) => {
        while (hold) await sleep(50);
        await route.continue().catch(() => undefined);
      });
      await targets.fill('127.0.0.2');
      assert.equal(await launch.isDisabled(), true, 'disabled from the edit on');
      await page.getByText('Resolving…').waitFor();
      await sleep(800);
      assert.equal(await launch.isDisabled(), true, 'disabled while resolving');
      hold = false;
      await page.getByRole('button', { name: 'Run on 1 hosts' }).waitFor();
      assert.equal(await launch.isEnabled(), true);

      // A failed resolution keeps it disabled, says so, and can be tried again.
      await page.unroute(resolve);
      await page.route(resolve, (route) => route.abort());
      await targets.fill('127.0.0.3');
      await page.getByText('The targets could not be resolved').waitFor();
      assert.equal(await launch.isDisabled(), true, 'disabled after a failed resolution');
      await page.unroute(resolve);
      await page.locator('.target-picker').getByRole('button', { name: 'Try again' }).click();
      await page.getByRole('button', { name: 'Run on 1 hosts' }).waitFor();

      // An entry the server refuses (over 200 characters): its error, and nothing to launch.
      await targets.fill(`127.0.0.2\n${'x'.repeat(201)}`);
      await page.locator('.target-picker .api-error').waitFor();
      assert.equal(await launch.isDisabled(), true, 'disabled after a refused resolution');

      // Over 50,000 entries: said so, and not cut down to the first 50,000 (which hold 127.0.0.2).
      await targets.fill('127.0.0.2\n10.1.0.[1-50000]');
      await page.getByText('More than 50,000 entries').waitFor();
      assert.equal(await launch.isDisabled(), true, 'disabled for an over-long list');
    }));

  test("a host's last lines show when they were announced while a read was out", () =>
    screenshotOnFailure(page, 'live-log', async () => {
      const job = await run('echo "first line"; sleep 5; echo "second line"; echo "last line"', [
        '127.0.0.2',
      ]);
      // Every log read answers with what the server held when it was asked, but only once the
      // host has finished: the log events and the finish all arrive while a read is out.
      let released = false;
      const held: string[] = [];
      const reads = '**/api/v3/get_job_instance_ip_log?*';
      await page.route(reads, async (route) => {
        try {
          const response = await route.fetch();
          if (!released) {
            held.push(await response.text());
            while (!released) await sleep(50);
          }
          await route.fulfill({ response });
        } catch {
          // the page moved on
        }
      });
      try {
        await page.goto(`${base()}/jobs/${job.job_instance_id}/steps/${job.step_instance_id}`);
        await page.getByRole('tab', { name: /Success\s*1/ }).waitFor({ timeout: 30_000 });
        assert.ok(held.length > 0, 'a read was held');
        assert.ok(
          held.every((body) => !body.includes('last line')),
          'the held reads were asked before the last line was printed',
        );
        released = true;
        const log = page.getByRole('log');
        await log.getByText('last line').waitFor({ timeout: 10_000 });
        await log.getByText('second line').waitFor();
        assert.equal(await log.getByText('first line').count(), 1);
      } finally {
        released = true;
        await page.unroute(reads);
      }
    }));

  test('a reply overtaken by a newer filter is dropped (history, step hosts)', () =>
    screenshotOnFailure(page, 'live-order', async () => {
      // History: a live reload of the unfiltered list answers after the status filter was set.
      await page.goto(`${base()}/jobs`);
      const table = page.getByRole('table');
      await table.getByText('Success').first().waitFor();
      let slow = false;
      let slowSeen = 0;
      const list = '**/api/v3/get_job_instance_list?*';
      await page.route(list, async (route) => {
        if (!slow || new URL(route.request().url()).searchParams.has('status')) {
          await route.continue().catch(() => undefined);
          return;
        }
        slowSeen++;
        try {
          const response = await route.fetch();
          await sleep(2000);
          await route.fulfill({ response });
        } catch {
          // aborted by the page
        }
      });
      try {
        slow = true;
        await run('echo reload', ['127.0.0.2'], { task_name: 'triggers a reload' });
        await eventually(async () => (slowSeen > 0 ? true : undefined), 10_000, 'a live reload');
        await page.getByRole('button', { name: 'Pause live updates' }).click();
        await page.getByLabel('Status').selectOption({ label: 'Failed' });
        await table.getByText('Failed').first().waitFor();
        await sleep(2500);
        assert.equal(await table.getByText('Success').count(), 0, 'only failed jobs under the filter');
        assert.ok((await table.getByText('Failed').count()) > 0);
      } finally {
        await page.unroute(list);
      }

      // Step hosts: the reply for "127.0.0." comes after the one for "127.0.0.3".
      const job = await run('echo hi', ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
      await waitFinished(fleet, job.job_instance_id);
      await page.goto(`${base()}/jobs/${job.job_instance_id}/steps/${job.step_instance_id}`);
      await page.getByRole('tab', { name: /Success\s*3/ }).waitFor();
      const summary = '**/api/v3/get_step_host_summary?*';
      let late = 0;
      await page.route(summary, async (route) => {
        if (new URL(route.request().url()).searchParams.get('ip') !== '127.0.0.') {
          await route.continue().catch(() => undefined);
          return;
        }
        try {
          const response = await route.fetch();
          await sleep(1500);
          await route.fulfill({ response });
        } catch {
          // aborted by the page
        } finally {
          late++;
        }
      });
      try {
        const filter = page.getByLabel('Filter by IP');
        await filter.fill('127.0.0.');
        await filter.fill('127.0.0.3');
        await page.getByText('1 of 3 hosts').waitFor();
        await eventually(async () => (late > 0 ? true : undefined), 10_000, 'the late reply');
        await sleep(300);
        assert.equal(await page.getByText('1 of 3 hosts').count(), 1, 'the filter of the box holds');
        assert.equal(await page.locator('button.host-row').count(), 1);
        await page.locator('button.host-row', { hasText: '127.0.0.3' }).waitFor();
      } finally {
        await page.unroute(summary);
      }
    }));

  test('a stream that fails for good falls back to polling', () =>
    screenshotOnFailure(page, 'live-fallback', async () => {
      const streams = '**/api/v3/get_*_event_stream?*';
      await page.route(streams, (route) => route.fulfill(REFUSED_STREAM));
      try {
        // The job page of a running job: it still sees the job end.
        const job = await run('sleep 3', ['127.0.0.2']);
        await page.goto(`${base()}/jobs/${job.job_instance_id}`);
        await page.getByText('Running…').waitFor();
        await waitFinished(fleet, job.job_instance_id);
        await page.getByText('End', { exact: true }).waitFor({ timeout: 15_000 });

        // History: a new job still shows up.
        await page.goto(`${base()}/jobs`);
        await page.getByRole('table').getByText('Success').first().waitFor();
        await run('echo polled', ['127.0.0.3'], { task_name: 'seen by polling' });
        await page
          .getByRole('table')
          .getByRole('link', { name: 'seen by polling' })
          .waitFor({ timeout: 15_000 });
      } finally {
        await page.unroute(streams);
      }
    }));

  test('a stream refused because the session ended elsewhere leads to sign-in', async () => {
    const { context, page: first } = await newPage(browser);
    await screenshotOnFailure(first, 'live-signed-out', async () => {
      await signIn(first, url, 'lena', password);
      await first.goto(`${base()}/jobs`);
      await first.getByRole('table').waitFor();
      const second = await context.newPage();
      await second.goto(base());
      await second.getByRole('button', { name: 'Sign out' }).click();
      await second.waitForURL(/\/sign-in/);
      // The server ends the stream within seconds; its reconnect is refused.
      await first.waitForURL(/\/sign-in/, { timeout: 30_000 });
    });
    await context.close();
  });
});
