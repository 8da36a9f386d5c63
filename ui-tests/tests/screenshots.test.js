// The user guide's screenshots (static/img/screenshots/developer-tools/api-keys/), taken on a
// fresh account with several keys in different states, and of the Webhooks page with endpoints
// in each state and a delivery log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { env, launch, newPage, signIn, http, newAccount, sql, screenshot, screenshotPadded, dialog, row, sleep } from '../lib/harness.js';

let browser;
let account;
const keys = {};

before(async () => {
  browser = await launch();
  account = await newAccount('Acme Store');
  const make = async (body) => {
    const r = await http('POST', '/admin/v1/api-keys', { token: account.admin_token, body });
    assert.equal(r.status, 201, r.text);
    keys[body.name] = r.json;
    return r.json;
  };
  // Oldest first: the list shows the newest first.
  await make({ name: 'Partner Portal (trial)', scope_group: 'full_access', expires_at: new Date(Date.now() + 2500).toISOString() });
  await make({ name: 'Reporting Dashboard', scope_group: 'read_only' });
  await make({ name: 'Lead Sync', scopes: ['leads:all', 'contacts:read', 'template:read'], rate_limit_per_hour: null });
  await make({ name: 'n8n Automation', scope_group: 'webhook_automation', allowed_ips: ['203.0.113.10'] });
  await make({ name: 'CRM Integration', scope_group: 'contact_manager', rate_limit_per_hour: 5000 });
  await make({ name: 'Website Contact Form', scope_group: 'broadcast_manager' });
  await http('PATCH', `/admin/v1/api-keys/${keys['Reporting Dashboard'].id}`, { token: account.admin_token, body: { active: false } });
  for (const name of ['Website Contact Form', 'CRM Integration', 'Lead Sync']) {
    assert.equal((await http('GET', '/api/v1/me', { token: keys[name].key })).status, 200);
  }
  // Delivery counters as the status consumer keeps them (no endpoint writes them directly).
  await sql(`INSERT INTO api_key_usage (key_id, total_messages, sent, delivered, read, failed, last_message_at)
             VALUES ('${keys['Website Contact Form'].id}', 1250, 1238, 1187, 942, 12, now() - interval '2 hours')`);
  // A saved broadcast for the payload generator, when the server has broadcasts.
  if ((await http('GET', '/admin/v1/broadcasts', { token: account.admin_token })).status === 200) {
    const template = await http('POST', '/api/v1/templates', { token: account.admin_token, body: {
      name: 'order_update', language: 'en_US', category: 'UTILITY', components: [
        { type: 'HEADER', format: 'IMAGE' },
        { type: 'BODY', text: 'Hi {{1}}, your order {{2}} is on its way and arrives {{3}}.' },
        { type: 'BUTTONS', buttons: [{ type: 'QUICK_REPLY', text: 'Track order' }, { type: 'QUICK_REPLY', text: 'Talk to us' }] }] } });
    assert.equal(template.status, 201, template.text);
    const broadcast = await http('POST', '/api/v1/broadcasts', { token: account.admin_token, body: {
      name: 'Order update', template_id: template.json.id,
      variables: { header: { type: 'image', link: 'https://cdn.example.com/acme/shipping.png' } } } });
    assert.equal(broadcast.status, 201, broadcast.text);
  }
  await sleep(2600); // the trial key expires; last-used times are flushed
});
after(async () => { await browser?.close(); });

test('screenshots of the API keys page, dialogs and documentation page', async () => {
  const { context, page, errors } = await newPage(browser, { width: 1440, height: 1000 });
  await signIn(page, account.admin_token);
  await row(page, 'Partner Portal (trial)').locator('.status', { hasText: 'Expired' }).waitFor();
  await row(page, 'Website Contact Form').locator('time').waitFor();
  await screenshot(page, 'api-keys-list.png', { fullPage: true });

  await page.getByRole('button', { name: 'Create API Key' }).first().click();
  const create = dialog(page, 'create-key');
  await create.getByLabel('Key name').fill('Website Contact Form');
  await create.getByLabel('Scope group', { exact: true }).selectOption('broadcast_manager');
  await create.getByText('Advanced Settings').click();
  await create.getByLabel('Allowed IP Addresses').fill('203.0.113.10\n198.51.100.7');
  const inAMonth = new Date(Date.now() + 90 * 86400e3).toISOString().slice(0, 10);
  await create.getByLabel('Expiration Date').fill(inAMonth);
  await create.getByLabel('Key name').focus();
  await page.evaluate(() => document.activeElement.blur());
  await page.mouse.move(0, 0);
  await screenshotPadded(page, create, 'create-api-key-dialog.png', 24);

  await create.getByRole('radio', { name: /Individual scopes/ }).check();
  await create.getByText('Advanced Settings').click();
  for (const [resource, action] of [['broadcast', 'Send'], ['contacts', 'Create'], ['contacts', 'Read'], ['leads', 'Read'], ['leads', 'Assign'], ['template', 'Read']]) {
    await create.locator(`fieldset[data-resource="${resource}"]`).getByLabel(action, { exact: true }).check();
  }
  await page.evaluate(() => document.activeElement.blur());
  await screenshotPadded(page, create, 'individual-scopes.png', 24);

  await create.getByRole('button', { name: 'Create API Key' }).click();
  const created = dialog(page, 'key-created');
  await created.getByText("This is the only time you'll see the full API key.").waitFor();
  await page.evaluate(() => document.activeElement.blur());
  await screenshotPadded(page, created, 'api-key-created-warning.png', 24);
  await created.getByRole('button', { name: 'Done' }).click();

  await page.locator(`tr[data-key-id="${keys['Website Contact Form'].id}"]`).getByRole('button', { name: /View Usage Stats/ }).click();
  const usage = dialog(page, 'usage');
  await usage.getByText('1,250').waitFor();
  await page.evaluate(() => document.activeElement.blur());
  await screenshotPadded(page, usage, 'usage-stats-dialog.png', 24);
  await usage.getByRole('button', { name: 'Close' }).first().click();

  await page.goto(`${env.base}/#/api-keys/${keys['Website Contact Form'].id}/docs`);
  await page.getByRole('heading', { name: 'Broadcast API' }).waitFor();
  await page.waitForFunction(() => !document.querySelector('#broadcast-picker option')?.textContent.startsWith('Loading'));
  const options = await page.locator('#broadcast-picker option[value]:not([value=""])').count();
  if (options > 0) {
    await page.locator('#broadcast-picker').selectOption({ index: 1 });
    await page.locator('.generated .code-tabs').waitFor();
  }
  // Tall enough to show the authentication section and the broadcast examples.
  await page.setViewportSize({ width: 1440, height: 1800 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, 'api-docs-page.png', { fullPage: false });
  assert.deepEqual(errors, []);
  await context.close();
});

/**
 * A delivery id that sorts by `n` (the log is newest first by id): a UUIDv7-shaped literal with
 * this run's own prefix (every test file of a run shares the database).
 */
const idPrefix = randomBytes(4).toString('hex');
const deliveryId = (n) => `${idPrefix}-0000-7000-8000-${String(n).padStart(12, '0')}`;

test('screenshots of the Webhooks page and a delivery log', async () => {
  const token = account.admin_token;
  const make = async (body) => {
    const r = await http('POST', '/admin/v1/webhook-endpoints', { token, body });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  // Oldest first: the list shows the newest first.
  const reporting = await make({ url: 'https://reports.acme-store.com/ezpulze/dispatches', events: ['dispatch.completed', 'dispatch.paused'], max_per_second: 10, description: 'Campaign reporting' });
  await make({ url: 'https://staging.acme-store.com/hooks/whatsapp', mode: 'test', description: 'Staging receiver' });
  const crm = await make({
    url: 'https://crm.acme-store.com/hooks/ezpulze', events: ['message.delivered', 'message.read', 'message.failed'],
    key_ids: [keys['CRM Integration'].id], description: 'CRM sync', include_phone: true,
  });
  // What the deliverer does after five days of failures.
  await sql(`UPDATE webhook_endpoints SET active = false, failing_since = now() - interval '5 days 3 hours',
             disabled_at = now() - interval '3 hours',
             disabled_reason = 'every delivery attempt failed since ' || to_char((now() - interval '5 days 3 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
             WHERE id = '${reporting.id}'`);
  // The CRM endpoint's log: deliveries of the last hour, one failed, one waiting for its retry.
  const types = ['message.delivered', 'message.read', 'message.delivered', 'message.failed', 'message.delivered', 'message.read'];
  const rows = [];
  for (let n = 1; n <= 14; n += 1) {
    const type = types[n % types.length];
    const ago = `${(15 - n) * 4} minutes`;
    let [st, attempts, status, latency, error, next] = ['succeeded', 1, 200, 40 + ((n * 37) % 160), 'NULL', `now() - interval '${ago}'`];
    if (n === 11) [st, attempts, status, latency, error] = ['failed', 1, 410, 88, "'HTTP 410: endpoint gone'"];
    if (n === 13) [st, attempts, status, latency, error, next] = ['pending', 2, 503, 1204, "'HTTP 503: Service Unavailable'", "now() + interval '4 minutes'"];
    rows.push(`('${deliveryId(n)}', '${crm.id}', (SELECT account_id FROM webhook_endpoints WHERE id = '${crm.id}'),
      'evt_0193a${String(n).padStart(2, '0')}f6c2b7e41d9', '${type}',
      jsonb_build_object('id', 'evt_0193a${String(n).padStart(2, '0')}f6c2b7e41d9', 'type', '${type}', 'created_at', now() - interval '${ago}',
        'data', jsonb_build_object('message_id', gen_random_uuid(), 'ref', 'order-${1040 + n}', 'status', '${type.split('.')[1]}')),
      '${st}', ${attempts}, ${next}, now() - interval '${ago}', ${status}, ${latency}, ${error}, now() - interval '${ago}')`);
  }
  await sql(`INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body, state, attempts,
             next_attempt_at, last_attempt_at, last_status, last_latency_ms, last_error, created_at) VALUES ${rows.join(',')}`);

  const { context, page, errors } = await newPage(browser, { width: 1440, height: 900 });
  await signIn(page, token);
  await page.goto(`${env.base}/#/webhooks`);
  await page.locator(`tr[data-endpoint-id="${reporting.id}"] .disabled-reason`).waitFor();
  await page.mouse.move(0, 0);
  await screenshot(page, 'webhooks-list.png', { fullPage: true });

  await page.locator(`tr[data-endpoint-id="${crm.id}"]`).getByRole('link', { name: /^Delivery log/ }).click();
  await page.locator('table.deliveries-table tbody tr').nth(13).waitFor();
  await page.mouse.move(0, 0);
  await screenshot(page, 'webhook-deliveries.png', { fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
