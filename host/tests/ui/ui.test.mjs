// The host's web view (/ui) in a real browser (Debian's chromium, driven by
// playwright-core), against a real host with the three demo handlers.
// host/tests/it/ui.rs starts the host and runs this; by hand:
//
//   EVENT_HOST_URL=http://127.0.0.1:3000 node host/tests/ui/ui.test.mjs
//
// Environment: EVENT_HOST_URL (required); EVENT_HOST_ADMIN_TOKEN, the
// host's ADMIN_TOKEN if it has one (then the token form is tested too);
// EVENT_HOST_COMPONENT, a handler .wasm to upload and delete through the
// page (that step is left out without it); CHROMIUM (default
// /usr/bin/chromium). Exits 0 when every check passed, 1 with what failed.
//
// Every wait is a locator wait or a poll with a deadline: no fixed sleeps.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.EVENT_HOST_URL;
const TOKEN = process.env.EVENT_HOST_ADMIN_TOKEN || null;
const COMPONENT = process.env.EVENT_HOST_COMPONENT || null;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** How long one check may wait for the page or the host. */
const PATIENCE_MS = 30_000;
/** How long the whole run may take. */
const RUN_LIMIT_MS = 240_000;

const DEMO = ['notification-analytics', 'order-handler', 'user-handler'];

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

/** Polls `probe` until it returns something truthy; fails with `what` and the last value at the deadline. */
async function until(what, probe, timeout = PATIENCE_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last?.ok ?? last) return last;
    if (Date.now() > deadline) fail(`${what}: not seen within ${timeout} ms; last seen ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The host's API, as curl would call it. */
async function host(method, path, body) {
  const response = await fetch(new URL(path, BASE), {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(TOKEN ? { authorization: `Bearer ${TOKEN}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

let stepNumber = 0;
async function step(what, run) {
  stepNumber += 1;
  const started = Date.now();
  console.log(`ui test ${stepNumber}: ${what}`);
  await run();
  console.log(`ui test ${stepNumber}: ok (${Date.now() - started} ms)`);
}

async function main() {
  if (!BASE) fail('EVENT_HOST_URL is not set: give the base URL of a running host, e.g. http://127.0.0.1:3000');

  const profile = await mkdtemp(join(tmpdir(), 'event-host-ui-'));
  let context;
  try {
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
          // A container's /dev/shm is often too small for chromium.
          '--disable-dev-shm-usage',
        ],
      });
    } catch (e) {
      fail(`cannot start ${CHROMIUM} (install Debian's chromium, or set CHROMIUM): ${e.message}`);
    }
    context.setDefaultTimeout(PATIENCE_MS);
    const page = context.pages()[0] ?? (await context.newPage());
    try {
      await checks(page);
    } catch (e) {
      await evidence(page, profile);
      throw e;
    }
  } finally {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true }).catch(() => {});
  }
}

/** What the page showed when a check failed, to read in the test's output. */
async function evidence(page, profile) {
  try {
    const shot = join(tmpdir(), `event-host-ui-failure-${basename(profile)}.png`);
    await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 });
    console.log(`\nscreenshot of the page: ${shot}`);
    const text = await page.locator('body').innerText({ timeout: 5_000 });
    console.log(`the page's text:\n${text}\n`);
  } catch (e) {
    console.log(`(no screenshot: ${e.message})`);
  }
}

async function checks(page) {
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`  page console: ${m.text()}`);
  });

  const row = (name) => page.locator(`[data-testid="handler"][data-name="${name}"]`);

  await step('GET /ui answers the page as HTML, not cached', async () => {
    const response = await page.goto(new URL('/ui', BASE).href);
    if (response?.status() !== 200) fail(`GET /ui answered ${response?.status()}`);
    const headers = response.headers();
    if (!headers['content-type']?.startsWith('text/html')) fail(`content-type ${headers['content-type']}`);
    if (headers['cache-control'] !== 'no-cache') fail(`cache-control ${headers['cache-control']}`);
  });

  await step('the page lists the three demo handlers, running, with version and contract', async () => {
    await page.locator('[data-testid="connection"][data-state="live"]').waitFor();
    for (const name of DEMO) {
      const r = row(name);
      await r.locator('[data-testid="handler-status"]', { hasText: /^running$/ }).waitFor();
      const version = (await r.locator('[data-testid="handler-version"]').textContent()).trim();
      if (!/^[0-9a-f]{12}$/.test(version)) fail(`${name}: version shown as ${JSON.stringify(version)}`);
      const contract = (await r.locator('[data-testid="handler-contract"]').textContent()).trim();
      if (!contract.startsWith('event-host:handler@')) fail(`${name}: contract shown as ${JSON.stringify(contract)}`);
    }
    const names = await page.locator('[data-testid="handler"]').evaluateAll((rows) => rows.map((r) => r.dataset.name));
    if (JSON.stringify(names) !== JSON.stringify(DEMO)) fail(`handlers shown: ${JSON.stringify(names)}`);
  });

  await step('a POST /users shows in the feed, and its chain reaches notification-analytics', async () => {
    const before = (await host('GET', '/handlers/user-handler')).json?.stats?.handled ?? 0;
    const { status, json } = await host('POST', '/users', { email: 'ui@example.com', name: 'UI', age: 30 });
    if (status !== 200) fail(`POST /users answered ${status}: ${JSON.stringify(json)}`);
    const call = page.locator('[data-testid="call"][data-handler="user-handler"][data-event-type="USER_REGISTERED"]');
    const noFeed = page.locator('[data-testid="calls-note"]', { hasText: 'no GET /calls' });
    await call.first().or(noFeed).first().waitFor();
    if (await noFeed.isVisible()) fail('the host has no GET /calls, so the page has no call feed to show');
    await call.first().click();
    const chain = page.locator('[data-testid="chain"]');
    const root = chain.locator('[data-testid="chain-event"].root[data-event-type="USER_REGISTERED"]');
    const welcome = root.locator(
      '[data-testid="chain-call"][data-handler="user-handler"] [data-testid="chain-event"][data-topic="notification-events"]',
    );
    const analytics = welcome.locator('[data-testid="chain-call"][data-handler="notification-analytics"]');
    // The page redraws the open chain as calls are recorded.
    await analytics.first().waitFor();
    const type = await welcome.first().getAttribute('data-event-type');
    if (!type?.startsWith('NOTIFICATION')) fail(`the welcome event's type is ${JSON.stringify(type)}`);
    const handled = new RegExp(`^${before + 1}\\b`);
    await row('user-handler').locator('[data-testid="handler-handled"]', { hasText: handled }).waitFor();
  });

  await step("user-handler's pause button pauses it", async () => {
    await row('user-handler').locator('[data-testid="pause"]').click();
    if (TOKEN) {
      // The host answers 401: the page asks for the token. A wrong one is
      // refused and asked for again; the right one is kept for the tab.
      const dialog = page.locator('[data-testid="token-dialog"]');
      await dialog.locator('[data-testid="token-input"]').fill(`not-${TOKEN}`);
      await dialog.locator('[data-testid="token-submit"]').click();
      await dialog.locator('[data-testid="token-problem"]', { hasText: 'refused' }).waitFor();
      await dialog.locator('[data-testid="token-input"]').fill(TOKEN);
      await dialog.locator('[data-testid="token-submit"]').click();
      await dialog.waitFor({ state: 'hidden' });
    }
    await until('GET /handlers/user-handler says "status": "paused"', async () => {
      const { json } = await host('GET', '/handlers/user-handler');
      return { ok: json?.status === 'paused', status: json?.status };
    });
    await row('user-handler').locator('[data-testid="handler-status"]', { hasText: /^paused$/ }).waitFor();
  });

  await step('its resume button brings it back', async () => {
    await row('user-handler').locator('[data-testid="resume"]').click();
    await until('GET /handlers/user-handler says "status": "running"', async () => {
      const { json } = await host('GET', '/handlers/user-handler');
      return { ok: json?.status === 'running', status: json?.status };
    });
    await row('user-handler').locator('[data-testid="handler-status"]', { hasText: /^running$/ }).waitFor();
    if (await page.locator('[data-testid="token-dialog"]').isVisible()) fail('the token was asked for again');
  });

  await step('an API error is shown in the page: uploading a file that is not a component', async () => {
    await page.locator('[data-testid="upload-file"]').setInputFiles({
      name: 'broken.wasm',
      mimeType: 'application/wasm',
      buffer: Buffer.from('not a component'),
    });
    await page.locator('[data-testid="upload-name"]').fill('broken');
    await page.locator('[data-testid="upload-submit"]').click();
    await page.locator('[data-testid="error-message"]', { hasText: 'PUT /handlers/broken' }).waitFor();
    const { json } = await host('GET', '/handlers');
    if (json.some((h) => h.name === 'broken' && h.version)) fail('the broken upload was installed');
  });

  if (COMPONENT) {
    await step('a component uploaded through the form runs, and its delete button removes it', async () => {
      await page.locator('[data-testid="upload-file"]').setInputFiles({
        name: 'ui-copy.wasm',
        mimeType: 'application/wasm',
        buffer: await readFile(COMPONENT),
      });
      await page.locator('[data-testid="upload-name"]').fill('ui-copy');
      await page.locator('[data-testid="upload-submit"]').click();
      await page.locator('[data-testid="upload-result"]', { hasText: 'ui-copy:' }).waitFor();
      await row('ui-copy').locator('[data-testid="handler-version"]', { hasText: /^[0-9a-f]{12}$/ }).waitFor();
      page.once('dialog', (d) => d.accept());
      await row('ui-copy').locator('[data-testid="delete"]').click();
      await row('ui-copy').waitFor({ state: 'detached' });
      await until('GET /handlers/ui-copy answers 404', async () => {
        const { status } = await host('GET', '/handlers/ui-copy');
        return { ok: status === 404, status };
      });
    });
  }

  if (pageErrors.length) fail(`the page threw: ${pageErrors.join('; ')}`);
}

const limit = setTimeout(() => {
  console.error(`\nui test FAILED: the run took longer than ${RUN_LIMIT_MS} ms`);
  process.exit(1);
}, RUN_LIMIT_MS);
limit.unref();

main().then(
  () => {
    console.log(`ui test: all ${stepNumber} checks passed`);
    process.exit(0);
  },
  (e) => {
    console.error(`\nui test FAILED: ${e instanceof Failure ? e.message : e.stack ?? e}`);
    process.exit(1);
  },
);
