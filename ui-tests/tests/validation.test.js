// Bad input in the key dialogs: each case is shown next to its field and nothing is sent.
// Also: API errors shown in place, keyboard use (focus trap, Escape, focus return).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, signedInAccount, closeAll, http, dialog, row, watchWrites } from '../lib/harness.js';

let browser;
let account;
let session;
let writes;

before(async () => {
  browser = await launch();
  const prepare = (page) => { writes = watchWrites(page); };
  ({ account, session } = await signedInAccount(browser, 'Bad input', { prepare }));
});
after(() => closeAll(session, browser));

async function openCreate(page) {
  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  const create = dialog(page, 'create-key');
  await create.waitFor();
  return create;
}

/** The error shown for a control (its aria-describedby error line). */
async function errorOf(control) {
  assert.equal(await control.getAttribute('aria-invalid'), 'true');
  const ids = (await control.getAttribute('aria-describedby')).split(' ');
  const errorId = ids.find((id) => id.endsWith('-error'));
  const page = control.page();
  const el = page.locator(`[id="${errorId}"]`);
  assert.equal(await el.isVisible(), true);
  return el.textContent();
}

test('empty name and no scope group: errors next to the fields, nothing sent', async () => {
  const { page } = session;
  const create = await openCreate(page);
  await create.getByRole('button', { name: 'Create API Key' }).click();
  assert.equal(await errorOf(create.getByLabel('Key name')), 'Enter a name for the key.');
  assert.match(await errorOf(create.getByLabel('Scope group', { exact: true })), /Choose a scope group/);
  // Focus goes to the first field in error.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'name');
  // Only spaces is empty too.
  await create.getByLabel('Key name').fill('   ');
  await create.getByRole('button', { name: 'Create API Key' }).click();
  assert.equal(await errorOf(create.getByLabel('Key name')), 'Enter a name for the key.');
  // Typing clears the error.
  await create.getByLabel('Key name').fill('Bad input key');
  assert.equal(await create.getByLabel('Key name').getAttribute('aria-invalid'), null);
  assert.deepEqual(writes, []);
  await page.keyboard.press('Escape');
  await create.waitFor({ state: 'detached' });
});

test('individual scopes with none ticked: "Select at least one scope", nothing sent', async () => {
  const { page } = session;
  const create = await openCreate(page);
  await create.getByLabel('Key name').fill('No scopes');
  await create.getByRole('radio', { name: /Individual scopes/ }).check();
  await create.getByRole('button', { name: 'Create API Key' }).click();
  const error = create.locator('.mode-panel:not([hidden]) .field-error');
  await error.waitFor();
  assert.equal(await error.textContent(), 'Select at least one scope.');
  assert.deepEqual(writes, []);
  await create.getByRole('button', { name: 'Cancel' }).click();
});

test('malformed IP lines, bad rate limits and a past expiry: each next to its field, nothing sent', async () => {
  const { page } = session;
  const create = await openCreate(page);
  await create.getByLabel('Key name').fill('Advanced bad input');
  await create.getByLabel('Scope group', { exact: true }).selectOption('message_sender');
  await create.getByText('Advanced Settings').click();
  const ips = create.getByLabel('Allowed IP Addresses');
  const rate = create.getByLabel('Rate Limit (requests per hour)');
  const expiry = create.getByLabel('Expiration Date');
  const submit = create.getByRole('button', { name: 'Create API Key' });

  for (const [text, line] of [['300.1.2.3', 1], ['10.0.0.1\nnot-an-ip', 2], ['10.0.0.0/33', 1], ['1.2.3', 1], ['10.0.0.1, 10.0.0.2', 1]]) {
    await ips.fill(text);
    await submit.click();
    assert.match(await errorOf(ips), new RegExp(`^Line ${line}: `), text);
  }
  await ips.fill('203.0.113.10\n2001:db8::/32\n\n198.51.100.0/24');

  for (const bad of ['0', '-5', 'abc', '1.5', '100000001']) {
    await rate.fill(bad);
    await submit.click();
    assert.match(await errorOf(rate), /Enter (a whole number greater than 0|at most)/, bad);
  }
  await rate.fill('250');

  await expiry.fill('2020-01-01');
  await submit.click();
  assert.equal(await errorOf(expiry), 'Choose a date in the future.');
  const yesterday = new Date(Date.now() - 86400e3).toISOString().slice(0, 10);
  await expiry.fill(yesterday);
  await submit.click();
  assert.equal(await errorOf(expiry), 'Choose a date in the future.');
  assert.deepEqual(writes, []);

  // All fixed: exactly one request, and the key is created with those settings.
  const tomorrow = new Date(Date.now() + 2 * 86400e3).toISOString().slice(0, 10);
  await expiry.fill(tomorrow);
  await submit.click();
  const created = dialog(page, 'key-created');
  await created.waitFor();
  assert.equal(writes.length, 1);
  await created.getByRole('button', { name: 'Done' }).click();
  const id = await row(page, 'Advanced bad input').getAttribute('data-key-id');
  const stored = await http('GET', `/admin/v1/api-keys/${id}`, { token: account.admin_token });
  assert.equal(stored.json.rate_limit_per_hour, 250);
  assert.equal(stored.json.allowed_ips.length, 3);
});

test('errors in collapsed advanced settings open the panel', async () => {
  const { page } = session;
  writes.length = 0;
  const create = await openCreate(page);
  await create.getByLabel('Key name').fill('Collapsed');
  await create.getByLabel('Scope group', { exact: true }).selectOption('read_only');
  await create.getByText('Advanced Settings').click();
  await create.getByLabel('Rate Limit (requests per hour)').fill('zero');
  await create.getByText('Advanced Settings').click();
  assert.equal(await create.getByLabel('Rate Limit (requests per hour)').isVisible(), false);
  await create.getByRole('button', { name: 'Create API Key' }).click();
  assert.equal(await create.getByLabel('Rate Limit (requests per hour)').isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'rate_limit_per_hour');
  assert.deepEqual(writes, []);
  await page.keyboard.press('Escape');
});

test('edit dialog: the same checks, nothing saved', async () => {
  const { page } = session;
  writes.length = 0;
  await row(page, 'Advanced bad input').getByRole('button', { name: /^Edit/ }).click();
  const edit = dialog(page, 'edit-key');
  await edit.getByLabel('Key name').fill('');
  await edit.getByLabel('Allowed IP Addresses').fill('999.999.999.999');
  await edit.getByLabel('Rate Limit (requests per hour)').fill('-1');
  await edit.getByLabel('Expiration Date').fill('2021-06-01');
  await edit.getByRole('button', { name: 'Save Changes' }).click();
  assert.equal(await errorOf(edit.getByLabel('Key name')), 'Enter a name for the key.');
  assert.match(await errorOf(edit.getByLabel('Allowed IP Addresses')), /^Line 1: /);
  assert.match(await errorOf(edit.getByLabel('Rate Limit (requests per hour)')), /whole number/);
  assert.equal(await errorOf(edit.getByLabel('Expiration Date')), 'Choose a date in the future.');
  // Individual scopes start from the group's (message_sender); untick them all.
  await edit.getByRole('radio', { name: /Individual scopes/ }).check();
  assert.equal(await edit.locator('fieldset[data-resource="broadcast"]').getByLabel('Send', { exact: true }).isChecked(), true);
  while (await edit.locator('.scope-grid input:checked').count()) await edit.locator('.scope-grid input:checked').first().uncheck();
  await edit.getByRole('button', { name: 'Save Changes' }).click();
  assert.equal(await edit.locator('.mode-panel:not([hidden]) .field-error').textContent(), 'Select at least one scope.');
  assert.deepEqual(writes, []);
  await edit.getByRole('button', { name: 'Cancel' }).click();
  const stored = await http('GET', `/admin/v1/api-keys/${await row(page, 'Advanced bad input').getAttribute('data-key-id')}`, { token: account.admin_token });
  assert.equal(stored.json.name, 'Advanced bad input');
});

test('an error from the API is shown in place, on its field or in the dialog', async () => {
  const { page } = session;
  // The server's own checks (here faked: one field error, then a server failure).
  await page.route('**/admin/v1/api-keys', async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    await route.fulfill({ status: 422, contentType: 'application/json', body: JSON.stringify({ error: { code: 'validation_failed', message: 'the request is not valid', request_id: 'req-1', details: [{ field: 'allowed_ips[0]', message: 'not allowed here' }] } }) });
  }, { times: 1 });
  const create = await openCreate(page);
  await create.getByLabel('Key name').fill('Server says no');
  await create.getByLabel('Scope group', { exact: true }).selectOption('read_only');
  await create.getByRole('button', { name: 'Create API Key' }).click();
  await create.locator('textarea[aria-invalid="true"]').waitFor();
  assert.equal(await errorOf(create.getByLabel('Allowed IP Addresses')), 'Not allowed here.');
  assert.equal(await create.getByLabel('Allowed IP Addresses').isVisible(), true);

  await page.route('**/admin/v1/api-keys', (route) => route.fulfill({ status: 500, contentType: 'application/json', body: JSON.stringify({ error: { code: 'internal', message: 'internal error', request_id: 'req-2' } }) }), { times: 1 });
  await create.getByRole('button', { name: 'Create API Key' }).click();
  await create.getByRole('alert').filter({ hasText: 'internal error (request req-2)' }).waitFor();
  // The dialog stays open with what was typed.
  assert.equal(await create.getByLabel('Key name').inputValue(), 'Server says no');
  await create.getByRole('button', { name: 'Cancel' }).click();
});

test('keyboard: Tab stays inside a dialog, Escape closes it, focus returns', async () => {
  const { page } = session;
  const opener = page.getByRole('button', { name: 'Create API Key' }).first();
  await opener.focus();
  await page.keyboard.press('Enter');
  const create = dialog(page, 'create-key');
  await create.waitFor();
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press(i % 3 === 0 ? 'Shift+Tab' : 'Tab');
    assert.equal(await page.evaluate(() => Boolean(document.activeElement?.closest('dialog'))), true, `step ${i}`);
  }
  // Space on a checkbox and the radio group work from the keyboard.
  await create.getByRole('radio', { name: /Individual scopes/ }).focus();
  await page.keyboard.press('Space');
  await create.locator('fieldset[data-resource="broadcast"]').getByLabel('Send', { exact: true }).focus();
  await page.keyboard.press('Space');
  assert.equal(await create.locator('fieldset[data-resource="broadcast"]').getByLabel('Send', { exact: true }).isChecked(), true);
  await page.keyboard.press('Escape');
  await create.waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'create-key');
  assert.deepEqual(session.errors.filter((e) => !/status of (422|500)/.test(e)), []);
});
