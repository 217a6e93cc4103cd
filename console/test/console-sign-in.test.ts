/**
 * The console's frame in a real browser: sign-in (and its refusal shown with the API's code),
 * the navigation of a scope, BK-JOB's deep links, a client route loaded directly, and sign-out
 * ending the session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import { createUser, launchBrowser, newPage, screenshot, serverHelpers, signIn } from './helpers/browser.js';

const { startFleet, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;

describe('console: sign-in and frame', () => {
  let fleet: Fleet;
  let browser: Browser;
  let server: { url: string; adminToken: string };
  let password: string;

  before(async () => {
    fleet = await startFleet('sqlite', 0);
    server = { url: fleet.server.url, adminToken: fleet.server.adminToken };
    password = await createUser(server, 'olga', { role: 'operator', bizId: BIZ });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  test('a wrong password is refused with the API code; the right one opens the scope', async () => {
    const { page, context, errors } = await newPage(browser);
    await page.goto(`${server.url}/biz/${BIZ}/jobs`);
    await page.waitForURL(/\/sign-in$/);
    await page.getByLabel('User name').fill('olga');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: '1238010' }).waitFor();
    await screenshot(page, 'sign-in');

    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back where the person was going.
    await page.waitForURL(new RegExp(`/biz/${BIZ}/jobs$`));
    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const name of ['Overview', 'Run script', 'Push file', 'History'])
      assert.equal(await nav.getByRole('link', { name }).count(), 1, name);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('client routes load directly; server routes stay the server', async () => {
    const html = await fetch(`${server.url}/biz/${BIZ}/jobs/1/steps/2`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await html.text(), /<div id="root">/);
    const api = (await (await fetch(`${server.url}/api/nothing-here`)).json()) as { code: number };
    assert.equal(api.code, 1240004);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/assets/missing.js`)).status, 404);
  });

  test('a deep link to a job the person cannot see shows the code; sign-out ends the session', async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, server.url, 'olga', password);
    await page.goto(`${server.url}/api_execute/987654`);
    await page.getByRole('alert').filter({ hasText: '1240006' }).waitFor();

    await page.goto(`${server.url}/biz/${BIZ}`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in$/);
    const me = await page.evaluate(
      async () => (await (await fetch('/api/auth/me')).json()) as { code: number },
    );
    assert.equal(me.code, 1238012);
    await context.close();
  });

  test('a narrow window folds the navigation behind the menu button', async () => {
    const { page, context } = await newPage(browser, { width: 480, height: 800 });
    await signIn(page, server.url, 'olga', password);
    const menu = page.getByRole('button', { name: 'Menu' });
    await menu.waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
    await menu.click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'History' }).click();
    await page.waitForURL(new RegExp(`/biz/${BIZ}/jobs$`));
    await context.close();
  });
});
