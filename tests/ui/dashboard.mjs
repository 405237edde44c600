// Drives the coordinator's dashboard in Debian's headless Chromium, as a
// person would: sign in, see a job enqueued through the API appear, cancel
// it from the page, open every page, and be refused with a wrong token.
// Exits non-zero on the first check that fails (or if Chromium cannot
// start), printing why.
//
//   SKYCLAW_UI_URL=http://127.0.0.1:PORT SKYCLAW_UI_TOKEN=... node dashboard.mjs
//
// SKYCLAW_UI_SCREENSHOTS=DIR also saves a PNG of each page there (the ones
// in docs/ are made this way). SKYCLAW_UI_CHROMIUM names another browser
// binary than Debian's /usr/bin/chromium.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const url = required('SKYCLAW_UI_URL');
const token = required('SKYCLAW_UI_TOKEN');
const screenshots = process.env.SKYCLAW_UI_SCREENSHOTS;
const PATIENCE_MS = 20_000;
// Nothing in the background: the browser must not download or phone home.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
  '--disable-default-apps', '--disable-extensions',
];

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function call(method, path, body, credential = token) {
  const response = await fetch(url + path, {
    method,
    headers: { 'x-skyclaw-token': credential, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

// Polls `probe` until it returns something truthy, failing after PATIENCE_MS.
async function eventually(what, probe) {
  const deadline = Date.now() + PATIENCE_MS;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Saves the page as `docs/` shows it: all of it, or what fits the window.
async function shoot(page, name, fullPage = true) {
  if (screenshots) await page.screenshot({ path: join(screenshots, `dashboard-${name}.png`), fullPage });
}

const enqueue = (body) => eventually('the coordinator to take a job', () => call('POST', '/v1/jobs', body));

const profile = mkdtempSync(join(tmpdir(), 'skyclaw-ui-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.SKYCLAW_UI_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: FLAGS,
  viewport: { width: 1280, height: 860 },
  timeout: PATIENCE_MS,
});
let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(PATIENCE_MS);
  const consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  page.on('dialog', (dialog) => dialog.accept());

  // Signing in shows the overview.
  const loaded = await page.goto(`${url}/ui`);
  check(loaded.ok(), `GET /ui answered ${loaded.status()}`);
  check((loaded.headers()['content-security-policy'] || '').includes("default-src 'self'"), 'the page has its policy');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('[data-ready=overview]');
  check(await page.$('[data-pickup]') !== null, 'the overview shows the pickup latency');
  check(!page.url().includes(token), 'the token is not in the URL');
  check(await page.evaluate(() => document.cookie) === '', 'no cookie is set');

  // A job enqueued through the API appears on the live jobs page; its
  // command is markup and its environment a secret, neither of which may
  // reach the page as such.
  await page.click('nav a[data-page=jobs]');
  await page.waitForSelector('[data-ready=jobs]');
  const marker = '<img src=x id=injected>';
  const { job } = await enqueue({
    payload: { kind: 'shell', command: 'echo', args: [marker], env: { API_KEY: 'hunter2-secret' } },
    requirement: { requiredCapabilities: ['nowhere'] },
  });
  const row = `tr[data-job="${job.id}"]`;
  await page.waitForSelector(row);
  check((await page.textContent(row)).includes(marker), 'the command shows as text');
  check(await page.$('#injected') === null, 'the command is not parsed as HTML');
  await shoot(page, 'jobs');

  // Its page masks the environment; cancelling from there works.
  await page.click(`${row} a`);
  await page.waitForSelector('[data-ready=job]');
  const jobText = await page.textContent('#view');
  check(jobText.includes('API_KEY='), `the variable is named: ${jobText}`);
  check(!jobText.includes('hunter2-secret'), 'the variable\'s value is masked');
  await shoot(page, 'job');
  await page.click(`button[data-cancel="${job.id}"]`);
  await eventually('the API to say the job is cancelled',
    async () => (await call('GET', `/v1/jobs/${job.id}`)).job.status === 'cancelled');
  await page.waitForSelector('[data-ready=job] .status-cancelled');

  // The other pages load, and none shows the secret.
  await page.click('nav a[data-page=hosts]');
  await page.waitForSelector('[data-ready=hosts]');
  await shoot(page, 'hosts');
  await page.click('nav a[data-page=log]');
  await page.waitForSelector('[data-ready=log]');
  check(!(await page.textContent('#view')).includes('hunter2-secret'), 'the log page masks environments');
  await shoot(page, 'log', false);
  await page.click('nav a[data-page=overview]');
  await page.waitForSelector('[data-ready=overview]');
  await shoot(page, 'overview');
  check(await page.$('#injected') === null, 'nothing was injected anywhere');
  check(consoleErrors.length === 0, `no console error, got: ${consoleErrors.join(' | ')}`);

  // A wrong token is refused, and the page says so.
  await page.click('#sign-out');
  await page.fill('#token', `${token}-wrong`);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  const refusal = await page.textContent('#login-error');
  check(refusal.includes('401'), `the refusal names the status: ${refusal}`);
  check(await page.isHidden('#nav'), 'nothing is shown to a wrong token');
  check(await page.evaluate(() => sessionStorage.length) === 0, 'a refused token is not kept');
  await shoot(page, 'refused');
  console.log('dashboard: every check passed');
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
