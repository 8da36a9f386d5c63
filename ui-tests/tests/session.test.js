// Sign-in, sign-out, an expired session, and how the page and its assets are served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, newPage, signIn, expireSessions, dialog } from '../lib/harness.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('the page and its assets are served with types, caching and security headers', async () => {
  const page = await fetch(`${env.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  const etag = page.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${env.base}/`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  for (const [file, type] of [['app.js', /^text\/javascript/], ['keys.js', /^text\/javascript/], ['webhooks.js', /^text\/javascript/], ['webhook_form.js', /^text\/javascript/], ['app.css', /^text\/css/], ['favicon.svg', /^image\/svg\+xml/]]) {
    const r = await fetch(`${env.base}/ui/${file}`);
    assert.equal(r.status, 200, file);
    assert.match(r.headers.get('content-type'), type, file);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  }
  // Nothing of the API is shadowed.
  assert.equal((await fetch(`${env.base}/ui/nope.js`)).status, 404);
  assert.equal((await fetch(`${env.base}/healthz`)).status, 200);
  assert.equal((await fetch(`${env.base}/admin/v1/api-keys`)).status, 401);
  assert.equal((await fetch(`${env.base}/api/v1/me`)).status, 401);
  assert.notEqual((await fetch(`${env.base}/ui/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"token":"adm_x"}' })).status, 404);
});

test('sign-in refuses an empty or wrong token in place, then signs in and out', async () => {
  const { context, page, errors } = await newPage(browser);
  await page.goto(`${env.base}/`);
  const token = page.getByLabel('Admin token');
  await token.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'admin-token');

  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Enter your admin token.').waitFor();
  assert.equal(await token.getAttribute('aria-invalid'), 'true');

  await token.fill('adm_thisisnotarealtoken0000000000000000000');
  await page.keyboard.press('Enter');
  await page.getByText('That admin token is not valid').waitFor();

  await token.fill(env.admin);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'API Keys', level: 1 }).waitFor();
  // The session cookie is HttpOnly: the page cannot read it.
  assert.equal(await page.evaluate(() => document.cookie.includes('ezp_session')), false);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'ezp_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You have signed out.').waitFor();
  await page.reload();
  await page.getByLabel('Admin token').waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test('an expired session goes back to sign-in, closing dialogs, and signing in again resumes', async () => {
  const { context, page } = await newPage(browser);
  await signIn(page);
  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  await dialog(page, 'create-key').waitFor();
  await dialog(page, 'create-key').getByLabel('Key name').fill('After expiry');
  await dialog(page, 'create-key').getByLabel('Scope group', { exact: true }).selectOption('message_sender');

  assert.ok(await expireSessions() >= 1);
  await dialog(page, 'create-key').getByRole('button', { name: 'Create API Key' }).click();
  await page.getByText('Your session has expired. Sign in again to continue.').waitFor();
  assert.equal(await page.locator('dialog').count(), 0);

  await page.getByLabel('Admin token').fill(env.admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API Keys', level: 1 }).waitFor();

  // Also on a plain navigation: the next request after expiry lands on sign-in.
  await expireSessions();
  await page.reload();
  await page.getByLabel('Admin token').waitFor();
  await context.close();
});
