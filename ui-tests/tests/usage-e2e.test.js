// Usage stats after a real send: a broadcast sent with a key goes through the worker to the
// WhatsApp simulator, whose signed status webhooks come back to the api; the usage dialog
// then shows the counters, which must match the simulator's own ground truth.
// Runs when scripts/ui-test.sh could start the simulator and a worker (EZP_SIM_URL set).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, signIn, http, newAccount, dialog, sleep } from '../lib/harness.js';

const sim = process.env.EZP_SIM_URL;
let browser;

before(async () => { if (sim) browser = await launch(); });
after(async () => { await browser?.close(); });

async function simStats() {
  const r = await fetch(`${sim}/_sim/stats`);
  return r.json();
}

test('usage stats after sending a broadcast through the simulator', { skip: sim ? false : 'the simulator and worker are not running' }, async () => {
  const account = await newAccount('Usage end to end');
  const admin = account.admin_token;
  const settings = await http('PUT', '/admin/v1/whatsapp', { token: admin, body: {
    phone_numbers: [{ phone_number_id: process.env.EZP_SIM_PHONE_ID, display_phone_number: '+1 555 000 1111', access_token: process.env.EZP_SIM_TOKEN }],
    app_secret: process.env.EZP_SIM_APP_SECRET,
    verify_token: 'ui-test-verify',
  } });
  assert.ok(settings.status === 200 || settings.status === 204, settings.text);
  const template = await http('POST', '/api/v1/templates', { token: admin, body: {
    name: 'order_shipped', language: 'en_US', category: 'UTILITY',
    components: [{ type: 'BODY', text: 'Hello {{1}}, your order {{2}} has shipped.' }],
  } });
  assert.equal(template.status, 201, template.text);
  const broadcast = await http('POST', '/api/v1/broadcasts', { token: admin, body: { name: 'Shipping', template_id: template.json.id, variables: { body: ['there', '#0'] } } });
  assert.equal(broadcast.status, 201, broadcast.text);
  const key = await http('POST', '/admin/v1/api-keys', { token: admin, body: { name: 'Shop backend', scope_group: 'message_sender' } });
  assert.equal(key.status, 201);

  const before = await simStats();
  const n = 25;
  const recipients = Array.from({ length: n }, (_, i) => ({ to: `+1415555${String(1000 + i)}`, ref: `order-${i}`, variables: { body: [`Customer ${i}`, `#${1000 + i}`] } }));
  const sent = await http('POST', `/api/v1/broadcasts/${broadcast.json.id}/send`, { token: key.json.key, body: { recipients } });
  assert.equal(sent.status, 202, sent.text);
  assert.equal(sent.json.accepted, n);

  // Wait until the counters settle: every message sent, and the simulator's statuses applied.
  let usage;
  let stats;
  const deadline = Date.now() + 60000;
  for (;;) {
    usage = (await http('GET', `/admin/v1/api-keys/${key.json.id}/usage`, { token: admin })).json;
    stats = await simStats();
    const delivered = stats.statuses.delivered - before.statuses.delivered;
    const read = stats.statuses.read - before.statuses.read;
    if (usage.total_messages === n && usage.sent === n && usage.delivered === delivered && usage.read === read && delivered === n) break;
    if (Date.now() > deadline) assert.fail(`usage did not settle: ${JSON.stringify(usage)} vs simulator ${JSON.stringify(stats.statuses)}`);
    await sleep(500);
  }
  assert.equal(stats.accepted - before.accepted, n);
  assert.equal(usage.failed, 0);

  // The dialog shows exactly those numbers.
  const { context, page, errors } = await newPage(browser);
  await signIn(page, admin);
  await page.locator(`tr[data-key-id="${key.json.id}"]`).getByRole('button', { name: /View Usage Stats/ }).click();
  const d = dialog(page, 'usage');
  await d.locator('.metric-total .metric-value', { hasText: String(n) }).waitFor();
  assert.equal(await d.locator('.metric-sent .metric-value').textContent(), String(usage.sent));
  assert.equal(await d.locator('.metric-delivered .metric-value').textContent(), String(usage.delivered));
  assert.equal(await d.locator('.metric-read .metric-value').textContent(), String(usage.read));
  assert.equal(await d.locator('.metric-failed .metric-value').textContent(), '0');
  assert.notEqual(await d.locator('.metric-last .metric-value').textContent(), 'Never');
  assert.equal(Number(await d.getByRole('progressbar', { name: 'Delivery Rate' }).getAttribute('aria-valuenow')), usage.delivery_rate);
  assert.equal(Number(await d.getByRole('progressbar', { name: 'Read Rate' }).getAttribute('aria-valuenow')), usage.read_rate);
  assert.equal(usage.delivery_rate, 100);
  assert.equal(usage.read_rate, Math.round((usage.read / n) * 10000) / 100);
  assert.deepEqual(errors, []);
  await context.close();
});
