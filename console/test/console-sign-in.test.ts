/**
 * The console's frame in a real browser: sign-in (and its refusal shown with the API's code),
 * the navigation of a scope, BK-JOB's deep links, a client route loaded directly, and sign-out
 * ending the session; and the main pages checked by axe-core (WCAG A/AA: labels, names,
 * contrast, roles) at 1280x800 and in a narrow window, and reachable by the keyboard.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Fleet } from '../../server/test/helpers/fleet.js';
import { axeViolations } from './helpers/axe.js';
import { createUser, launchBrowser, newPage, screenshot, serverHelpers, signIn } from './helpers/browser.js';

const { startFleet, BIZ } = serverHelpers.fleet;
const { stopAll } = serverHelpers.processes;

describe('console: sign-in and frame', () => {
  let fleet: Fleet;
  let browser: Browser;
  let server: { url: string; adminToken: string };
  let password: string;
  let adminPassword: string;

  before(async () => {
    fleet = await startFleet('sqlite', 0);
    server = { url: fleet.server.url, adminToken: fleet.server.adminToken };
    [password, adminPassword, browser] = await Promise.all([
      createUser(server, 'olga', { role: 'operator', bizId: BIZ }),
      createUser(server, 'ada', 'platform-admin'),
      launchBrowser(),
    ]);
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
      await nav.getByRole('link', { name, exact: true }).waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('client routes load directly; server routes stay the server', async () => {
    const html = await fetch(`${server.url}/biz/${BIZ}/jobs/1/steps/2`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    // Not to be framed by another site (its buttons clicked through a decoy).
    assert.equal(html.headers.get('x-frame-options'), 'SAMEORIGIN');
    assert.match(html.headers.get('content-security-policy') ?? '', /frame-ancestors 'self'/);
    // The page is asked for again at every load (it names the current build's assets); the
    // assets, named by their content, are kept for good.
    assert.equal(html.headers.get('cache-control'), 'no-cache');
    const page = await html.text();
    assert.match(page, /<div id="root">/);
    const asset = /\/assets\/[^"]+\.js/.exec(page)?.[0];
    assert.ok(asset, 'the page names a script asset');
    const script = await fetch(`${server.url}${asset}`);
    assert.equal(script.status, 200);
    assert.equal(script.headers.get('cache-control'), 'public, max-age=31536000, immutable');
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

  test('the main pages pass axe-core at 1280x800 and in a narrow window', async () => {
    const scoped = (p: string) => `/biz/${BIZ}${p}`;
    const pages = [
      scoped(''),
      scoped('/run/script'),
      scoped('/run/file'),
      scoped('/jobs'),
      scoped('/scripts'),
      scoped('/scripts/new'),
      scoped('/templates'),
      scoped('/plans'),
      scoped('/crons'),
      scoped('/crons/new'),
      scoped('/accounts'),
      scoped('/hosts'),
      '/dangerous-rules',
      '/tokens',
      '/admin/users',
      '/admin/apps',
      '/admin/audit',
    ];
    const found: string[] = [];
    // The narrow window on the pages whose layout changes most (tables, forms, the frame).
    const narrow = [scoped(''), scoped('/run/script'), scoped('/jobs'), scoped('/hosts'), '/admin/audit'];
    for (const [viewport, visit] of [
      [{ width: 1280, height: 800 }, pages],
      [{ width: 480, height: 800 }, narrow],
    ] as const) {
      const { page, context } = await newPage(browser, viewport);
      await page.goto(`${server.url}/sign-in`);
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      for (const v of await axeViolations(page)) found.push(`${viewport.width}px /sign-in: ${v}`);
      await signIn(page, server.url, 'ada', adminPassword);
      for (const p of visit) {
        await page.goto(`${server.url}${p}`);
        await page.locator('main h1').first().waitFor();
        await page.waitForLoadState('networkidle');
        for (const v of await axeViolations(page)) found.push(`${viewport.width}px ${p}: ${v}`);
      }
      await context.close();
    }
    assert.deepEqual(found, []);
  });

  test('the keyboard reaches the navigation and the page, with a visible focus', async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, server.url, 'olga', password);
    await page.goto(`${server.url}/biz/${BIZ}/run/script`);
    await page.getByRole('heading', { name: 'Run script' }).waitFor();
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const focus = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el || el === document.body) return undefined;
        const style = getComputedStyle(el);
        const name = el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 40) ?? el.tagName;
        return { name, outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px' };
      });
      if (!focus) continue;
      assert.ok(focus.outline, `no visible focus on ${focus.name}`);
      seen.add(focus.name);
    }
    for (const name of ['Overview', 'History', 'Run script'])
      assert.ok(seen.has(name), [...seen].join(' | '));
    await context.close();
  });
});
