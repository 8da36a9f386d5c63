// Shared set-up of the browser tests: the running api (started by scripts/ui-test.sh), a
// headless Debian Chromium driven by playwright-core, and small helpers.

import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

const run = promisify(execFile);

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with bash scripts/ui-test.sh`);
  return value;
}

export const env = {
  base: need('EZP_BASE_URL'),
  admin: need('EZP_ADMIN_TOKEN'),
  root: need('EZP_ROOT_TOKEN'),
  redisPrefix: need('EZP_REDIS_PREFIX'),
  databaseUrl: need('EZP_DATABASE_URL'),
  redisUrl: process.env.EZP_REDIS_URL || 'redis://127.0.0.1:6379/0',
  screenshots: process.env.EZP_SCREENSHOT_DIR || '',
  chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
};

// The flags this machine needs (no GPU, no network calls of Chromium's own).
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', '--font-render-hinting=none',
];

export async function launch() {
  return chromium.launch({ executablePath: env.chromium, headless: true, args: FLAGS });
}

/** A fresh browser context (own cookies) with clipboard access, and a page in it. */
export async function newPage(browser, { width = 1440, height = 900 } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.base });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[14]/.test(m.text())) errors.push(m.text()); });
  return { context, page, errors };
}

export async function signIn(page, token = env.admin) {
  await page.goto(`${env.base}/`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API Keys', level: 1 }).waitFor();
}

/**
 * A fresh account named `name` and a page of `browser` signed in as its admin.
 * `prepare(page)` runs on the page before signing in.
 */
export async function signedInAccount(browser, name, { viewport, prepare } = {}) {
  const account = await newAccount(name);
  const session = await newPage(browser, viewport);
  await prepare?.(session.page);
  await signIn(session.page, account.admin_token);
  return { account, session };
}

/** Closes what a test file's `before` opened (either may be missing after a failure). */
export async function closeAll(session, browser) {
  await session?.context.close();
  await browser?.close();
}

/** A call to the JSON API with a bearer token. */
export async function http(method, urlPath, { token = env.admin, body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${env.base}${urlPath}`, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: response.status, headers: response.headers, json, text };
}

/** A new account (its own keys), through the root token. */
export async function newAccount(name) {
  const r = await http('POST', '/admin/v1/accounts', { token: env.root, body: { name } });
  if (r.status !== 201) throw new Error(`account not created: ${r.status} ${r.text}`);
  return r.json;
}

/** Ends every UI session of this api (what Redis does when a session's TTL runs out). */
export async function expireSessions() {
  const url = new URL(env.redisUrl);
  const args = ['-h', url.hostname, '-p', url.port || '6379', '-n', (url.pathname || '/0').slice(1) || '0'];
  const { stdout } = await run('redis-cli', [...args, '--scan', '--pattern', `${env.redisPrefix}:session:*`]);
  const keys = stdout.split('\n').filter(Boolean);
  if (keys.length) await run('redis-cli', [...args, 'DEL', ...keys]);
  return keys.length;
}

/** Runs SQL on the test database (fixture rows the API has no endpoint for yet). */
export async function sql(statement) {
  const { stdout } = await run('psql', [env.databaseUrl, '-Atqc', statement]);
  return stdout.trim();
}

export async function screenshot(page, name, options = {}) {
  if (!env.screenshots) return;
  await mkdir(env.screenshots, { recursive: true });
  await page.screenshot({ path: path.join(env.screenshots, name), animations: 'disabled', caret: 'hide', ...options });
}

/** A screenshot of one element with a margin of the page around it. */
export async function screenshotPadded(page, locator, name, pad = 12) {
  if (!env.screenshots) return;
  const box = await locator.boundingBox();
  if (!box) throw new Error(`${name}: element not visible`);
  await screenshot(page, name, { clip: { x: Math.max(0, box.x - pad), y: Math.max(0, box.y - pad), width: box.width + 2 * pad, height: box.height + 2 * pad } });
}

/** Records the requests that change API keys, to check that bad input sends nothing. */
export function watchWrites(page) {
  const writes = [];
  page.on('request', (r) => {
    if (r.url().includes('/admin/v1/api-keys') && ['POST', 'PATCH', 'DELETE'].includes(r.method())) writes.push(`${r.method()} ${r.url()}`);
  });
  return writes;
}

export function dialog(page, name) {
  return page.locator(`dialog[data-dialog="${name}"]`);
}

export function row(page, keyName) {
  return page.locator('tbody tr', { has: page.locator('.key-name', { hasText: new RegExp(`^${keyName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
