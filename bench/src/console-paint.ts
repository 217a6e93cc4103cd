/**
 * P8: the web console on a big step, in Debian's Chromium driven by playwright-core. A step on
 * every simulated host, whose hosts print one of three outputs (the noop executor's
 * `sim-output`), is opened in the console:
 * - first paint: from navigation start until the step's groups and the first host rows are on
 *   screen (measured in the page, in a requestAnimationFrame loop installed before it loads);
 * - group switch: from a click on another status group until its host list shows.
 */
import type { BkApi } from './bk-api.js';
import { launchChromium } from './chromium-launch.js';
import { ApiFailure } from './bk-api.js';
import type { ServerHandle } from './processes.js';

const CHROMIUM = process.env.JOBFLEET_BENCH_CHROMIUM ?? '/usr/bin/chromium';

export interface ConsoleTimes {
  firstPaintMs: number[];
  groupSwitchMs: number[];
}

declare global {
  interface Window {
    __jfPaint?: number;
  }
}

async function adminPost(server: ServerHandle, p: string, body: unknown): Promise<void> {
  const res = await fetch(`${server.url}/api/admin${p}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.secrets.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const env = (await res.json()) as { result: boolean; message: string };
  if (!env.result) throw new ApiFailure(`admin ${p}: ${env.message}`);
}

/** Runs the step and measures `runs` first paints and group switches. */
export async function consolePaint(opts: {
  server: ServerHandle;
  api: BkApi;
  hostIds: number[];
  account: string;
  runs: number;
}): Promise<ConsoleTimes> {
  const n = opts.hostIds.length;
  const a = Math.round(n * 0.5);
  const b = Math.round(n * 0.8);
  const req = opts.api.request('fast_execute_script', {
    bk_scope_type: 'biz',
    bk_scope_id: '1',
    script_language: 1,
    script_content: Buffer.from('echo simulated').toString('base64'),
    script_param: Buffer.from(`sim-output 1-${a}:alpha ${a + 1}-${b}:beta ${b + 1}-${n}:gamma:3`).toString(
      'base64',
    ),
    account_alias: opts.account,
    timeout: 3600,
    target_server: { host_id_list: opts.hostIds },
  });
  const started = (await (
    await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body })
  ).json()) as {
    result: boolean;
    message: string;
    data: { job_instance_id: number; step_instance_id: number };
  };
  if (!started.result) throw new ApiFailure(started.message);
  const { job_instance_id: jobId, step_instance_id: stepId } = started.data;
  const deadline = Date.now() + 600_000;
  while (!(await opts.api.jobStatus(jobId, false)).finished) {
    if (Date.now() > deadline) throw new ApiFailure(`job ${jobId} did not finish`);
    await new Promise((r) => setTimeout(r, 500));
  }

  const password = `bench-${Date.now()}-password`;
  await adminPost(opts.server, '/users', { name: 'bench-console', password, platform_admin: true });
  const browser = await launchChromium(CHROMIUM);
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(120_000);
    await context.addInitScript(() => {
      const check = () => {
        if (document.querySelector('.host-row')) window.__jfPaint = performance.now();
        else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    });
    const page = await context.newPage();
    await page.goto(`${opts.server.url}/sign-in`);
    await page.getByLabel('User name').fill('bench-console');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const stepUrl = `${opts.server.url}/biz/1/jobs/${jobId}/steps/${stepId}`;
    const times: ConsoleTimes = { firstPaintMs: [], groupSwitchMs: [] };
    const total = n.toLocaleString('en');
    for (let r = 0; r < opts.runs; r++) {
      await page.goto(stepUrl);
      await page.waitForFunction(() => window.__jfPaint !== undefined);
      times.firstPaintMs.push(await page.evaluate(() => window.__jfPaint ?? NaN));
      times.groupSwitchMs.push(
        await page.evaluate(
          async ({ other, expect }) => {
            const tabs = Array.from(document.querySelectorAll<HTMLElement>('[role=tab]'));
            const tab = tabs.find(
              (t) => t.getAttribute('aria-selected') !== 'true' && t.textContent?.includes(other),
            );
            if (!tab) throw new Error(`no group tab ${other}`);
            const t0 = performance.now();
            tab.click();
            await new Promise<void>((resolve) => {
              const check = () =>
                document.body.innerText.includes(expect) ? resolve() : requestAnimationFrame(check);
              check();
            });
            return performance.now() - t0;
          },
          // The failed group comes first, so the switch goes to the successes (alpha and beta).
          { other: 'Success', expect: `${b.toLocaleString('en')} of ${total} hosts` },
        ),
      );
    }
    return times;
  } finally {
    await browser.close();
  }
}
