// The per-key documentation page: sections by scope for every scope group, a missing key, and
// the broadcast payload generator (skipped until the server lists broadcasts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, signedInAccount, closeAll, http } from '../lib/harness.js';

let browser;
let account;
let session;

before(async () => {
  browser = await launch();
  const viewport = { width: 1280, height: 800 };
  ({ account, session } = await signedInAccount(browser, 'Docs', { viewport }));
});
after(() => closeAll(session, browser));

async function key(body) {
  const r = await http('POST', '/admin/v1/api-keys', { token: account.admin_token, body });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function sectionsOf(id) {
  const { page } = session;
  await page.goto(`${env.base}/#/api-keys/${id}/docs`);
  await page.locator('[data-section="rate-limits"]').waitFor();
  return page.locator('.doc-section h2').allTextContents();
}

test('sections follow the scopes of each scope group', async () => {
  const always = ['Authentication', 'Error Codes', 'Rate Limits'];
  const expected = {
    broadcast_manager: ['Broadcast API', 'Contacts API', 'Templates API'],
    contact_manager: ['Contacts API', 'Leads API'],
    lead_manager: ['Contacts API', 'Leads API'],
    message_sender: ['Broadcast API', 'Templates API'],
    read_only: ['Broadcast API', 'Contacts API', 'Leads API', 'Templates API'],
    full_access: ['Broadcast API', 'Contacts API', 'Leads API', 'Templates API', 'Chatbot Flows API', 'Webhooks API'],
    webhook_automation: ['Contacts API', 'Chatbot Flows API'],
  };
  for (const [group, middle] of Object.entries(expected)) {
    const k = await key({ name: `Docs ${group}`, scope_group: group });
    const sections = await sectionsOf(k.id);
    assert.deepEqual(sections, [always[0], ...middle, always[1], always[2]], group);
  }
  // A read-only key sees no write endpoints, and no payload generator (no broadcast:send).
  const ro = await key({ name: 'Docs read only 2', scope_group: 'read_only' });
  await sectionsOf(ro.id);
  const methods = await session.page.locator('.endpoint .method').allTextContents();
  assert.deepEqual([...new Set(methods)], ['GET']);
  assert.equal(await session.page.locator('#broadcast-picker').count(), 0);
});

test('a key that manages webhooks sees how to verify an event', async () => {
  const k = await key({ name: 'Docs webhooks', scopes: ['webhooks:manage'] });
  assert.deepEqual(await sectionsOf(k.id), ['Authentication', 'Webhooks API', 'Error Codes', 'Rate Limits']);
  const { page } = session;
  const section = page.locator('[data-section="webhooks"]');
  await section.getByRole('heading', { name: 'Verifying an event' }).waitFor();
  const python = await section.getByLabel('Python verification example').textContent();
  assert.equal(python.trim().split('\n').length, 5, python);
  assert.match(python, /wh\.verify\(/);
  const js = await section.getByLabel('JavaScript verification example').textContent();
  assert.equal(js.trim().split('\n').length, 5, js);
  assert.ok((await section.locator('.endpoint h4 code').allTextContents()).includes('/webhook-endpoints'));
});

test('individual scopes: only the allowed endpoints, the key\'s own limit', async () => {
  const k = await key({ name: 'Docs custom', scopes: ['leads:assign', 'template:create'], rate_limit_per_hour: 42 });
  assert.deepEqual(await sectionsOf(k.id), ['Authentication', 'Leads API', 'Templates API', 'Error Codes', 'Rate Limits']);
  const { page } = session;
  assert.deepEqual(await page.locator('.endpoint h4 code').allTextContents(), ['/me', '/leads/0193a5b2-7c1e-7a3d-9f10-2b4c6d8e0f12/assign', '/templates', '/templates/sync']);
  assert.equal(await page.locator('#key-rate-limit').textContent(), '42 requests per hour');
  // Every example has both languages and a Copy button.
  const examples = page.locator('.code-tabs');
  const n = await examples.count();
  assert.ok(n >= 3);
  for (let i = 0; i < n; i += 1) {
    assert.equal(await examples.nth(i).getByRole('tab').count(), 2);
    assert.equal(await examples.nth(i).getByRole('button', { name: /^Copy/ }).count(), 1);
  }
  // The examples are what the API accepts: the curl of POST /leads/{id}/assign names it.
  const curl = await page.locator('[data-section="leads"] [data-lang="curl"] code').first().textContent();
  assert.match(curl, /curl -X POST ".*\/api\/v1\/leads\/[^"]+\/assign"/);
  assert.match(curl, /"assignee"/);
});

test('a key without a limit: the page says it gets no rate-limit headers, and the API sends none', async () => {
  const k = await key({ name: 'Docs unlimited', scope_group: 'full_access', rate_limit_per_hour: null });
  await sectionsOf(k.id);
  const line = await session.page.locator('[data-section="rate-limits"] .rate-limit-line').textContent();
  assert.match(line, /^This key: no limit: its responses carry none of the rate-limit headers/);
  assert.doesNotMatch(line, /still sent/);
  const me = await http('GET', '/api/v1/me', { token: k.key });
  assert.equal(me.status, 200, me.text);
  for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-policy', 'ratelimit']) {
    assert.equal(me.headers.get(name), null, name);
  }
});

test('with or without the server\'s docs data, the same sections and callable endpoints', async () => {
  const { page } = session;
  const summary = () => page.locator('.doc-section').evaluateAll((els) => els.map((el) => ({
    section: el.querySelector('h2').textContent,
    endpoints: [...el.querySelectorAll('.endpoint h4')].map((h) => h.textContent).filter((t) => !/\/(dispatches|messages)\//.test(t) && !/\/broadcasts\/[^/]+$/.test(t)),
  })));
  for (const body of [{ scope_group: 'read_only' }, { scope_group: 'broadcast_manager' }, { scope_group: 'lead_manager' }, { scopes: ['contacts:update', 'template:all', 'chatbot_flows:webhook'] }]) {
    const k = await key({ name: `Docs both ${JSON.stringify(body)}`, ...body });
    await sectionsOf(k.id);
    const withData = await summary();
    await page.route('**/admin/v1/api-keys/*/docs', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"not found","request_id":"x"}}' }));
    let without;
    try {
      await page.goto(`${env.base}/#/api-keys/`);
      await sectionsOf(k.id);
      without = await summary();
    } finally {
      await page.unroute('**/admin/v1/api-keys/*/docs');
    }
    assert.deepEqual(without, withData, JSON.stringify(body));
  }
});

test('an unknown key shows a message and a way back', async () => {
  const { page } = session;
  await page.goto(`${env.base}/#/api-keys/0193a5b2-0000-7000-8000-000000000000/docs`);
  await page.getByRole('alert').filter({ hasText: 'does not exist' }).waitFor();
  await page.getByRole('link', { name: 'API Keys' }).first().click();
  await page.getByRole('heading', { name: 'API Keys', level: 1 }).waitFor();
});

test('the broadcast picker without broadcasts: a disabled dropdown with a note', async (t) => {
  const probe = await http('GET', '/admin/v1/broadcasts', { token: account.admin_token });
  const k = await key({ name: 'Docs sender', scope_group: 'message_sender' });
  await sectionsOf(k.id);
  const { page } = session;
  const picker = page.getByLabel('Broadcast', { exact: true });
  await page.waitForFunction(() => !document.querySelector('#broadcast-picker option')?.textContent.startsWith('Loading'));
  if (probe.status === 200 && (probe.json.items || []).length === 0) {
    assert.equal(await picker.isDisabled(), true);
    assert.match(await page.locator('#broadcast-picker-note').textContent(), /Create a broadcast first/);
  } else if (probe.status !== 200) {
    assert.equal(await picker.isDisabled(), true);
    assert.match(await page.locator('#broadcast-picker-note').textContent(), /cannot be listed/);
  } else {
    t.diagnostic('this account already has broadcasts');
  }
  // A server that cannot list broadcasts (404): the same empty dropdown, with its own note.
  await page.route('**/admin/v1/broadcasts', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"not found","request_id":"x"}}' }));
  try {
    await page.reload();
    await page.locator('#broadcast-picker-note', { hasText: /cannot be listed/ }).waitFor();
    assert.equal(await picker.isDisabled(), true);
    // The generic send examples (to recipients, to an audience) are still there.
    await page.locator('[data-section="broadcast"] [data-example="recipients-send"] h4', { hasText: /\/send$/ }).waitFor();
    await page.locator('[data-section="broadcast"] [data-example="audience-send"] h4', { hasText: /\/send$/ }).waitFor();
  } finally {
    await page.unroute('**/admin/v1/broadcasts');
  }
});

// Templates of each kind (Meta's format) and a broadcast on each; the generated payload must
// be accepted as is by the send endpoint.
const TEMPLATES = [
  { template: { name: 'order_shipped', language: 'en_US', category: 'UTILITY', components: [{ type: 'BODY', text: 'Hello {{1}}, your order {{2}} has shipped.', example: { body_text: [['Ada', '#1001']] } }] }, variables: {} },
  { template: { name: 'media_offer', language: 'en_US', category: 'MARKETING', components: [{ type: 'HEADER', format: 'IMAGE' }, { type: 'BODY', text: 'Hi {{1}}, this week only: {{2}} off.' }, { type: 'BUTTONS', buttons: [{ type: 'QUICK_REPLY', text: 'Yes' }, { type: 'QUICK_REPLY', text: 'No' }] }] }, variables: { header: { type: 'image', link: 'https://example.com/offer.png' } } },
  { template: { name: 'shop_link', language: 'en_US', category: 'MARKETING', components: [{ type: 'BODY', text: 'Your cart is waiting, {{1}}.' }, { type: 'BUTTONS', buttons: [{ type: 'URL', text: 'Open cart', url: 'https://shop.example.com/cart/{{1}}' }] }] }, variables: {} },
  { template: { name: 'catalog_offer', language: 'en_US', category: 'MARKETING', components: [{ type: 'BODY', text: 'Get {{1}} off your first order!' }, { type: 'BUTTONS', buttons: [{ type: 'CATALOG', text: 'View catalog' }] }] }, variables: { product: { thumbnail_product_retailer_id: 'sku-1' } } },
  { template: { name: 'spm_pick', language: 'en_US', category: 'MARKETING', components: [{ type: 'HEADER', format: 'PRODUCT' }, { type: 'BODY', text: 'Our pick for you.' }, { type: 'BUTTONS', buttons: [{ type: 'SPM', text: 'View' }] }] }, variables: { product: { catalog_id: '194836987003835', product_retailer_id: 'sku-1' } } },
  { template: { name: 'carousel_deals', language: 'en_US', category: 'MARKETING', components: [{ type: 'BODY', text: 'Deals for {{1}}' }, { type: 'CAROUSEL', cards: [0, 1].map(() => ({ components: [{ type: 'HEADER', format: 'IMAGE' }, { type: 'BODY', text: 'Deal {{1}}' }, { type: 'BUTTONS', buttons: [{ type: 'QUICK_REPLY', text: 'Want it' }] }] })) }] }, variables: { cards: [{ header: { type: 'image', link: 'https://example.com/1.png' } }, { header: { type: 'image', link: 'https://example.com/2.png' } }] } },
];

test('payload generator: each broadcast\'s generated request is accepted by the send endpoint', async (t) => {
  const probe = await http('GET', '/admin/v1/broadcasts', { token: account.admin_token });
  if (probe.status !== 200) {
    t.skip(`GET /admin/v1/broadcasts answers ${probe.status}: the payload generator has nothing to list yet`);
    return;
  }
  const made = [];
  for (const { template, variables } of TEMPLATES) {
    const tr = await http('POST', '/api/v1/templates', { body: template, token: account.admin_token });
    if (tr.status !== 201) {
      t.diagnostic(`template ${template.name} not created: ${tr.status} ${tr.text}`);
      continue;
    }
    const br = await http('POST', '/api/v1/broadcasts', { token: account.admin_token, body: { name: `Broadcast ${template.name}`, template_id: tr.json.id, variables } });
    if (br.status !== 201) {
      t.diagnostic(`broadcast for ${template.name} not created: ${br.status} ${br.text}`);
      continue;
    }
    made.push(br.json);
  }
  assert.equal(made.length, TEMPLATES.length, 'a template or broadcast of some kind could not be created');
  const sender = await key({ name: 'Docs payloads', scope_group: 'message_sender' });
  await sectionsOf(sender.id);
  const { page } = session;
  const picker = page.getByLabel('Broadcast', { exact: true });
  await page.waitForFunction(() => !document.querySelector('#broadcast-picker').disabled);
  for (const b of made) {
    await picker.selectOption(b.id);
    const generated = page.locator('.generated .code-tabs');
    await generated.waitFor();
    const curl = await generated.locator('[data-lang="curl"] code').textContent();
    assert.ok(curl.includes(`/broadcasts/${b.id}/send`), curl);
    // The request as the page shows it (URL and -d body of the cURL), sent with the key:
    // accepted as is.
    const url = /^curl -X POST "([^"]+)"/.exec(curl)[1];
    const data = /-d '([\s\S]*)'$/.exec(curl)[1].replace(/'\\''/g, "'");
    const example = await http('GET', `/admin/v1/broadcasts/${b.id}/example`, { token: account.admin_token });
    assert.deepEqual(JSON.parse(data), example.json.request.body);
    const sent = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${sender.key}`, 'Content-Type': 'application/json' }, body: data });
    const result = await sent.json();
    assert.equal(sent.status, 202, `${b.name}: ${JSON.stringify(result)}`);
    assert.equal(result.rejected.length, 0, `${b.name}: ${JSON.stringify(result.rejected)}`);
  }
});

// The examples use the account's own values: its latest broadcast and its contacts' most used
// tag. The audience send is shown as the page builds it and accepted as is; the page says it
// needs contacts:read_all, and whether the key has it. The contacts section shows the import
// (a CSV with the real tag) and the suppression list.
test('examples use the account\'s real broadcast and tag; the audience send is accepted as shown', async () => {
  const n = Date.now().toString(36);
  const tag = `vip${n}`;
  const template = { name: `docs_audience_${n}`, language: 'en_US', category: 'UTILITY', components: [{ type: 'BODY', text: 'Hi {{1}}, your order {{2}} is ready.', example: { body_text: [['Ada', '#1001']] } }] };
  const tr = await http('POST', '/api/v1/templates', { token: account.admin_token, body: template });
  assert.equal(tr.status, 201, tr.text);
  const br = await http('POST', '/api/v1/broadcasts', { token: account.admin_token, body: { name: `Audience ${n}`, template_id: tr.json.id } });
  assert.equal(br.status, 201, br.text);
  const b = br.json;
  for (const [i, tags] of [[tag, 'news'], [tag], [tag], ['news']].entries()) {
    const c = await http('POST', '/api/v1/contacts', { token: account.admin_token, body: { phone: `+1415555${String(7000 + i)}`, name: `Contact ${i}`, tags, attributes: { order_id: `A-${i}` } } });
    assert.equal(c.status, 201, c.text);
  }

  const k = await key({ name: 'Docs audience', scopes: ['broadcast:send', 'contacts:read_all'] });
  await sectionsOf(k.id);
  const { page } = session;
  const example = page.locator('[data-section="broadcast"] [data-example="audience-send"]');
  assert.equal(await example.locator('h4 code').textContent(), `/broadcasts/${b.id}/send`);
  assert.match(await example.locator('.endpoint-note').textContent(), /also needs the scope contacts:read_all.*This key has it\./);
  const curl = await example.locator('[data-lang="curl"] code').textContent();
  const url = /^curl -X POST "([^"]+)"/.exec(curl)[1];
  assert.ok(url.endsWith(`/api/v1/broadcasts/${b.id}/send`), url);
  const data = /-d '([\s\S]*)'$/.exec(curl)[1].replace(/'\\''/g, "'");
  const body = JSON.parse(data);
  assert.deepEqual(body.audience, { tags_any: [tag] });
  assert.deepEqual(body.variables_from, { body: ['{{contact.name|there}}', '{{attributes.order_id|#1001}}'] });
  const js = await example.locator('[data-lang="javascript"] code').textContent();
  assert.ok(js.includes(`/broadcasts/${b.id}/send`) && js.includes(`"${tag}"`), js);
  // The recipient-list example names the same broadcast, with the variables its template takes.
  const recipients = await page.locator('[data-section="broadcast"] [data-example="recipients-send"] [data-lang="curl"] code').textContent();
  assert.ok(recipients.includes(`/broadcasts/${b.id}/send`), recipients);
  // Sent with the key as shown: 202, expanding, and the three tagged contacts get it.
  const sent = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${k.key}`, 'Content-Type': 'application/json' }, body: data });
  const answer = await sent.json();
  assert.equal(sent.status, 202, JSON.stringify(answer));
  assert.equal(answer.status, 'expanding');
  let progress;
  for (let i = 0; i < 100; i += 1) {
    progress = await http('GET', `/api/v1/dispatches/${answer.dispatch_id}`, { token: k.key });
    if (progress.json && progress.json.audience && progress.json.audience.state !== 'expanding') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(progress.json.audience_total, 3, progress.text);
  assert.equal(progress.json.rejected, 0, progress.text);

  // A key without contacts:read_all sees the audience form with a note saying it is refused.
  const sender = await key({ name: 'Docs sender 2', scope_group: 'message_sender' });
  await sectionsOf(sender.id);
  const note = await page.locator('[data-example="audience-send"] .endpoint-note').textContent();
  assert.match(note, /This key does not: the API answers 403 insufficient_scope naming contacts:read_all/);
  const refused = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${sender.key}`, 'Content-Type': 'application/json' }, body: data });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error.required_scope, 'contacts:read_all');

  // Contacts: the import (a CSV with the real tag) and the suppression list, by scope.
  const contacts = await key({ name: 'Docs contacts', scope_group: 'contact_manager' });
  await sectionsOf(contacts.id);
  const paths = await page.locator('[data-section="contacts"] .endpoint h4').allTextContents();
  for (const p of ['POST /contacts/import?default_country=US', 'GET /suppressions?scope=marketing', 'POST /suppressions', 'DELETE /suppressions/%2B14155550123', 'GET /suppressions/keywords', 'PUT /suppressions/keywords']) {
    assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
  }
  assert.ok(paths.includes(`GET /contacts?tag=${tag}`), JSON.stringify(paths));
  const csv = await page.getByLabel('contacts.csv example').textContent();
  assert.match(csv.split('\n')[0], /^phone,name,tags,order_id$/);
  assert.ok(csv.includes(tag), csv);
  const upload = await page.locator('[data-example="contacts-import"] [data-lang="curl"] code').textContent();
  assert.match(upload, /-H "Content-Type: text\/csv" \\\n {2}--data-binary @contacts\.csv$/);
  // Without the server's docs data (an older server): the latest broadcast from the broadcasts
  // list, placeholders for the rest.
  await page.route('**/admin/v1/api-keys/*/docs', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"not found","request_id":"x"}}' }));
  try {
    await page.goto(`${env.base}/#/api-keys/`);
    await sectionsOf(k.id);
    const fallback = page.locator('[data-example="audience-send"]');
    assert.equal(await fallback.locator('h4 code').textContent(), `/broadcasts/${b.id}/send`);
    assert.match(await fallback.locator('[data-lang="curl"] code').textContent(), /"tags_any": \[\s*"newsletter"\s*\]/);
  } finally {
    await page.unroute('**/admin/v1/api-keys/*/docs');
  }
});
