/**
 * Browser tests of the console: Debian's Chromium (never a downloaded browser) driven by
 * playwright-core, against a real server started with the server's test helpers. Screenshots go
 * to artifacts/console/ at the repository root (ignored by git).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import type * as ChromiumModule from '../../../bench/src/chromium-launch.js';
import type * as ApiModule from '../../../server/test/helpers/api-client.js';
import type * as FleetModule from '../../../server/test/helpers/fleet.js';
import type * as ProcessesModule from '../../../server/test/helpers/processes.js';

export const REPO = path.resolve(import.meta.dirname, '../../../..');

// The server's test helpers, loaded from their compiled place (they are not part of its package API).
export const serverHelpers = {
  api: (await import(path.join(REPO, 'server/dist/test/helpers/api-client.js'))) as typeof ApiModule,
  fleet: (await import(path.join(REPO, 'server/dist/test/helpers/fleet.js'))) as typeof FleetModule,
  processes: (await import(
    path.join(REPO, 'server/dist/test/helpers/processes.js')
  )) as typeof ProcessesModule,
};

export const CHROMIUM = process.env.JOBFLEET_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO, 'artifacts', 'console');

const { launchChromium } = (await import(
  path.join(REPO, 'bench/dist/src/chromium-launch.js')
)) as typeof ChromiumModule;

/** Debian's Chromium with the flags the console figure (P8) uses too (bench/src/chromium-launch.ts). */
export async function launchBrowser(): Promise<Browser> {
  return launchChromium(CHROMIUM);
}

export interface ConsoleServer {
  url: string;
  adminToken: string;
}

/** A browser context of its own (own cookies) at the console's usual size, failing fast on page errors. */
export async function newPage(
  browser: Browser,
  viewport = { width: 1280, height: 800 },
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport, permissions: [] });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return { context, page, errors };
}

export type Role = 'viewer' | 'operator' | 'admin';

/** Creates a user with a role in one business (or a platform admin) and returns its password. */
export async function createUser(
  server: ConsoleServer,
  name: string,
  grant: { role: Role; bizId: number } | 'platform-admin',
): Promise<string> {
  const password = `pw-${name}-0123456789`;
  const { admin } = serverHelpers.api;
  const made = await admin(server.url, server.adminToken, 'POST', '/users', {
    name,
    password,
    platform_admin: grant === 'platform-admin',
  });
  if (!made.result) throw new Error(`create user ${name}: ${made.message}`);
  if (grant !== 'platform-admin') {
    const roles = await admin(server.url, server.adminToken, 'POST', `/users/${name}/roles`, {
      roles: [{ scope_type: 'biz', scope_id: grant.bizId, role: grant.role }],
    });
    if (!roles.result) throw new Error(`roles of ${name}: ${roles.message}`);
  }
  return password;
}

/** Signs in through the sign-in page and waits for the signed-in frame. */
export async function signIn(page: Page, baseUrl: string, name: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/sign-in`);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** Saves a full-window screenshot as artifacts/console/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Runs a test body; when it fails, saves a screenshot named `failed-<name>` before rethrowing. */
export async function screenshotOnFailure(
  page: Page,
  name: string,
  body: () => Promise<void>,
): Promise<void> {
  try {
    await body();
  } catch (err) {
    await screenshot(page, `failed-${name}`).catch(() => undefined);
    throw err;
  }
}

/**
 * Puts `text` into a textarea the way a paste does: one input event with the whole text.
 * (Playwright's fill types it in through the editing pipeline, which takes minutes for 10,000 lines.)
 */
export async function pasteInto(locator: Locator, text: string): Promise<void> {
  await locator.evaluate((el, value) => {
    const area = el as HTMLTextAreaElement;
    area.focus();
    const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value')?.set;
    setter?.call(area, value);
    area.dispatchEvent(new Event('input', { bubbles: true }));
  }, text);
}
