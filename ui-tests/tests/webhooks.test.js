// The Webhooks page end to end: the empty state, add an endpoint (its secret shown once, with
// Copy, and nowhere else), bad input (in the page and from the API), edit, toggle (and an
// endpoint disabled after failing), rotate the secret, the delivery log (Load more, the event
// body, Retry, the state filter, Recover failed since…), delete, keyboard use and laptop widths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http_ from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';
import { env, launch, newPage, signIn, signedInAccount, closeAll, http, sql, dialog } from '../lib/harness.js';

let browser;
let account;
let session;
let receiver;
let hookUrl;
let writes;
const state = {};

const ENDPOINTS = '/admin/v1/webhook-endpoints';

/** A local receiver (http:// to loopback is accepted in development): answers 204. */
function startReceiver() {
  const received = [];
  const server = http_.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, received, port: server.address().port }));
  });
}

before(async () => {
  browser = await launch();
  receiver = await startReceiver();
  hookUrl = `http://127.0.0.1:${receiver.port}/hooks/ezpulze`;
  const prepare = (page) => {
    writes = [];
    page.on('request', (r) => {
      if (r.url().includes(ENDPOINTS) && ['POST', 'PATCH', 'DELETE'].includes(r.method())) writes.push(`${r.method()} ${r.url()}`);
    });
  };
  ({ account, session } = await signedInAccount(browser, 'Webhooks flow', { prepare }));
  // Two keys for the key filter.
  for (const name of ['CRM Integration', 'Website Contact Form']) {
    const r = await http('POST', '/admin/v1/api-keys', { token: account.admin_token, body: { name, scope_group: 'full_access' } });
    assert.equal(r.status, 201, r.text);
    state[name] = r.json;
  }
});
after(async () => {
  await closeAll(session, browser);
  await new Promise((resolve) => (receiver ? receiver.server.close(resolve) : resolve()));
});

const readClipboard = (page) => page.evaluate(() => navigator.clipboard.readText());
const endpointRow = (page, id) => page.locator(`tbody tr[data-endpoint-id="${id}"]`);
const getEndpoint = (id) => http('GET', `${ENDPOINTS}/${id}`, { token: account.admin_token });
// Console errors of the answers the tests provoke on purpose (422 from the API).
const unexpected = (errors) => errors.filter((e) => !/status of 422/.test(e));

/** The error shown for a control (its aria-describedby error line). */
async function errorOf(control) {
  assert.equal(await control.getAttribute('aria-invalid'), 'true');
  const ids = (await control.getAttribute('aria-describedby')).split(' ');
  const errorId = ids.find((id) => id.endsWith('-error'));
  const el = control.page().locator(`[id="${errorId}"]`);
  assert.equal(await el.isVisible(), true);
  return el.textContent();
}

test('the Webhooks page: navigation and the empty state', async () => {
  const { page } = session;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
  assert.equal(await page.locator('.nav-link[aria-current="page"]').textContent(), 'Webhooks');
  await page.getByRole('heading', { name: 'No webhook endpoints yet' }).waitFor();
  assert.equal(await page.locator('table.webhooks-table').count(), 0);
  assert.equal(await page.title(), 'Webhooks · EzPulze');
});

test('add an endpoint: the secret once with Copy, and nowhere else', async () => {
  const { page } = session;
  await page.locator('#add-endpoint').click();
  const create = dialog(page, 'create-webhook');
  await create.waitFor();
  // Focus starts on the URL; the defaults: no event ticked (= all), 50 per second, live.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'url');
  assert.equal(await create.getByLabel('Max requests per second').inputValue(), '50');
  assert.equal(await create.getByRole('radio', { name: /Live/ }).isChecked(), true);
  for (const type of ['message.sent', 'message.delivered', 'message.read', 'message.failed', 'dispatch.completed', 'dispatch.paused']) {
    assert.equal(await create.getByRole('checkbox', { name: new RegExp(`^${type.replace('.', '\\.')}`) }).isChecked(), false, type);
  }
  // The key filter lists the account's keys.
  const keySelect = create.getByLabel('Only messages sent with these keys');
  await create.locator('select[name="key_ids"]:not([disabled])').waitFor();
  assert.equal(await keySelect.locator('option').count(), 2);

  await create.getByLabel('Endpoint URL').fill(hookUrl);
  await create.getByRole('checkbox', { name: /^message\.delivered/ }).check();
  await create.getByRole('checkbox', { name: /^message\.failed/ }).check();
  await keySelect.selectOption(state['CRM Integration'].id);
  await create.getByLabel('Max requests per second').fill('20');
  await create.getByLabel('Description').fill('CRM sync');
  await create.getByLabel("Include the recipient's phone number").check();
  await create.getByRole('button', { name: 'Add endpoint' }).click();

  const shown = dialog(page, 'webhook-secret');
  await shown.getByText("This is the only time you'll see this signing secret.").waitFor();
  const secret = await shown.getByLabel('Signing secret').inputValue();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{20,}$/);
  // Focus is on Copy; it copies the secret.
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Copy');
  await shown.getByRole('button', { name: 'Copy' }).click();
  await shown.getByText('Copied!').waitFor();
  assert.equal(await readClipboard(page), secret);
  await shown.getByRole('button', { name: 'Done' }).click();
  await shown.waitFor({ state: 'detached' });
  // Focus returns to the button that opened the dialog.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'add-endpoint');

  const list = await http('GET', ENDPOINTS, { token: account.admin_token });
  assert.equal(list.status, 200, list.text);
  assert.equal(list.json.items.length, 1);
  const ep = list.json.items[0];
  state.endpoint = ep;
  state.secret = secret;
  assert.equal(ep.url, hookUrl);
  assert.deepEqual([...ep.events].sort(), ['message.delivered', 'message.failed']);
  assert.deepEqual(ep.key_ids, [state['CRM Integration'].id]);
  assert.equal(ep.max_per_second, 20);
  assert.equal(ep.description, 'CRM sync');
  assert.equal(ep.include_phone, true);
  assert.equal(ep.mode, 'live');
  assert.equal(ep.active, true);
  // The secret is in no listing, and not on the page any more.
  assert.ok(!list.text.includes(secret));
  assert.ok(!(await getEndpoint(ep.id)).text.includes(secret));

  const r = endpointRow(page, ep.id);
  await r.waitFor();
  assert.equal(await r.locator('.endpoint-url').textContent(), hookUrl);
  assert.deepEqual(await r.locator('.badge').allTextContents(), ['message.delivered', 'message.failed']);
  assert.equal(await r.locator('.tag-live').textContent(), 'Live');
  assert.equal(await r.locator('td.col-number').textContent(), '20');
  assert.equal(await r.locator('.status').textContent(), 'Active');
  assert.equal(await r.locator('td.col-description').textContent(), 'CRM sync');
  assert.ok(await r.getByText('Only 1 key').isVisible());
  assert.ok(!(await page.content()).includes(secret));
  assert.equal(await page.locator('dialog').count(), 0);
});

test('bad input: shown next to the field, in the page or from the API', async () => {
  const { page } = session;
  writes.length = 0;
  await page.locator('#add-endpoint').click();
  const create = dialog(page, 'create-webhook');
  const url = create.getByLabel('Endpoint URL');
  const rate = create.getByLabel('Max requests per second');
  const submit = create.getByRole('button', { name: 'Add endpoint' });

  // Checked in the page: nothing is sent.
  await submit.click();
  assert.match(await errorOf(url), /Enter the URL/);
  await url.fill('ftp://x');
  await rate.fill('0');
  await submit.click();
  assert.equal(await errorOf(url), 'Use an https:// URL.');
  assert.match(await errorOf(rate), /from 1 to 1,000/);
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'url');
  await rate.fill('1001');
  await submit.click();
  assert.match(await errorOf(rate), /from 1 to 1,000/);
  assert.deepEqual(writes, []);
  // Typing clears the error.
  await url.fill('not a url');
  assert.equal(await url.getAttribute('aria-invalid'), null);
  await rate.fill('10');

  // Checked by the API (plain http:// only to loopback): its 422 lands on the field.
  await url.fill('http://example.com/hooks');
  await submit.click();
  await create.locator('.field-error:not([hidden])').first().waitFor();
  assert.match(await errorOf(url), /https:\/\//);
  assert.equal(writes.length, 1);
  assert.equal(await create.isVisible(), true);
  assert.equal((await http('GET', ENDPOINTS, { token: account.admin_token })).json.items.length, 1);

  await page.keyboard.press('Escape');
  await create.waitFor({ state: 'detached' });
});

test('edit: the stored values, saved with PATCH', async () => {
  const { page } = session;
  const id = state.endpoint.id;
  await endpointRow(page, id).getByRole('button', { name: /^Edit:/ }).click();
  const edit = dialog(page, 'edit-webhook');
  await edit.waitFor();
  assert.equal(await edit.getByLabel('Endpoint URL').inputValue(), hookUrl);
  assert.equal(await edit.getByRole('checkbox', { name: /^message\.delivered/ }).isChecked(), true);
  assert.equal(await edit.getByRole('checkbox', { name: /^message\.failed/ }).isChecked(), true);
  assert.equal(await edit.getByRole('checkbox', { name: /^message\.read/ }).isChecked(), false);
  assert.equal(await edit.getByLabel('Max requests per second').inputValue(), '20');
  assert.equal(await edit.getByLabel('Description').inputValue(), 'CRM sync');
  assert.equal(await edit.getByLabel("Include the recipient's phone number").isChecked(), true);
  await edit.locator('select[name="key_ids"]:not([disabled])').waitFor();
  const keySelect = edit.getByLabel('Only messages sent with these keys');
  assert.deepEqual(await keySelect.evaluate((s) => [...s.selectedOptions].map((o) => o.value)), [state['CRM Integration'].id]);
  // No secret and no mode choice when editing.
  assert.equal(await edit.locator('.key-value').count(), 0);
  assert.equal(await edit.getByRole('radio').count(), 0);

  await edit.getByRole('checkbox', { name: /^message\.failed/ }).uncheck();
  await edit.getByRole('checkbox', { name: /^message\.read/ }).check();
  await keySelect.selectOption([state['CRM Integration'].id, state['Website Contact Form'].id]);
  await edit.getByLabel('Max requests per second').fill('100');
  await edit.getByLabel('Description').fill('CRM sync (EU)');
  await edit.getByLabel("Include the recipient's phone number").uncheck();
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });

  const r = endpointRow(page, id);
  await r.locator('td.col-description', { hasText: 'CRM sync (EU)' }).waitFor();
  assert.deepEqual(await r.locator('.badge').allTextContents(), ['message.delivered', 'message.read']);
  assert.equal(await r.locator('td.col-number').textContent(), '100');
  assert.ok(await r.getByText('Only 2 keys').isVisible());
  const stored = (await getEndpoint(id)).json;
  assert.deepEqual([...stored.events].sort(), ['message.delivered', 'message.read']);
  assert.deepEqual([...stored.key_ids].sort(), [state['CRM Integration'].id, state['Website Contact Form'].id].sort());
  assert.equal(stored.max_per_second, 100);
  assert.equal(stored.include_phone, false);

  // Every event and every key again: nothing ticked, nothing selected.
  await r.getByRole('button', { name: /^Edit:/ }).click();
  await edit.locator('select[name="key_ids"]:not([disabled])').waitFor();
  await edit.getByRole('checkbox', { name: /^message\.delivered/ }).uncheck();
  await edit.getByRole('checkbox', { name: /^message\.read/ }).uncheck();
  await edit.getByLabel('Only messages sent with these keys').selectOption([]);
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await r.locator('.tag', { hasText: 'All events' }).waitFor();
  const all = (await getEndpoint(id)).json;
  assert.deepEqual(all.events, []);
  assert.equal(all.key_ids, null);
});

test('toggle: inactive and active again; an endpoint disabled after failing shows why and when', async () => {
  const { page } = session;
  const id = state.endpoint.id;
  const toggle = () => endpointRow(page, id).getByRole('switch');
  assert.equal(await toggle().getAttribute('aria-checked'), 'true');
  await toggle().click();
  await endpointRow(page, id).locator('.status', { hasText: /^Inactive$/ }).waitFor();
  assert.equal(await toggle().getAttribute('aria-checked'), 'false');
  // Focus stays on the switch for keyboard users.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('role')), 'switch');
  assert.equal((await getEndpoint(id)).json.active, false);
  await page.keyboard.press('Space');
  await endpointRow(page, id).locator('.status', { hasText: /^Active$/ }).waitFor();
  assert.equal((await getEndpoint(id)).json.active, true);

  // What the deliverer does after five days of failures.
  await sql(`UPDATE webhook_endpoints SET active = false, failing_since = now() - interval '5 days 1 hour',
             disabled_reason = 'every delivery failed for 5 days (last: HTTP 503)', disabled_at = now() - interval '2 hours'
             WHERE id = '${id}'`);
  await page.reload();
  const r = endpointRow(page, id);
  await r.locator('.status', { hasText: /^Disabled$/ }).waitFor();
  assert.equal(await r.getAttribute('data-status'), 'disabled');
  assert.match(await r.locator('.disabled-reason').textContent(), /every delivery failed for 5 days \(last: HTTP 503\)/);
  assert.equal(await r.locator('.disabled-at').textContent(), 'Disabled 2 hours ago');
  assert.ok(await r.locator('.disabled-at time').getAttribute('datetime'));
  // Turning it on clears the disable.
  await r.getByRole('switch').click();
  await endpointRow(page, id).locator('.status', { hasText: /^Active$/ }).waitFor();
  assert.equal(await endpointRow(page, id).locator('.disabled-reason').count(), 0);
  const stored = (await getEndpoint(id)).json;
  assert.equal(stored.active, true);
  assert.equal(stored.disabled_reason, null);
  assert.equal(stored.disabled_at, null);
});

test('rotate the secret: confirmation, then the new secret once', async () => {
  const { page } = session;
  const id = state.endpoint.id;
  writes.length = 0;
  await endpointRow(page, id).getByRole('button', { name: /^Rotate secret/ }).click();
  const confirm = dialog(page, 'confirm-rotate');
  await confirm.getByText('keeps signing alongside the new one for 24 hours').waitFor();
  // Cancel first: nothing is sent.
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'detached' });
  assert.deepEqual(writes, []);

  await endpointRow(page, id).getByRole('button', { name: /^Rotate secret/ }).click();
  await dialog(page, 'confirm-rotate').getByRole('button', { name: 'Rotate secret' }).click();
  const shown = dialog(page, 'webhook-secret');
  await shown.getByText("This is the only time you'll see this signing secret.").waitFor();
  await shown.getByText('The previous secret keeps signing alongside it for 24 hours').waitFor();
  const secret = await shown.getByLabel('Signing secret').inputValue();
  assert.match(secret, /^whsec_/);
  assert.notEqual(secret, state.secret);
  await shown.getByRole('button', { name: 'Copy' }).click();
  assert.equal(await readClipboard(page), secret);
  await shown.getByRole('button', { name: 'Done' }).click();
  await shown.waitFor({ state: 'detached' });
  assert.deepEqual(writes.map((w) => w.replace(env.base, '')), [`POST ${ENDPOINTS}/${id}/rotate-secret`]);
  state.secret = secret;
  assert.ok(!(await page.content()).includes(secret));
  assert.ok(!(await getEndpoint(id)).text.includes(secret));
});

/**
 * A delivery id that sorts by `n` (the log is newest first by id): a UUIDv7-shaped literal with
 * this run's own prefix (every test file of a run shares the database).
 */
const idPrefix = randomBytes(4).toString('hex');
const deliveryId = (n) => `${idPrefix}-0000-7000-8000-${String(n).padStart(12, '0')}`;

test('delivery log: newest first, Load more, the event body, Retry, the state filter, Recover', async () => {
  const { page } = session;
  const id = state.endpoint.id;
  // 28 succeeded, then a failed one (500 after 8 attempts) and a pending one (due in an hour).
  const body = (n, type) => `jsonb_build_object('id', 'evt_ui_${n}', 'type', '${type}', 'created_at', now() - interval '${40 - n} minutes',
    'data', jsonb_build_object('message_id', 'msg-${n}', 'status', '${type.split('.')[1]}', 'ref', 'order-${n}'))`;
  const rows = [];
  for (let n = 1; n <= 28; n += 1) {
    rows.push(`('${deliveryId(n)}', '${id}', (SELECT account_id FROM webhook_endpoints WHERE id = '${id}'), 'evt_ui_${n}', 'message.delivered',
      ${body(n, 'message.delivered')}, 'succeeded', 1, now() - interval '${40 - n} minutes', now() - interval '${40 - n} minutes', 200, ${10 + n},
      NULL, now() - interval '${40 - n} minutes')`);
  }
  rows.push(`('${deliveryId(29)}', '${id}', (SELECT account_id FROM webhook_endpoints WHERE id = '${id}'), 'evt_ui_29', 'message.failed',
    ${body(29, 'message.failed')}, 'failed', 8, now() - interval '5 minutes', now() - interval '5 minutes', 500, 1234,
    'HTTP 500 Internal Server Error', now() - interval '11 minutes')`);
  rows.push(`('${deliveryId(30)}', '${id}', (SELECT account_id FROM webhook_endpoints WHERE id = '${id}'), 'evt_ui_30', 'message.delivered',
    ${body(30, 'message.delivered')}, 'pending', 1, now() + interval '1 hour', now() - interval '1 minute', 503, 40,
    'HTTP 503 Service Unavailable', now() - interval '10 minutes')`);
  await sql(`INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body, state, attempts,
             next_attempt_at, last_attempt_at, last_status, last_latency_ms, last_error, created_at) VALUES ${rows.join(',\n')}`);

  await endpointRow(page, id).getByRole('link', { name: /^Delivery log:/ }).click();
  await page.getByRole('heading', { name: 'Delivery log', level: 1 }).waitFor();
  assert.equal(await page.locator('.nav-link[aria-current="page"]').textContent(), 'Webhooks');
  assert.equal(await page.locator('.key-summary .endpoint-url').textContent(), hookUrl);
  const tr = page.locator('table.deliveries-table tbody tr');
  await tr.first().waitFor();
  assert.equal(await tr.count(), 25);
  // Newest first.
  assert.deepEqual((await tr.locator('td.col-event-id').allTextContents()).slice(0, 3), ['evt_ui_30', 'evt_ui_29', 'evt_ui_28']);
  assert.deepEqual(await page.locator('table.deliveries-table thead th').allTextContents(),
    ['Time', 'Event type', 'Event ID', 'State', 'Attempts', 'Last status', 'Latency', 'Actions']);

  const failed = page.locator(`tr[data-delivery-id="${deliveryId(29)}"]`);
  const cells = await failed.locator('td').allTextContents();
  assert.equal(cells[1], 'message.failed');
  assert.equal(cells[2], 'evt_ui_29');
  assert.match(cells[3], /^Failed/);
  assert.match(cells[3], /HTTP 500 Internal Server Error/);
  assert.deepEqual(cells.slice(4, 7), ['8', '500', '1,234 ms']);
  const pending = page.locator(`tr[data-delivery-id="${deliveryId(30)}"]`);
  assert.match(await pending.locator('td').nth(3).textContent(), /^PendingNext attempt in 1 hour/);

  // Load more: the last 5, then no more button.
  await page.getByRole('button', { name: 'Load more' }).click();
  await tr.nth(29).waitFor();
  assert.equal(await tr.count(), 30);
  assert.equal(await tr.last().locator('td.col-event-id').textContent(), 'evt_ui_1');
  assert.equal(await page.getByRole('button', { name: 'Load more' }).count(), 0);

  // The event body as posted.
  await failed.getByRole('button', { name: 'Event body: evt_ui_29' }).click();
  const event = dialog(page, 'delivery');
  await event.getByRole('heading', { name: 'Event evt_ui_29' }).waitFor();
  const posted = JSON.parse(await event.locator('pre code').textContent());
  assert.equal(posted.id, 'evt_ui_29');
  assert.equal(posted.data.message_id, 'msg-29');
  await page.keyboard.press('Escape');
  await event.waitFor({ state: 'detached' });

  // Retry the failed one: it is pending again.
  writes.length = 0;
  await failed.getByRole('button', { name: 'Retry evt_ui_29' }).click();
  await page.locator(`tr[data-delivery-id="${deliveryId(29)}"][data-state="pending"]`).waitFor();
  assert.match(await failed.locator('td').nth(3).textContent(), /^Pending/);
  assert.deepEqual(writes.map((w) => w.replace(env.base, '')), [`POST ${ENDPOINTS}/${id}/deliveries/${deliveryId(29)}/retry`]);
  // Focus stays on the row's Retry button.
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Retry evt_ui_29');
  // The row is due again (a running worker may already be sending it).
  assert.match(await sql(`SELECT state FROM webhook_deliveries WHERE id = '${deliveryId(29)}'`), /^(pending|delivering|succeeded)$/);

  // The state filter.
  await sql(`UPDATE webhook_deliveries SET state = 'failed', updated_at = now() - interval '3 minutes',
             last_attempt_at = now() - interval '3 minutes' WHERE id = '${deliveryId(27)}'`);
  await page.getByLabel('State', { exact: true }).selectOption('failed');
  await page.locator(`tr[data-delivery-id="${deliveryId(27)}"]`).waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('table.deliveries-table tbody tr')].every((t) => t.dataset.state === 'failed'));
  assert.deepEqual(await tr.locator('td.col-event-id').allTextContents(), ['evt_ui_27']);

  // Recover failed since…: a time in the future is refused in the page; then the last hour.
  await page.getByRole('button', { name: 'Recover failed since…' }).click();
  const recover = dialog(page, 'recover');
  const since = recover.getByLabel('Failed since');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'since');
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  await since.fill(local(new Date(Date.now() + 2 * 3600e3)));
  await recover.getByRole('button', { name: 'Recover' }).click();
  assert.equal(await errorOf(since), 'Choose a time in the past.');
  await since.fill(local(new Date(Date.now() - 3600e3)));
  await recover.getByRole('button', { name: 'Recover' }).click();
  await recover.waitFor({ state: 'detached' });
  await page.locator('.alert-info', { hasText: /^1 failed delivery since .+ will be sent again\.$/ }).waitFor();
  assert.match(await sql(`SELECT state FROM webhook_deliveries WHERE id = '${deliveryId(27)}'`), /^(pending|delivering|succeeded)$/);
  await page.getByRole('heading', { name: 'No failed deliveries' }).waitFor();
  await page.getByLabel('State', { exact: true }).selectOption('');
  await tr.nth(24).waitFor();

  // Back to the list.
  await page.getByRole('link', { name: 'Webhooks' }).first().click();
  await endpointRow(page, id).waitFor();
});

// The test script runs a worker (whose deliverer posts due deliveries) when it could build one.
test('the retried delivery reaches the receiver, signed with the secret shown once', { skip: !process.env.EZP_SIM_URL && 'no worker in this run' }, async () => {
  const deadline = Date.now() + 30000;
  let got;
  while (!(got = receiver.received.find((r) => r.headers['webhook-id'] === 'evt_ui_29')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(got, 'the retried delivery was not posted within 30 s');
  assert.equal(JSON.parse(got.body).id, 'evt_ui_29');
  const key = Buffer.from(state.secret.slice('whsec_'.length), 'base64');
  const signed = `${got.headers['webhook-id']}.${got.headers['webhook-timestamp']}.${got.body}`;
  const want = `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
  // After a rotation the header holds the new signature first, then the previous one.
  assert.equal(got.headers['webhook-signature'].split(' ')[0], want);
});

test('an unknown endpoint id shows a notice instead of the log', async () => {
  const { page } = session;
  await page.goto(`${env.base}/#/webhooks/00000000-0000-4000-8000-000000000000/deliveries`);
  await page.getByText('This webhook endpoint does not exist').waitFor();
  await page.getByRole('link', { name: 'Webhooks' }).first().click();
  await endpointRow(page, state.endpoint.id).waitFor();
});

test('delete: confirmation, then the endpoint is gone', async () => {
  const { page } = session;
  const id = state.endpoint.id;
  await endpointRow(page, id).getByRole('button', { name: /^Delete:/ }).click();
  const confirm = dialog(page, 'confirm-delete');
  await confirm.getByText('will be permanently removed').waitFor();
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await endpointRow(page, id).waitFor({ state: 'detached' });
  await page.getByRole('heading', { name: 'No webhook endpoints yet' }).waitFor();
  assert.equal((await getEndpoint(id)).status, 404);
  assert.equal(await sql(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '${id}'`), '0');
  assert.deepEqual(unexpected(session.errors), []);
});

test('a test-mode endpoint, and laptop widths without sideways scrolling', async () => {
  const { page } = session;
  await page.locator('#add-endpoint').click();
  const create = dialog(page, 'create-webhook');
  await create.getByLabel('Endpoint URL').fill(`${hookUrl}/test-mode`);
  await create.getByRole('radio', { name: /Test/ }).check();
  await create.getByRole('button', { name: 'Add endpoint' }).click();
  await dialog(page, 'webhook-secret').getByRole('button', { name: 'Done' }).click();
  const list = (await http('GET', ENDPOINTS, { token: account.admin_token })).json.items;
  assert.equal(list.length, 1);
  assert.equal(list[0].mode, 'test');
  await endpointRow(page, list[0].id).locator('.tag-test', { hasText: 'Test' }).waitFor();
  for (const [url, description] of [[`${hookUrl}/a-rather-long-path/for-the-crm-integration?tenant=acme-store-eu`, 'Orders and delivery receipts for the CRM (EU region)'], [`${hookUrl}/b`, '']]) {
    const r = await http('POST', ENDPOINTS, { token: account.admin_token, body: { url, description, events: ['message.sent', 'message.delivered', 'message.read', 'message.failed'] } });
    assert.equal(r.status, 201, r.text);
  }

  for (const [width, height] of [[1366, 768], [1280, 720], [1024, 700]]) {
    const { context, page: p } = await newPage(browser, { width, height });
    await signIn(p, account.admin_token);
    await p.goto(`${env.base}/#/webhooks`);
    await p.locator('table.webhooks-table tbody tr').nth(2).waitFor();
    const fits = await p.evaluate(() => {
      const wrap = document.querySelector('.table-wrap');
      return { page: document.documentElement.scrollWidth <= window.innerWidth, table: wrap.scrollWidth <= wrap.clientWidth + 1 };
    });
    assert.deepEqual(fits, { page: true, table: true }, `${width}px`);
    await p.locator('#add-endpoint').click();
    const dlg = dialog(p, 'create-webhook');
    const box = await dlg.boundingBox();
    assert.ok(box.height <= height && box.width <= width, `${width}px dialog`);
    await dlg.getByRole('button', { name: 'Add endpoint' }).scrollIntoViewIfNeeded();
    assert.equal(await dlg.getByRole('button', { name: 'Add endpoint' }).isVisible(), true);
    await context.close();
  }
});
