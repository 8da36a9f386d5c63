// The API keys page end to end: create (group; individual scopes + advanced settings), copy,
// use the key, toggle, edit, regenerate, usage stats, documentation page, delete, and the
// table's empty state, pagination and sorting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, newPage, signIn, signedInAccount, closeAll, http, newAccount, sql, dialog, row, sleep } from '../lib/harness.js';

let browser;
let account;
let session;
const keys = {};

before(async () => {
  browser = await launch();
  ({ account, session } = await signedInAccount(browser, 'Keys flow'));
});
after(() => closeAll(session, browser));

const me = (key) => http('GET', '/api/v1/me', { token: key });

async function readClipboard(page) {
  return page.evaluate(() => navigator.clipboard.readText());
}

test('a new account sees the empty state', async () => {
  const { page } = session;
  await page.getByRole('heading', { name: 'No API keys yet' }).waitFor();
  assert.equal(await page.locator('table.keys-table').count(), 0);
});

test('create a key with a scope group, copy it once, and use it', async () => {
  const { page } = session;
  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  const create = dialog(page, 'create-key');
  await create.waitFor();
  // Focus starts in the dialog, on the name.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'name');
  await create.getByLabel('Key name').fill('Website Contact Form');
  await create.getByLabel('Scope group', { exact: true }).selectOption({ label: 'Broadcast Manager' });
  await create.getByText('Send broadcasts, read templates, read contacts').waitFor();
  await create.getByText('Sending bulk messages from external tools').waitFor();
  await create.getByRole('button', { name: 'Create API Key' }).click();

  const created = dialog(page, 'key-created');
  await created.getByText("This is the only time you'll see the full API key.").waitFor();
  const value = await created.getByLabel('Your new API key').inputValue();
  assert.match(value, /^sk_live_[0-9A-Za-z]{38,}$/);
  await created.getByRole('button', { name: 'Copy' }).click();
  await created.getByText('Copied!').waitFor();
  assert.equal(await readClipboard(page), value);
  await created.getByRole('button', { name: 'Done' }).click();
  await created.waitFor({ state: 'detached' });
  keys.website = { value };

  const r = row(page, 'Website Contact Form');
  await r.waitFor();
  assert.equal(await r.locator('.tag-group').textContent(), 'Broadcast Manager');
  const masked = await r.locator('code.masked').textContent();
  assert.match(masked, /^sk_live_\w{6}\.\.\.\w{4}$/);
  assert.ok(value.startsWith(masked.slice(0, 14)) && value.endsWith(masked.slice(-4)));
  assert.deepEqual(await r.locator('.badge:not(.badge-more)').allTextContents(), ['broadcast:send', 'contacts:read']);
  assert.equal(await r.locator('.badge-more').textContent(), '+1 more');
  assert.equal(await r.locator('td.col-used').textContent(), 'Never');
  assert.equal(await r.locator('.status').textContent(), 'Active');
  assert.equal(await page.locator('dialog').count(), 0);

  // The copied value works against the public API.
  const res = await me(await readClipboard(page));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.name, 'Website Contact Form');
  assert.deepEqual(res.json.scopes, ['broadcast:send', 'contacts:read', 'template:read']);
  assert.equal(res.headers.get('x-ratelimit-limit'), '1000');
  keys.website.id = (await r.getAttribute('data-key-id'));

  // Last Used follows (flushed every 200 ms by the test api).
  await sleep(600);
  await page.reload();
  await row(page, 'Website Contact Form').locator('td.col-used time').waitFor();
});

test('create a key with individual scopes and advanced settings', async () => {
  const { page } = session;
  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  const create = dialog(page, 'create-key');
  await create.getByLabel('Key name').fill('CRM Sync');
  await create.getByRole('radio', { name: /Individual scopes/ }).check();
  const contacts = create.locator('fieldset[data-resource="contacts"]');
  await contacts.getByLabel('All', { exact: true }).check();
  for (const action of ['Create', 'Read', 'Read All', 'Update', 'Delete']) {
    assert.equal(await contacts.getByLabel(action, { exact: true }).isChecked(), true, action);
  }
  await contacts.getByLabel('Delete', { exact: true }).uncheck();
  assert.equal(await contacts.getByLabel('All', { exact: true }).isChecked(), false);
  await contacts.getByLabel('Delete', { exact: true }).check();
  assert.equal(await contacts.getByLabel('All', { exact: true }).isChecked(), true);
  await create.locator('fieldset[data-resource="leads"]').getByLabel('Read', { exact: true }).check();

  // Advanced settings are collapsed until opened; the rate limit is prefilled with 1000.
  const ips = create.getByLabel('Allowed IP Addresses');
  assert.equal(await ips.isVisible(), false);
  await create.getByText('Advanced Settings').click();
  // The hint names what the API accepts: IPv4 and IPv6 addresses and CIDR ranges.
  const ipsHint = await create.locator('.field:has(textarea[name="allowed_ips"]) .hint').textContent();
  assert.match(ipsHint, /IPv4 or IPv6 address or CIDR range/);
  await ips.fill('127.0.0.1\n10.0.0.0/8\n2001:db8::/32\n');
  const rate = create.getByLabel('Rate Limit (requests per hour)');
  assert.equal(await rate.inputValue(), '1000');
  await rate.fill('500');
  const expiry = new Date(Date.now() + 30 * 86400e3).toISOString().slice(0, 10);
  await create.getByLabel('Expiration Date').fill(expiry);
  await create.getByRole('button', { name: 'Create API Key' }).click();

  const created = dialog(page, 'key-created');
  const value = await created.getByLabel('Your new API key').inputValue();
  await created.getByRole('button', { name: 'Copy' }).click();
  assert.equal(await readClipboard(page), value);
  await created.getByRole('button', { name: 'Done' }).click();

  const r = row(page, 'CRM Sync');
  await r.waitFor();
  assert.equal(await r.locator('.tag-custom').textContent(), 'Custom scopes');
  assert.deepEqual(await r.locator('.badge:not(.badge-more)').allTextContents(), ['contacts:all', 'leads:read']);
  assert.equal(await r.locator('.badge-more').count(), 0);
  const id = await r.getAttribute('data-key-id');
  keys.crm = { id, value };

  const stored = await http('GET', `/admin/v1/api-keys/${id}`, { token: account.admin_token });
  assert.equal(stored.json.allowed_ips.length, 3);
  assert.ok(stored.json.allowed_ips.includes('10.0.0.0/8'));
  assert.ok(stored.json.allowed_ips.includes('2001:db8::/32'));
  assert.ok(stored.json.allowed_ips.some((ip) => ip.startsWith('127.0.0.1')));
  assert.equal(stored.json.rate_limit_per_hour, 500);
  assert.equal(stored.json.scope_group, null);
  assert.ok(stored.json.expires_at.startsWith(expiry) || new Date(stored.json.expires_at) > new Date(Date.now() + 29 * 86400e3));

  const res = await me(value);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers.get('x-ratelimit-limit'), '500');
  assert.deepEqual(res.json.scopes, ['contacts:all', 'leads:read']);
});

test('toggle a key inactive (refused at once) and active again', async () => {
  const { page } = session;
  const toggle = row(page, 'Website Contact Form').getByRole('switch');
  assert.equal(await toggle.getAttribute('aria-checked'), 'true');
  await toggle.click();
  await row(page, 'Website Contact Form').locator('.status', { hasText: /^Inactive$/ }).waitFor();
  assert.equal(await row(page, 'Website Contact Form').getByRole('switch').getAttribute('aria-checked'), 'false');
  // Focus stays on the switch for keyboard users.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('role')), 'switch');
  const refused = await me(keys.website.value);
  assert.equal(refused.status, 401);
  assert.equal(refused.json.error.code, 'key_inactive');

  await page.keyboard.press('Space');
  await row(page, 'Website Contact Form').locator('.status', { hasText: /^Active$/ }).waitFor();
  assert.equal((await me(keys.website.value)).status, 200);
});

test('edit a key: same fields, no key value, the key keeps working', async () => {
  const { page } = session;
  await row(page, 'CRM Sync').getByRole('button', { name: 'Edit: CRM Sync' }).click();
  const edit = dialog(page, 'edit-key');
  await edit.waitFor();
  assert.equal(await edit.getByLabel('Key name').inputValue(), 'CRM Sync');
  assert.equal(await edit.getByRole('radio', { name: /Individual scopes/ }).isChecked(), true);
  assert.equal(await edit.locator('fieldset[data-resource="contacts"]').getByLabel('All', { exact: true }).isChecked(), true);
  assert.equal(await edit.locator('fieldset[data-resource="leads"]').getByLabel('Read', { exact: true }).isChecked(), true);
  // Advanced settings open with the stored values; the key value is nowhere.
  assert.equal(await edit.getByLabel('Rate Limit (requests per hour)').inputValue(), '500');
  assert.match(await edit.getByLabel('Allowed IP Addresses').inputValue(), /10\.0\.0\.0\/8/);
  assert.equal(await edit.locator('.key-value').count(), 0);
  assert.ok(!(await edit.textContent()).includes(keys.crm.value));

  await edit.getByLabel('Key name').fill('CRM Sync (EU)');
  await edit.locator('fieldset[data-resource="leads"]').getByLabel('Assign', { exact: true }).check();
  await edit.getByLabel('Rate Limit (requests per hour)').fill('');
  await edit.getByRole('button', { name: 'Save Changes' }).click();
  await edit.waitFor({ state: 'detached' });
  const r = row(page, 'CRM Sync (EU)');
  await r.waitFor();
  assert.deepEqual(await r.locator('.badge:not(.badge-more)').allTextContents(), ['contacts:all', 'leads:assign']);

  const res = await me(keys.crm.value);
  assert.equal(res.status, 200);
  assert.equal(res.json.name, 'CRM Sync (EU)');
  assert.equal(res.json.rate_limit_per_hour, null);
  assert.deepEqual(res.json.scopes, ['contacts:all', 'leads:assign', 'leads:read']);

  // Switching an individual-scopes key to a group.
  await r.getByRole('button', { name: /^Edit:/ }).click();
  await edit.getByRole('radio', { name: /Scope group/ }).check();
  await edit.getByLabel('Scope group', { exact: true }).selectOption('contact_manager');
  await edit.getByRole('button', { name: 'Save Changes' }).click();
  await row(page, 'CRM Sync (EU)').locator('.tag-group', { hasText: 'Contact Manager' }).waitFor();
});

test('regenerate: confirmation, the new key once, the old key refused', async () => {
  const { page } = session;
  const before = await row(page, 'Website Contact Form').locator('code.masked').textContent();
  await row(page, 'Website Contact Form').getByRole('button', { name: /^Regenerate/ }).click();
  const confirm = dialog(page, 'confirm-regenerate');
  await confirm.getByText('stops working immediately').waitFor();
  // Cancel first: nothing changes.
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await me(keys.website.value)).status, 200);

  await row(page, 'Website Contact Form').getByRole('button', { name: /^Regenerate/ }).click();
  await dialog(page, 'confirm-regenerate').getByRole('button', { name: 'Regenerate' }).click();
  const created = dialog(page, 'key-created');
  await created.getByText("This is the only time you'll see the full API key.").waitFor();
  const value = await created.getByLabel('Your new API key').inputValue();
  assert.notEqual(value, keys.website.value);
  await created.getByRole('button', { name: 'Copy' }).click();
  assert.equal(await readClipboard(page), value);
  await created.getByRole('button', { name: 'Done' }).click();
  await page.waitForFunction((b) => {
    const cells = [...document.querySelectorAll('tbody tr')].filter((tr) => tr.querySelector('.key-name')?.textContent === 'Website Contact Form');
    return cells.length === 1 && cells[0].querySelector('code.masked').textContent !== b;
  }, before);

  const old = await me(keys.website.value);
  assert.equal(old.status, 401);
  assert.equal(old.json.error.code, 'invalid_api_key');
  assert.equal((await me(value)).status, 200);
  keys.website.value = value;
});

test('usage stats: metric cards and delivery/read rate bars', async () => {
  const { page } = session;
  await row(page, 'Website Contact Form').getByRole('button', { name: /View Usage Stats/ }).click();
  const usage = dialog(page, 'usage');
  for (const label of ['Total Messages', 'Sent', 'Delivered', 'Read', 'Failed', 'Last Message']) {
    await usage.locator('.metric-label', { hasText: new RegExp(`^${label}$`) }).waitFor();
  }
  assert.equal(await usage.locator('.metric-last .metric-value').textContent(), 'Never');
  assert.equal(await usage.getByRole('progressbar', { name: 'Delivery Rate' }).getAttribute('aria-valuenow'), '0');
  await page.keyboard.press('Escape');
  await usage.waitFor({ state: 'detached' });
  // Focus returns to the button that opened the dialog.
  assert.match(await page.evaluate(() => document.activeElement?.getAttribute('aria-label') || ''), /^View Usage Stats/);

  // With counters (as the status consumer keeps them), the numbers and rates show.
  await sql(`INSERT INTO api_key_usage (key_id, total_messages, sent, delivered, read, failed, last_message_at)
             VALUES ('${keys.website.id}', 200, 196, 180, 90, 4, now())`);
  await row(page, 'Website Contact Form').getByRole('button', { name: /View Usage Stats/ }).click();
  await usage.locator('.metric-total .metric-value', { hasText: '200' }).waitFor();
  assert.equal(await usage.locator('.metric-delivered .metric-value').textContent(), '180');
  assert.equal(await usage.locator('.metric-failed .metric-value').textContent(), '4');
  assert.notEqual(await usage.locator('.metric-last .metric-value').textContent(), 'Never');
  assert.equal(await usage.getByRole('progressbar', { name: 'Delivery Rate' }).getAttribute('aria-valuenow'), '90');
  assert.equal(await usage.getByRole('progressbar', { name: 'Read Rate' }).getAttribute('aria-valuenow'), '45');
  await usage.getByRole('button', { name: 'Close' }).last().click();
});

test('documentation page: sections by scope, examples with copy, the key\'s limit', async () => {
  const { page } = session;
  // Broadcast Manager: broadcast:send, contacts:read, template:read.
  await row(page, 'Website Contact Form').getByRole('link', { name: /API documentation/ }).click();
  await page.getByRole('heading', { name: 'API Documentation', level: 1 }).waitFor();
  const sections = await page.locator('.doc-section h2').allTextContents();
  assert.deepEqual(sections, ['Authentication', 'Broadcast API', 'Contacts API', 'Templates API', 'Error Codes', 'Rate Limits']);
  assert.equal(await page.locator('#base-url').textContent(), `${env.base}/api/v1`);
  assert.equal(await page.locator('#key-rate-limit').textContent(), '1,000 requests per hour');
  for (const header of ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'RateLimit-Policy', 'RateLimit', 'Retry-After']) {
    await page.locator('[data-section="rate-limits"] code', { hasText: new RegExp(`^${header}$`) }).waitFor();
  }
  for (const code of ['401', '403', '429', '500']) await page.locator('[data-section="errors"] td strong', { hasText: code }).waitFor();
  // Only the endpoints the scopes allow.
  const contactScopes = await page.locator('[data-section="contacts"] .endpoint').evaluateAll((els) => els.map((e) => e.dataset.scope));
  assert.deepEqual(contactScopes, ['contacts:read']);
  const broadcastScopes = await page.locator('[data-section="broadcast"] .endpoint').evaluateAll((els) => els.map((e) => e.dataset.scope));
  assert.ok(broadcastScopes.length >= 2 && broadcastScopes.every((s) => s === 'broadcast:send'), broadcastScopes.join());
  await page.locator('[data-section="broadcast"] [data-example="recipients-send"] h4', { hasText: /^POST \/broadcasts\/[^/]+\/send$/ }).waitFor();
  // The broadcast picker is there; while the server cannot list broadcasts it says so.
  await page.getByLabel('Broadcast', { exact: true }).waitFor();

  // Each example: cURL and JavaScript tabs, and Copy copies the shown one.
  const auth = page.locator('[data-section="authentication"] .code-tabs');
  await auth.getByRole('button', { name: /^Copy GET \/me/ }).click();
  const curl = await readClipboard(page);
  assert.match(curl, new RegExp(`^curl -X GET "${env.base}/api/v1/me"`));
  await auth.getByRole('tab', { name: 'JavaScript' }).click();
  await auth.getByRole('button', { name: /^Copy GET \/me/ }).click();
  const js = await readClipboard(page);
  assert.match(js, /await fetch\(/);
  // The copied example works as is (with the key in the environment variable).
  const url = /fetch\("([^"]+)"/.exec(js)[1];
  const res = await fetch(url, { headers: { Authorization: `Bearer ${keys.website.value}` } });
  assert.equal(res.status, 200);
  // Arrow keys move between the tabs.
  await auth.getByRole('tab', { name: 'JavaScript' }).focus();
  await page.keyboard.press('ArrowLeft');
  assert.equal(await auth.getByRole('tab', { name: 'cURL' }).getAttribute('aria-selected'), 'true');

  // Contact Manager key: contacts:all, leads:read, no limit.
  await page.getByRole('link', { name: 'API Keys' }).first().click();
  await row(page, 'CRM Sync (EU)').getByRole('link', { name: /API documentation/ }).click();
  await page.locator('[data-section="leads"]').waitFor();
  assert.deepEqual(await page.locator('.doc-section h2').allTextContents(), ['Authentication', 'Contacts API', 'Leads API', 'Error Codes', 'Rate Limits']);
  // Contacts (5), the CSV import (3), the suppression list and its keywords (5).
  assert.equal(await page.locator('[data-section="contacts"] .endpoint').count(), 13);
  assert.equal(await page.locator('#key-rate-limit').textContent(), 'no limit');
  await page.getByRole('link', { name: 'API Keys' }).first().click();
  await row(page, 'CRM Sync (EU)').waitFor();
});

test('delete: confirmation, then the key is gone and refused', async () => {
  const { page } = session;
  await row(page, 'CRM Sync (EU)').getByRole('button', { name: /^Delete/ }).click();
  const confirm = dialog(page, 'confirm-delete');
  await confirm.getByText('will be permanently removed').waitFor();
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await row(page, 'CRM Sync (EU)').waitFor({ state: 'detached' });
  const res = await me(keys.crm.value);
  assert.equal(res.status, 401);
  assert.deepEqual(session.errors, []);
});

test('pagination (10, 25, 50 per page) and sorting by name and status', async () => {
  const other = await newAccount('Many keys');
  const names = [];
  for (let i = 0; i < 27; i += 1) {
    const name = `Key ${String.fromCharCode(65 + (i * 7) % 26)}${String(i).padStart(2, '0')}`;
    names.push(name);
    const r = await http('POST', '/admin/v1/api-keys', { token: other.admin_token, body: { name, scope_group: 'read_only' } });
    assert.equal(r.status, 201);
    if (i % 4 === 0) await http('PATCH', `/admin/v1/api-keys/${r.json.id}`, { token: other.admin_token, body: { active: false } });
  }
  const { context, page, errors } = await newPage(browser);
  await signIn(page, other.admin_token);
  const rows = page.locator('tbody tr');
  await page.getByText('1–10 of 27').waitFor();
  assert.equal(await rows.count(), 10);
  assert.equal(await rows.first().locator('td.col-num').textContent(), '1');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('11–20 of 27').waitFor();
  assert.equal(await rows.first().locator('td.col-num').textContent(), '11');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('21–27 of 27').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true);
  await page.getByLabel('Rows per page').selectOption('25');
  await page.getByText('1–25 of 27').waitFor();
  assert.equal(await rows.count(), 25);
  await page.getByLabel('Rows per page').selectOption('50');
  await page.getByText('1–27 of 27').waitFor();
  assert.equal(await rows.count(), 27);

  await page.getByRole('button', { name: 'Name' }).click();
  await page.locator('th[aria-sort="ascending"]', { hasText: 'Name' }).waitFor();
  const sorted = [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
  assert.deepEqual(await page.locator('tbody .key-name').allTextContents(), sorted);
  await page.getByRole('button', { name: 'Name' }).click();
  await page.locator('th[aria-sort="descending"]', { hasText: 'Name' }).waitFor();
  assert.deepEqual(await page.locator('tbody .key-name').allTextContents(), [...sorted].reverse());

  await page.getByRole('button', { name: 'Status' }).click();
  await page.locator('th[aria-sort="ascending"]', { hasText: 'Status' }).waitFor();
  const statuses = await page.locator('tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.status));
  assert.deepEqual(statuses, [...statuses].sort());
  assert.equal(statuses[0], 'active');
  assert.equal(statuses.at(-1), 'inactive');
  await page.getByRole('button', { name: 'Status' }).click();
  await page.locator('th[aria-sort="descending"]', { hasText: 'Status' }).waitFor();
  assert.equal(await page.locator('tbody tr').first().getAttribute('data-status'), 'inactive');
  assert.deepEqual(errors, []);
  await context.close();
});

test('laptop widths: the page and the key table fit without sideways scrolling', async () => {
  const other = await newAccount('Laptop');
  for (const [name, group] of [['Website Contact Form', 'broadcast_manager'], ['Partner Portal Integration (EU region)', 'full_access'], ['n8n Automation', 'webhook_automation']]) {
    await http('POST', '/admin/v1/api-keys', { token: other.admin_token, body: { name, scope_group: group } });
  }
  for (const [width, height] of [[1366, 768], [1280, 720], [1024, 700]]) {
    const { context, page } = await newPage(browser, { width, height });
    await signIn(page, other.admin_token);
    await page.locator('tbody tr').first().waitFor();
    const fits = await page.evaluate(() => {
      const wrap = document.querySelector('.table-wrap');
      return { page: document.documentElement.scrollWidth <= window.innerWidth, table: wrap.scrollWidth <= wrap.clientWidth + 1 };
    });
    assert.deepEqual(fits, { page: true, table: true }, `${width}px`);
    if (process.env.EZP_DEBUG_SHOTS) await page.screenshot({ path: `${process.env.EZP_DEBUG_SHOTS}/list-${width}.png`, fullPage: true });
    await page.getByRole('button', { name: 'Create API Key' }).first().click();
    const create = dialog(page, 'create-key');
    await create.getByRole('radio', { name: /Individual scopes/ }).check();
    await create.getByText('Advanced Settings').click();
    // The dialog fits the window; its body scrolls, the buttons stay reachable.
    const box = await create.boundingBox();
    assert.ok(box.height <= height && box.width <= width, `${width}px dialog`);
    await create.getByRole('button', { name: 'Create API Key' }).scrollIntoViewIfNeeded();
    assert.equal(await create.getByRole('button', { name: 'Create API Key' }).isVisible(), true);
    if (process.env.EZP_DEBUG_SHOTS) await page.screenshot({ path: `${process.env.EZP_DEBUG_SHOTS}/create-${width}.png` });
    await page.keyboard.press('Escape');
    const id = await page.locator('tbody tr').first().getAttribute('data-key-id');
    await page.goto(`${env.base}/#/api-keys/${id}/docs`);
    await page.locator('[data-section="rate-limits"]').waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, `${width}px docs`);
    if (process.env.EZP_DEBUG_SHOTS) await page.screenshot({ path: `${process.env.EZP_DEBUG_SHOTS}/docs-${width}.png` });
    await context.close();
  }
});
