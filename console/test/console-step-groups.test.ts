/**
 * The step result of a 1,000-host step (the fleet simulator's hosts, each printing one of three
 * outputs): status groups and output groups with their counts, a group's hosts copied as IPs, a
 * diff between two output groups; and what a viewer sees: no run or retry controls, and the API
 * refusing a run sent from the viewer's session all the same.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import type { SimulatedFleet } from '../../server/test/helpers/simulated-fleet.js';
import type * as SimulatedModule from '../../server/test/helpers/simulated-fleet.js';
import path from 'node:path';
import {
  REPO,
  createUser,
  launchBrowser,
  newPage,
  pasteInto,
  screenshot,
  screenshotOnFailure,
  serverHelpers,
  signIn,
} from './helpers/browser.js';

const { startSimulatedFleet } = (await import(
  path.join(REPO, 'server/dist/test/helpers/simulated-fleet.js')
)) as typeof SimulatedModule;
const { startFleet, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;
const { post, eventually, get } = serverHelpers.api;

const HOSTS = 1000;

describe('console: a 1,000-host step', () => {
  let fleet: Fleet;
  let sim: SimulatedFleet;
  let browser: Browser;
  let url: string;
  let stepUrl: string;
  let step: { job_instance_id: number; step_instance_id: number };
  const passwords: Record<string, string> = {};

  before(async () => {
    // A thousand simulated agents on a loaded 2-core machine can miss the tests' 3 s heartbeat
    // window and fail as "agent abnormal"; this file checks grouping, not heartbeats.
    fleet = await startFleet('sqlite', 0, { env: { JOBFLEET_HEARTBEAT_TIMEOUT_MS: '120000' } });
    url = fleet.server.url;
    sim = await startSimulatedFleet(fleet.server, HOSTS, BIZ);
    const server = { url, adminToken: fleet.server.adminToken };
    passwords.oscar = await createUser(server, 'oscar', { role: 'operator', bizId: BIZ });
    passwords.vera = await createUser(server, 'vera', { role: 'viewer', bizId: BIZ });
    // Simulated host N prints alpha (1-500), beta (501-800) or gamma and exits 3 (801-1000).
    const job = await post<{ job_instance_id: number; step_instance_id: number }>(
      url,
      'fast_execute_script',
      {
        ...fleet.scope,
        script_language: 1,
        script_content: Buffer.from('echo simulated').toString('base64'),
        script_param: Buffer.from('sim-output 1-500:alpha 501-800:beta 801-1000:gamma:3').toString('base64'),
        account_alias: fleet.account,
        target_server: { host_id_list: sim.hostIds },
      },
      fleet.creds,
    );
    assert.ok(job.result, job.message);
    step = job.data;
    const { job_instance_id: jobId, step_instance_id: stepId } = job.data;
    await eventually(
      async () => {
        const s = await get<{ finished: boolean }>(
          url,
          'get_job_instance_status',
          { ...fleet.scope, job_instance_id: jobId },
          fleet.creds,
        );
        return s.data.finished ? true : undefined;
      },
      120_000,
      'the 1,000-host job to finish',
    );
    stepUrl = `${url}/biz/${BIZ}/jobs/${jobId}/steps/${stepId}`;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await sim?.stop();
    await stopAll();
  });

  test('groups with counts, copy IPs of an output group, diff two groups', async () => {
    const { page, context } = await newPage(browser);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
    await screenshotOnFailure(page, 'groups', async () => {
      await signIn(page, url, 'oscar', passwords.oscar ?? '');
      await page.goto(stepUrl);
      const tabs = page.getByRole('tablist', { name: 'Host groups by status' });
      await tabs.getByRole('tab', { name: /Non-zero exit\s*200/ }).waitFor();
      await tabs.getByRole('tab', { name: /Success\s*800/ }).click();
      const outputs = page.getByRole('group', { name: 'Groups by output' });
      await outputs.getByRole('button', { name: /All 2 outputs/ }).waitFor();
      await outputs.getByRole('button', { name: /Output 1\s*500/ }).waitFor();
      await outputs.getByRole('button', { name: /Output 2\s*300/ }).click();
      await page.getByText('300 of 1,000 hosts').waitFor();
      await page.getByRole('log').getByText('beta', { exact: true }).waitFor();

      await page.getByRole('button', { name: 'Copy IPs', exact: true }).click();
      await page.getByText('Copied 300').waitFor();
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      const ips = copied.split('\n');
      assert.equal(ips.length, 300);
      assert.equal(new Set(ips).size, 300);
      assert.ok(
        ips.every((ip) => /^10\.0\.\d+\.\d+$/.test(ip)),
        copied.slice(0, 200),
      );

      await page.getByRole('button', { name: 'Compare outputs' }).click();
      await page.getByLabel('Left').selectOption({ label: 'Output 1: Success, exit 0, 500 hosts' });
      await page.getByLabel('Right').selectOption({ label: 'Output 2: Success, exit 0, 300 hosts' });
      await page.getByRole('button', { name: 'Compare', exact: true }).click();
      const diff = page.getByLabel('Differences');
      await diff.getByText('-alpha').waitFor();
      await diff.getByText('+beta').waitFor();
      await screenshot(page, 'step-1000-hosts');

      // The rest of a group is read as it is scrolled to: the last of the 800 successes, by IP.
      await outputs.getByRole('button', { name: /All 2 outputs/ }).click();
      await page.getByText('800 of 1,000 hosts').waitFor();
      await page.getByRole('button', { name: 'IP', exact: true }).click();
      await page.getByRole('list', { name: '800 hosts' }).evaluate((el) => el.scrollTo(0, el.scrollHeight));
      const last = await get<{ groups: { hosts: { ip: string }[] }[] }>(
        url,
        'get_step_host_summary',
        { ...fleet.scope, ...step, status: 9, sort: 'ip', order: 'desc', limit: 1 },
        fleet.creds,
      );
      const lastIp = last.data.groups[1]?.hosts[0]?.ip ?? 'none';
      await page.getByRole('button', { name: new RegExp(`^${lastIp.replaceAll('.', '\\.')}\\b`) }).waitFor();
    });
    await context.close();
  });

  test('get_step_host_summary: counts of every group, one page of one group, sorted and filtered', async () => {
    type Summary = {
      host_count: number;
      batches: unknown[];
      groups: {
        status: number;
        host_count: number;
        matched_count: number | null;
        output_groups: string[];
        hosts: { ip: string; exit_code: number | null; output_group_id: string | null }[];
      }[];
    };
    const read = async (params: Record<string, unknown>) => {
      const r = await get<Summary>(
        url,
        'get_step_host_summary',
        { ...fleet.scope, ...step, ...params },
        fleet.creds,
      );
      assert.ok(r.result, r.message);
      return r.data;
    };
    const all = await read({ limit: 5 });
    assert.equal(all.host_count, HOSTS);
    assert.deepEqual(
      all.groups.map((g) => [
        g.status,
        g.host_count,
        g.matched_count,
        g.hosts.length,
        g.output_groups.length,
      ]),
      [
        [104, 200, 200, 5, 1],
        [9, 800, 800, 5, 2],
      ],
    );
    const success = all.groups[1];
    const beta = success?.output_groups[1] ?? '';
    const page = await read({
      status: 9,
      output_group_id: beta,
      sort: 'ip',
      order: 'desc',
      offset: 10,
      limit: 20,
    });
    assert.deepEqual(
      page.groups.map((g) => [g.status, g.matched_count, g.hosts.length]),
      [
        [104, null, 0],
        [9, 300, 20],
      ],
    );
    const ips = page.groups[1]?.hosts.map((h) => h.ip) ?? [];
    const key = (ip: string) =>
      ip
        .split('.')
        .map((p) => p.padStart(3, '0'))
        .join('.');
    assert.deepEqual(
      ips,
      [...ips].sort((a, b) => key(b).localeCompare(key(a))),
    );
    assert.ok(page.groups[1]?.hosts.every((h) => h.output_group_id === beta));
    const filtered = await read({ ip: '10.0.0.1', status: 104 });
    assert.ok((filtered.groups[0]?.matched_count ?? 0) < 200);
    const bad = await get(
      url,
      'get_step_host_summary',
      { ...fleet.scope, ...step, sort: 'name' },
      fleet.creds,
    );
    assert.equal(bad.result, false);

    // 150 different outputs: the reply names the largest 100 and counts them all.
    const many = await post<{ job_instance_id: number; step_instance_id: number }>(
      url,
      'fast_execute_script',
      {
        ...fleet.scope,
        script_language: 1,
        script_content: Buffer.from('echo simulated').toString('base64'),
        script_param: Buffer.from(
          `sim-output ${Array.from({ length: 150 }, (_, i) => `${i + 1}-${i + 1}:out${i + 1}`).join(' ')}`,
        ).toString('base64'),
        account_alias: fleet.account,
        target_server: { host_id_list: sim.hostIds.slice(0, 150) },
      },
      fleet.creds,
    );
    assert.ok(many.result, many.message);
    type Counted = { output_group_count: number; output_groups: unknown[] };
    const summary = await eventually(async () => {
      const r = await get<Counted & { groups: (Counted & { host_count: number })[] }>(
        url,
        'get_step_host_summary',
        { ...fleet.scope, ...many.data },
        fleet.creds,
      );
      return r.data?.groups[0]?.host_count === 150 && r.data.output_group_count === 150 ? r.data : undefined;
    }, 60_000);
    assert.equal(summary.output_groups.length, 100);
    assert.equal(summary.groups[0]?.output_group_count, 150);
    assert.equal(summary.groups[0]?.output_groups.length, 100);
  });

  test('the target picker resolves a pasted list of 10,000 addresses and flags the unknown ones', async () => {
    const { page, context } = await newPage(browser);
    await screenshotOnFailure(page, 'picker', async () => {
      await signIn(page, url, 'oscar', passwords.oscar ?? '');
      const hosts = await serverHelpers.api.admin<{ hosts: { ip: string }[] }>(
        url,
        fleet.server.adminToken,
        'GET',
        `/hosts?bk_biz_id=${BIZ}`,
      );
      const known = hosts.data.hosts.map((h) => h.ip);
      assert.equal(known.length, HOSTS);
      const unknown = Array.from({ length: 10_000 - HOSTS }, (_, i) => `10.200.${i >> 8}.${i & 255}`);
      await page.goto(`${url}/biz/${BIZ}/run/script`);
      // One resolve_hosts request for the whole paste (simulated agents on a loaded machine may
      // miss a heartbeat, so the normal/abnormal split is not fixed).
      const resolves: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('resolve_hosts')) resolves.push(r.url());
      });
      await pasteInto(page.getByLabel('Targets', { exact: true }), [...known, ...unknown].join('\n'));
      await page
        .getByText(new RegExp(`^1000 hosts: \\d+ agents normal, \\d+ abnormal · ${10_000 - HOSTS} unknown`))
        .waitFor();
      assert.equal(resolves.length, 1);
      await page
        .getByRole('list', { name: 'Entries that are not targets' })
        .getByText('10.200.0.0', { exact: true })
        .waitFor();
      await page.getByRole('button', { name: 'Run on 1000 hosts' }).waitFor();
      await screenshot(page, 'target-picker-10000');
    });
    await context.close();
  });

  test('a viewer sees no run or retry controls, and the API refuses a run from its session', async () => {
    const { page, context } = await newPage(browser);
    await screenshotOnFailure(page, 'viewer', async () => {
      await signIn(page, url, 'vera', passwords.vera ?? '');
      await page.goto(stepUrl);
      await page
        .getByRole('tablist', { name: 'Host groups by status' })
        .getByRole('tab', { name: /Non-zero exit\s*200/ })
        .waitFor();
      assert.equal(await page.getByRole('button', { name: 'Retry failed hosts' }).count(), 0);
      assert.equal(
        await page
          .getByRole('navigation', { name: 'Main' })
          .getByRole('link', { name: 'Run script' })
          .count(),
        0,
      );
      const refused = await page.evaluate(async (scope) => {
        const me = (await (await fetch('/api/auth/me')).json()) as { data: { csrf_token: string } };
        const res = await fetch('/api/v3/fast_execute_script', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': me.data.csrf_token },
          body: JSON.stringify({
            ...scope,
            script_language: 1,
            script_content: 'ZWNobyBoaQ==',
            target_server: { host_id_list: [1] },
          }),
        });
        return (await res.json()) as { code: number };
      }, fleet.scope);
      assert.equal(refused.code, 1238014);
    });
    await context.close();
  });
});
