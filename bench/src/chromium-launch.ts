/**
 * Debian's Chromium (never a downloaded browser) started by playwright-core, headless, for the
 * console figure (P8) and the console's browser tests, which load this module too. On a machine
 * with no network beyond loopback, Chromium without the background-networking flags keeps
 * trying to reach its update and sync services. Playwright gives each launch a fresh profile.
 */
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(executablePath: string): Promise<Browser> {
  if (!fs.existsSync(executablePath))
    throw new Error(
      `${executablePath} is missing: run scripts/install-test-packages.sh (Debian package chromium)`,
    );
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}
