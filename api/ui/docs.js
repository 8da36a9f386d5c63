// The per-key API documentation page: sections chosen by the key's scopes, each example in
// cURL and JavaScript with a Copy button, and a broadcast picker that shows the generated
// payload of a saved broadcast (GET /admin/v1/broadcasts/{id}/example).

import { h, icon, clear, copyText, formatNumber } from './dom.js';
import { api, ApiError, describeError } from './api.js';

const KEY_VAR = 'EZPULZE_API_KEY';

function hasScope(scopes, required) {
  const resource = required.split(':')[0];
  return scopes.includes(required) || scopes.includes(`${resource}:all`);
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

// `file`: a file sent as the raw body ({ name, type }), such as a CSV import.
export function curlFor({ method, url, body, headers = {}, file }) {
  const lines = [`curl -X ${method} "${url}"`, `  -H "Authorization: Bearer $${KEY_VAR}"`];
  for (const [name, value] of Object.entries(headers)) lines.push(`  -H ${shellQuote(`${name}: ${value}`)}`);
  if (file) {
    lines.push(`  -H "Content-Type: ${file.type}"`);
    lines.push(`  --data-binary @${file.name}`);
  } else if (body !== undefined) {
    lines.push('  -H "Content-Type: application/json"');
    lines.push(`  -d ${shellQuote(JSON.stringify(body, null, 2))}`);
  }
  return lines.join(' \\\n');
}

export function javascriptFor({ method, url, body, headers = {}, file }) {
  const head = [`    Authorization: \`Bearer \${process.env.${KEY_VAR}}\`,`];
  for (const [name, value] of Object.entries(headers)) head.push(`    ${JSON.stringify(name)}: ${JSON.stringify(value)},`);
  if (file) head.push(`    "Content-Type": ${JSON.stringify(file.type)},`);
  else if (body !== undefined) head.push('    "Content-Type": "application/json",');
  const lines = [
    ...(file ? ["import { readFile } from 'node:fs/promises';", ''] : []),
    `const response = await fetch(${JSON.stringify(url)}, {`,
    `  method: ${JSON.stringify(method)},`,
    '  headers: {',
    ...head,
    '  },',
  ];
  if (file) {
    lines.push(`  body: await readFile(${JSON.stringify(file.name)}),`);
  } else if (body !== undefined) {
    const json = JSON.stringify(body, null, 2).split('\n').map((l, i) => (i === 0 ? l : `  ${l}`)).join('\n');
    lines.push(`  body: JSON.stringify(${json}),`);
  }
  lines.push('});');
  lines.push(method === 'DELETE' ? 'console.log(response.status); // 204 when deleted' : 'const data = await response.json();');
  if (method !== 'DELETE') lines.push('if (!response.ok) throw new Error(`${data.error.code}: ${data.error.message}`);');
  return lines.join('\n');
}

let exampleCounter = 0;

/** A code example with cURL / JavaScript tabs and a Copy button for the tab shown. */
function codeTabs({ curl, javascript, label }) {
  const id = `ex${++exampleCounter}`;
  const panes = [
    { name: 'cURL', code: curl, key: 'curl' },
    { name: 'JavaScript', code: javascript, key: 'javascript' },
  ];
  let current = 0;
  const tabs = panes.map((p, i) => h('button', {
    type: 'button',
    role: 'tab',
    id: `${id}-tab-${p.key}`,
    class: 'tab',
    'aria-selected': i === 0 ? 'true' : 'false',
    'aria-controls': `${id}-panel-${p.key}`,
    tabindex: i === 0 ? '0' : '-1',
    dataset: { lang: p.key },
  }, p.name));
  const panels = panes.map((p, i) => h('div', {
    role: 'tabpanel',
    id: `${id}-panel-${p.key}`,
    'aria-labelledby': `${id}-tab-${p.key}`,
    class: 'code-panel',
    hidden: i !== 0,
    dataset: { lang: p.key },
  }, h('pre', { tabindex: '0' }, h('code', {}, p.code))));
  const select = (i, focus) => {
    current = i;
    tabs.forEach((t, j) => {
      t.setAttribute('aria-selected', j === i ? 'true' : 'false');
      t.tabIndex = j === i ? 0 : -1;
      panels[j].hidden = j !== i;
    });
    if (focus) tabs[i].focus();
  };
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => select(i, false));
    t.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        e.preventDefault();
        select((i + (e.key === 'ArrowRight' ? 1 : panes.length - 1)) % panes.length, true);
      } else if (e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        select(e.key === 'Home' ? 0 : panes.length - 1, true);
      }
    });
  });
  const copy = h('button', { type: 'button', class: 'btn btn-secondary btn-sm copy-code', 'aria-label': `Copy ${label || 'example'}`, onclick: () => copyText(panes[current].code, copy) }, icon('copy', 14), h('span', { class: 'label' }, 'Copy'));
  return h('div', { class: 'code-tabs' },
    h('div', { class: 'code-bar' }, h('div', { role: 'tablist', 'aria-label': `${label || 'Example'}: language` }, tabs), copy),
    panels);
}

function endpoint(base, e) {
  const url = `${base}${e.path}`;
  const request = { method: e.method, url, body: e.body, headers: e.headers, file: e.file };
  return h('article', { class: 'endpoint', dataset: { scope: e.scope || '', example: e.example || '' } },
    h('h4', {}, h('span', { class: `method method-${e.method.toLowerCase()}` }, e.method), ' ', h('code', {}, e.path)),
    h('p', {}, e.description, e.scope ? [' ', h('span', { class: 'muted' }, 'Scope: '), h('code', { class: 'scope' }, e.scope)] : null),
    e.note ? h('p', { class: 'alert alert-info endpoint-note' }, e.note) : null,
    e.file ? h('pre', { class: 'code-sample', tabindex: '0', 'aria-label': `${e.file.name} example` }, h('code', {}, e.file.sample)) : null,
    codeTabs({ curl: curlFor(request), javascript: javascriptFor(request), label: e.label || `${e.method} ${e.path}` }));
}

function section(id, title, intro, ...children) {
  return h('section', { class: 'doc-section', id: `doc-${id}`, 'aria-labelledby': `doc-${id}-title`, dataset: { section: id } },
    h('h2', { id: `doc-${id}-title` }, title),
    intro ? h('p', {}, intro) : null,
    children);
}

const SAMPLE_PHONE = '+14155550123';
const SAMPLE_ID = '0193a5b2-7c1e-7a3d-9f10-2b4c6d8e0f12';
const AUDIENCE_SCOPE = 'contacts:read_all';

/**
 * The values the examples use: the account's own when the server's docs data gives them
 * (`samples`: its latest broadcast with the variables a recipient sends and a `variables_from`
 * filling them from contacts, its most used tags, its attribute names), placeholders
 * otherwise. `keyScopes`: the key's scopes, for the notes on what it may not do.
 */
export function examplesFrom(samples, keyScopes = []) {
  const s = samples && typeof samples === 'object' ? samples : {};
  const b = s.broadcast && typeof s.broadcast === 'object' && typeof s.broadcast.id === 'string' ? s.broadcast : null;
  const strings = (list) => (Array.isArray(list) ? list.filter((x) => typeof x === 'string' && x) : []);
  const tags = strings(s.tags);
  const attribute = strings(s.attributes).find((a) => /^[A-Za-z0-9_-]{1,100}$/.test(a)) || null;
  const object = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : null);
  const variables = b && object(b.variables) ? b.variables : { body: ['Ada', '#1001'] };
  let variablesFrom = { body: ['{{contact.name|there}}', attribute ? `{{attributes.${attribute}|#1001}}` : '#1001'] };
  if (b && 'variables_from' in b) variablesFrom = object(b.variables_from);
  return {
    broadcastId: b ? b.id : SAMPLE_ID,
    broadcastName: b && typeof b.name === 'string' ? b.name : null,
    variables,
    variablesFrom,
    tag: tags[0] || 'newsletter',
    tags: tags.length ? tags.slice(0, 2) : ['newsletter', 'vip'],
    realTags: tags.length > 0,
    attribute: attribute || 'city',
    keyScopes: Array.isArray(keyScopes) ? keyScopes : [],
  };
}

const PLACEHOLDERS = examplesFrom(null);

function contactsEndpoints(scopes, ex = PLACEHOLDERS) {
  // A field quoted when it must be; tags holding the separator are left out of the sample.
  const field = (v) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const tags = ex.tags.filter((x) => !x.includes(';'));
  const csv = [
    ['phone', 'name', 'tags', ex.attribute],
    [SAMPLE_PHONE, 'Ada Lovelace', tags.join(';'), 'London'],
    ['+14155550124', 'Grace Hopper', tags.slice(0, 1).join(';'), 'New York'],
  ].map((row) => row.map(field).join(',')).join('\n');
  return [
    { scope: 'contacts:create', method: 'POST', path: '/contacts', description: 'Create a contact (the phone number is stored in E.164; one contact per phone number).', body: { phone: SAMPLE_PHONE, name: 'Ada Lovelace', email: 'ada@example.com', tags: [ex.tag], attributes: { [ex.attribute]: 'London' } } },
    { scope: 'contacts:read', method: 'GET', path: `/contacts/${SAMPLE_ID}`, description: 'Read one contact by id.' },
    { scope: 'contacts:read_all', method: 'GET', path: `/contacts?tag=${encodeURIComponent(ex.tag)}`, route: '/contacts', description: 'List or search contacts (filters: phone, tag).' },
    { scope: 'contacts:update', method: 'PATCH', path: `/contacts/${SAMPLE_ID}`, description: 'Update a contact: only the fields sent change.', body: { name: 'Ada King', tags: ['newsletter', 'vip'] } },
    { scope: 'contacts:delete', method: 'DELETE', path: `/contacts/${SAMPLE_ID}`, description: 'Delete a contact (and its leads).' },
    { scope: 'contacts:create', method: 'POST', path: '/contacts/import?default_country=US', route: '/contacts/import', example: 'contacts-import', description: `Import contacts from a CSV file (as the body, or the part "file" of multipart/form-data). The header names phone, name, tags (separated by ;) and any other column becomes an attribute; contacts are upserted by phone, so importing the same file again changes nothing. default_country reads national numbers without a country code. Answers 202 with the import, which runs in the background.`, file: { name: 'contacts.csv', type: 'text/csv', sample: csv } },
    { scope: 'contacts:read_all', method: 'GET', path: `/contacts/imports/${SAMPLE_ID}`, description: 'Follow an import: its state, rows done, and how many contacts were created, updated, unchanged or rejected (with the first rejected rows).' },
    { scope: 'contacts:read_all', method: 'GET', path: `/contacts/imports/${SAMPLE_ID}/rejections?limit=100`, description: 'Every rejected row of an import: row number, column and code (cursor pages).' },
    { scope: 'contacts:read_all', method: 'GET', path: '/suppressions?scope=marketing', route: '/suppressions', example: 'suppressions', description: 'The suppression list: phones your sends skip (reported as rejected "suppressed", never sent). People are added by an inbound STOP, by WhatsApp error 131050, or by you. Filters: phone, reason, scope.' },
    { scope: 'contacts:update', method: 'POST', path: '/suppressions', description: 'Suppress a phone: scope "marketing" blocks templates of category MARKETING, "all" every template; reason opt_out, bounced or manual.', body: { phone: SAMPLE_PHONE, reason: 'opt_out', scope: 'marketing', source: 'crm' } },
    { scope: 'contacts:update', method: 'DELETE', path: `/suppressions/${encodeURIComponent(SAMPLE_PHONE)}`, route: '/suppressions/{phone}', description: 'Remove a phone from the suppression list (for example after the person opted in again elsewhere).' },
    { scope: 'contacts:read_all', method: 'GET', path: '/suppressions/keywords', description: 'The inbound keywords that opt a person out (STOP, UNSUBSCRIBE, …) and back in (START, UNSTOP).' },
    { scope: 'contacts:update', method: 'PUT', path: '/suppressions/keywords', description: 'Set your own opt-out and opt-in keywords (both lists, 1 to 50 each).', body: { opt_out: ['STOP', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'STOPALL', 'BASTA'], opt_in: ['START', 'UNSTOP'] } },
  ].filter((e) => hasScope(scopes, e.scope));
}

function leadsEndpoints(scopes) {
  return [
    { scope: 'leads:create', method: 'POST', path: '/leads', description: 'Create a lead for a contact.', body: { contact_id: SAMPLE_ID, title: 'Website enquiry: 20 seats', status: 'new', value_cents: 250000, currency: 'USD', source: 'website' } },
    { scope: 'leads:read', method: 'GET', path: `/leads/${SAMPLE_ID}`, description: 'Read one lead by id.' },
    { scope: 'leads:read_all', method: 'GET', path: '/leads?status=qualified', description: 'List or search leads (filters: status, assignee, contact_id).' },
    { scope: 'leads:update', method: 'PATCH', path: `/leads/${SAMPLE_ID}`, description: 'Update a lead.', body: { status: 'qualified', notes: 'Asked for a demo next week.' } },
    { scope: 'leads:assign', method: 'POST', path: `/leads/${SAMPLE_ID}/assign`, description: 'Assign a lead to a team member.', body: { assignee: 'maria@example.com' } },
    { scope: 'leads:delete', method: 'DELETE', path: `/leads/${SAMPLE_ID}`, description: 'Delete a lead.' },
  ].filter((e) => hasScope(scopes, e.scope));
}

function templatesEndpoints(scopes) {
  return [
    { scope: 'template:read', method: 'GET', path: '/templates', description: 'List the available message templates.' },
    { scope: 'template:read', method: 'GET', path: `/templates/${SAMPLE_ID}`, description: 'Read one template with its components.' },
    { scope: 'template:create', method: 'POST', path: '/templates', description: "Create a template in Meta's message-template format.", body: { name: 'order_shipped', language: 'en_US', category: 'UTILITY', components: [{ type: 'BODY', text: 'Hi {{1}}, your order {{2}} is on its way.', example: { body_text: [['Ada', '#1001']] } }] } },
    { scope: 'template:create', method: 'POST', path: '/templates/sync', description: "Sync the account's templates with Meta: statuses (PENDING, APPROVED, REJECTED with its reason, PAUSED, DISABLED) and categories are updated, and templates that exist only at Meta are registered." },
    { scope: 'template:update', method: 'PATCH', path: `/templates/${SAMPLE_ID}`, description: 'Update a template.', body: { components: [{ type: 'BODY', text: 'Hello {{1}}, order {{2}} has shipped.' }] } },
    { scope: 'template:delete', method: 'DELETE', path: `/templates/${SAMPLE_ID}`, description: 'Delete a template.' },
  ].filter((e) => hasScope(scopes, e.scope));
}

/** The audience send's note: the second scope it needs, and whether this key has it. */
function audienceNote(ex) {
  const has = hasScope(ex.keyScopes, AUDIENCE_SCOPE);
  return [
    'An audience send also needs the scope ', h('code', {}, AUDIENCE_SCOPE), ' (reading your contacts), besides ', h('code', {}, 'broadcast:send'), '. ',
    has ? 'This key has it.' : ['This key does not: the API answers 403 ', h('code', {}, 'insufficient_scope'), ' naming ', h('code', {}, AUDIENCE_SCOPE), '. Send a recipient list instead, or give the key that scope.'],
  ];
}

function broadcastEndpoints(scopes, ex = PLACEHOLDERS) {
  const canSend = hasScope(scopes, 'broadcast:send');
  const send = `/broadcasts/${ex.broadcastId}/send`;
  const which = ex.broadcastName ? `your broadcast "${ex.broadcastName}"` : 'a broadcast';
  const recipient = { to: SAMPLE_PHONE, ref: 'order-1001' };
  if (ex.variables && Object.keys(ex.variables).length) recipient.variables = ex.variables;
  const audience = { audience: { tags_any: [ex.tag] } };
  if (ex.variablesFrom) audience.variables_from = ex.variablesFrom;
  return [
    { scope: 'broadcast:read', method: 'GET', path: '/broadcasts', description: 'List saved broadcasts.' },
    { scope: 'broadcast:create', method: 'POST', path: '/broadcasts', description: 'Save a broadcast: a template, its language and default parameters (saved media references live in variables).', body: { name: 'Shipping update', template_id: SAMPLE_ID, variables: { body: ['there', '#0000'] } } },
    { scope: 'broadcast:send', method: 'POST', path: send, route: '/broadcasts/{id}/send', example: 'recipients-send', label: 'send to recipients', description: `Send ${which} to a list of up to 10,000 recipients, each with its own variables. Rejected recipients (an invalid phone, a suppressed one) are listed in the answer; the others are queued. Add an Idempotency-Key header to retry safely.`, headers: { 'Idempotency-Key': 'order-1001-shipped' }, body: { recipients: [recipient] } },
    { scope: 'broadcast:send', method: 'POST', path: send, route: '/broadcasts/{id}/send', example: 'audience-send', label: 'send to an audience', description: `Or send ${which} to an audience of your contacts, any number of them: here every contact tagged "${ex.tag}"${ex.realTags ? ' (your contacts\' most used tag)' : ''}; tags_all, tags_none, attributes, contact_ids and "all": true narrow or widen it. variables_from fills the template per contact ({{contact.name}}, {{attributes.<name>}}, a default after |). The answer is 202 "expanding" at once and the messages are created in the background: follow them with the dispatch. Suppressed phones and contacts whose variables are empty are rejected, never sent.`, note: audienceNote(ex), headers: { 'Idempotency-Key': `audience-${ex.tag}-1` }, body: audience },
    { scope: canSend ? 'broadcast:send' : 'broadcast:read', method: 'GET', path: `/dispatches/${SAMPLE_ID}`, description: 'Follow a dispatch: status (expanding while an audience is being created), counts of queued, sent, delivered, read and failed messages, rejected recipients by code, and an audience\'s size and progress.' },
    { scope: canSend ? 'broadcast:send' : 'broadcast:read', method: 'GET', path: `/dispatches/${SAMPLE_ID}/rejections?limit=100`, description: 'The recipients a dispatch did not send to, with their code: suppressed, missing_variable, invalid_variables, invalid_phone… (cursor pages).' },
    { scope: canSend ? 'broadcast:send' : 'broadcast:read', method: 'GET', path: '/whatsapp/messaging-limit', description: "The portfolio's messaging limit: its tier, the unique recipients reached in the moving 24 h window and what remains (messages over it wait as deferred)." },
    { scope: canSend ? 'broadcast:send' : 'broadcast:read', method: 'GET', path: '/whatsapp/numbers/limits', description: "Each number's throughput in force, quality and flag, as Meta last reported them." },
    { scope: 'broadcast:send', method: 'POST', path: `/dispatches/${SAMPLE_ID}/cancel`, description: 'Cancel what is not sent yet.' },
    { scope: 'broadcast:send', method: 'POST', path: `/dispatches/${SAMPLE_ID}/resume`, description: 'Resume a dispatch a worker paused (after fixing what paused it, such as an expired access token).' },
    { scope: 'broadcast:delete', method: 'DELETE', path: `/broadcasts/${SAMPLE_ID}`, description: 'Delete a saved broadcast.' },
  ].filter((e) => hasScope(scopes, e.scope));
}

const ERROR_CODES = [
  ['401', 'missing_api_key, invalid_api_key, key_inactive, key_expired', 'Unauthorized: the API key is missing, invalid, inactive or expired.'],
  ['403', 'insufficient_scope, ip_not_allowed', "Forbidden: the key doesn't have the required scope, or the request comes from an IP address the key does not allow."],
  ['404', 'not_found', 'The record does not exist (or belongs to another account).'],
  ['409', 'conflict, idempotency_conflict', 'A duplicate (for example the same phone number), or an Idempotency-Key reused with another body or still being processed (then with Retry-After, at most 10 s).'],
  ['413', 'payload_too_large', 'The request body is too large.'],
  ['422', 'validation_failed', 'The request is not valid: details lists each field and what is wrong.'],
  ['429', 'rate_limited', 'Too Many Requests: the rate limit is exceeded; wait for Retry-After seconds.'],
  ['500', 'internal', 'Internal Server Error: something went wrong on the server. Retry later; quote the request id.'],
];

const RATE_HEADERS = [
  ['X-RateLimit-Limit', 'Requests allowed per hour for this key.'],
  ['X-RateLimit-Remaining', 'Requests left in the current window.'],
  ['X-RateLimit-Reset', 'When the window resets, in Unix epoch seconds.'],
  ['RateLimit-Policy', 'The policy in the IETF format, for example 1000;w=3600.'],
  ['RateLimit', 'The current state in the IETF format (remaining and reset).'],
  ['Retry-After', 'On a 429 response only: seconds to wait before retrying.'],
];

/** The broadcast picker: a dropdown of saved broadcasts and the payload generated for one. */
function broadcastPicker(base) {
  const select = h('select', { id: 'broadcast-picker', disabled: true }, h('option', { value: '' }, 'Loading broadcasts…'));
  const note = h('p', { class: 'hint', id: 'broadcast-picker-note', 'aria-live': 'polite' });
  select.setAttribute('aria-describedby', note.id);
  const output = h('div', { class: 'generated', 'aria-live': 'polite' });
  const wrap = h('div', { class: 'picker' },
    h('h3', {}, 'Payload generator'),
    h('p', {}, 'Pick a saved broadcast to see the complete request for it: template parameters, media references, button payloads, carousel cards and product configuration.'),
    h('div', { class: 'field' }, h('label', { for: select.id }, 'Broadcast'), select, note),
    output);

  (async () => {
    let list;
    try {
      list = await api.broadcasts();
    } catch (err) {
      clear(select).append(h('option', { value: '' }, 'No broadcasts available'));
      if (err instanceof ApiError && err.status === 401) return;
      note.textContent = err instanceof ApiError && err.status === 404
        ? 'Broadcasts cannot be listed on this server yet, so no payload can be generated. The generic example below shows the request shape.'
        : `The broadcasts could not be loaded: ${describeError(err)}`;
      return;
    }
    const items = Array.isArray(list) ? list : (list && (list.items || list.broadcasts)) || [];
    clear(select).append(h('option', { value: '' }, items.length ? 'Choose a broadcast…' : 'No broadcasts yet'));
    for (const b of items) {
      const template = b.template && typeof b.template === 'object' ? (b.template.name || '') : (b.template || b.template_name || '');
      select.append(h('option', { value: b.id }, template ? `${b.name} (${template})` : b.name));
    }
    select.disabled = items.length === 0;
    note.textContent = items.length ? '' : 'Create a broadcast first; its payload is generated here.';
  })();

  select.addEventListener('change', async () => {
    clear(output);
    if (!select.value) return;
    output.append(h('p', { class: 'muted' }, 'Generating…'));
    try {
      const ex = await api.broadcastExample(select.value);
      const req = (ex && ex.request) || {};
      const url = req.url ? (/^https?:/.test(req.url) ? req.url : `${base.replace(/\/api\/v1$/, '')}${req.url}`) : `${base}/broadcasts/${select.value}/send`;
      const request = { method: req.method || 'POST', url, body: req.body };
      const extra = {};
      for (const [k, v] of Object.entries(req.headers || {})) {
        if (!/^(authorization|x-api-key|content-type)$/i.test(k)) extra[k] = String(v);
      }
      request.headers = extra;
      clear(output).append(
        h('h4', {}, h('span', { class: 'method method-post' }, request.method), ' ', h('code', {}, url.replace(base, ''))),
        // Built from the request (like every other example on the page: same key variable,
        // same quoting); the server's own snippets only when it sends no request body.
        codeTabs({
          curl: req.body === undefined && typeof ex.curl === 'string' ? ex.curl : curlFor(request),
          javascript: req.body === undefined && typeof ex.javascript === 'string' ? ex.javascript : javascriptFor(request),
          label: 'generated payload',
        }));
    } catch (err) {
      clear(output);
      if (!(err instanceof ApiError && err.status === 401)) output.append(h('p', { class: 'alert alert-error', role: 'alert' }, `The payload could not be generated: ${describeError(err)}`));
    }
  });
  return wrap;
}

// Page sections: the section id on the page, its title, and its id in the server's docs (the
// scope prefix).
const SECTIONS = [
  { id: 'broadcast', title: 'Broadcast API', server: 'broadcast' },
  { id: 'contacts', title: 'Contacts API', server: 'contacts' },
  { id: 'leads', title: 'Leads API', server: 'leads' },
  { id: 'templates', title: 'Templates API', server: 'template' },
  { id: 'chatbot-flows', title: 'Chatbot Flows API', server: 'chatbot_flows' },
  { id: 'webhooks', title: 'Webhooks API', server: 'webhooks' },
];

function webhookEndpoints(scopes) {
  return [
    { scope: 'webhooks:manage', method: 'POST', path: '/webhook-endpoints', description: 'Register a URL for signed events of your messages. The answer holds the signing secret, shown only this once.', body: { url: 'https://hooks.example.com/ezpulze', events: ['message.delivered', 'message.failed'], max_per_second: 50 } },
    { scope: 'webhooks:manage', method: 'GET', path: '/webhook-endpoints', description: 'List your endpoints.' },
    { scope: 'webhooks:manage', method: 'GET', path: `/webhook-endpoints/${SAMPLE_ID}/deliveries?state=failed`, description: 'The delivery log: state, attempts, last answer.' },
    { scope: 'webhooks:manage', method: 'POST', path: `/webhook-endpoints/${SAMPLE_ID}/recover`, description: 'Send again every event that failed since a time.', body: { since: '2026-12-01T00:00:00Z' } },
  ].filter((e) => hasScope(scopes, e.scope));
}

/** How an integrator checks an event's signature (Standard Webhooks). */
function verificationExample() {
  const python = [
    'import os',
    'from standardwebhooks.webhooks import Webhook  # pip install standardwebhooks',
    'wh = Webhook(os.environ["EZPULZE_WEBHOOK_SECRET"])  # whsec_...',
    'event = wh.verify(request.get_data(), request.headers)  # raises if forged or stale',
    'if event["type"] == "message.failed": handle_failure(event["data"])',
  ].join('\n');
  const javascript = [
    "import { Webhook } from 'standardwebhooks'; // npm install standardwebhooks",
    '// rawBody: the request body as received, before any JSON parsing',
    'const wh = new Webhook(process.env.EZPULZE_WEBHOOK_SECRET); // whsec_...',
    'const event = wh.verify(rawBody, req.headers); // throws if forged or stale',
    "if (event.type === 'message.failed') handleFailure(event.data);",
  ].join('\n');
  return h('div', { class: 'webhook-verify' },
    h('h3', {}, 'Verifying an event'),
    h('p', {}, 'Every request carries ', h('code', {}, 'webhook-id'), ', ', h('code', {}, 'webhook-timestamp'), ' and ', h('code', {}, 'webhook-signature'),
      ' (Standard Webhooks: ', h('code', {}, 'v1,'), ' + base64 HMAC-SHA256 of id.timestamp.body under the secret after ', h('code', {}, 'whsec_'), '). Check it on the raw body before parsing; answer 2xx quickly. Events come at least once and in no set order: de-duplicate on ', h('code', {}, 'webhook-id'), '.'),
    h('h4', {}, 'Python'),
    h('pre', { class: 'code-sample', tabindex: '0', 'aria-label': 'Python verification example' }, h('code', {}, python)),
    h('h4', {}, 'JavaScript'),
    h('pre', { class: 'code-sample', tabindex: '0', 'aria-label': 'JavaScript verification example' }, h('code', {}, javascript)));
}

function chatbotEndpoints(scopes) {
  return [
    { scope: 'chatbot_flows:webhook', method: 'POST', path: `/chatbot-flows/${SAMPLE_ID}/webhook`, description: "Queue the flow's first message to this phone number.", body: { to: SAMPLE_PHONE, variables: { body: ['Ada'] } } },
  ].filter((e) => hasScope(scopes, e.scope));
}

const LOCAL = {
  broadcast: broadcastEndpoints,
  contacts: contactsEndpoints,
  leads: leadsEndpoints,
  templates: templatesEndpoints,
  'chatbot-flows': chatbotEndpoints,
  webhooks: webhookEndpoints,
};

/**
 * `GET /api/v1/contacts/{id}` and `GET /contacts/<SAMPLE_ID>?tag=x` -> `GET /contacts/{}`: how
 * the server's endpoints and this page's examples are matched (an example with real values
 * in its path names its route).
 */
function shape(method, path) {
  return `${method} ${path.replace(/^\/api\/v1/, '').split('?')[0].replaceAll(SAMPLE_ID, '{id}').replace(/\{[^}]+\}/g, '{}')}`;
}

const localShape = (x) => shape(x.method, x.route || x.path);

/** Whether the key may call a server-listed endpoint; and the scope to show for it. */
function callableScope(scopes, e) {
  const accepted = Array.isArray(e.accepted_scopes) && e.accepted_scopes.length ? e.accepted_scopes : [e.scope];
  const held = accepted.find((s) => s && hasScope(scopes, s));
  if (held) return held;
  // A read open to broadcast:read (servers that do not list the accepted scopes).
  if (e.method === 'GET' && String(e.scope).startsWith('broadcast:') && hasScope(scopes, 'broadcast:read')) return e.scope;
  return null;
}

/**
 * The sections and endpoints to show. With the server's docs data, its list decides (its
 * scope rules are the API's own); the examples (bodies, headers) come from this page, and an
 * endpoint it lists that has no example here is shown with its summary. Without it, the
 * key's scopes decide with the same rules.
 */
function chooseEndpoints(scopes, serverDocs, ex) {
  const served = serverDocs && Array.isArray(serverDocs.sections) ? serverDocs.sections : null;
  const out = [];
  for (const { id, title, server: serverId } of SECTIONS) {
    if (!served) {
      const endpoints = LOCAL[id](scopes, ex);
      if (endpoints.length) out.push({ id, title, endpoints });
      continue;
    }
    const section = served.find((x) => x && x.id === serverId);
    if (!section || !Array.isArray(section.endpoints) || !section.endpoints.length) continue;
    const examples = LOCAL[id](FULL_SCOPES, ex);
    // Only what this key can call: one of the scopes that open it.
    const callable = section.endpoints.filter((e) => e && (!e.scope || callableScope(scopes, e)));
    if (!callable.length) continue;
    // In this page's order (the one it shows without the server's data); endpoints it has
    // no example for come last, in the server's order. An endpoint with several examples
    // (a send to recipients and to an audience) shows each.
    const rank = (e) => {
      const i = examples.findIndex((x) => localShape(x) === shape(e.method, e.path));
      return i < 0 ? examples.length : i;
    };
    const endpoints = [...callable].sort((a, b) => rank(a) - rank(b)).flatMap((e) => {
      const scope = e.scope ? callableScope(scopes, e) : '';
      const local = examples.filter((x) => localShape(x) === shape(e.method, e.path));
      if (local.length) return local.map((x) => ({ ...x, scope: scope || x.scope }));
      return [{ method: e.method, path: String(e.path).replace(/^\/api\/v1/, '').replaceAll('{id}', SAMPLE_ID), description: e.summary || '', scope }];
    });
    out.push({ id, title, endpoints });
  }
  return out;
}

// Every scope: the full set of local examples, filtered by the server's list.
const FULL_SCOPES = ['broadcast:all', 'contacts:all', 'leads:all', 'template:all', 'chatbot_flows:webhook', 'webhooks:manage'];

export async function renderDocsPage(root, ctx, keyId) {
  document.title = 'API Documentation · EzPulze';
  clear(root).append(h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  let key;
  try {
    key = await api.getKey(keyId);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    clear(root).append(
      h('a', { href: '#/api-keys', class: 'back' }, icon('left', 14), 'API Keys'),
      h('div', { class: 'alert alert-error', role: 'alert' }, err instanceof ApiError && err.status === 404 ? 'This API key does not exist (it may have been deleted).' : `The key could not be loaded: ${describeError(err)}`));
    return;
  }
  // The server's docs data, when it serves it; the page is complete without it.
  let serverDocs = null;
  try {
    serverDocs = await api.keyDocs(keyId);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
  }
  const base = (serverDocs && typeof serverDocs.base_url === 'string' && serverDocs.base_url) || `${window.location.origin}/api/v1`;
  const scopes = key.scopes;
  const serverLimit = serverDocs && serverDocs.rate_limit && 'requests_per_hour' in serverDocs.rate_limit;
  const limit = serverLimit ? serverDocs.rate_limit.requests_per_hour : key.rate_limit_per_hour;
  const errorCodes = serverDocs && Array.isArray(serverDocs.error_codes) && serverDocs.error_codes.length
    ? serverDocs.error_codes.map((e) => [String(e.status), (e.codes || []).join(', '), e.meaning || ''])
    : ERROR_CODES;
  document.title = `API Documentation: ${key.name} · EzPulze`;

  const sections = [];
  sections.push(section('authentication', 'Authentication', null,
    h('p', {}, 'Send the key with every request, in the Authorization header as a Bearer token (or in an X-API-Key header). Keep it in an environment variable, never in source code. The examples read it from ', h('code', {}, `$${KEY_VAR}`), '.'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Base URL'), h('dd', {}, h('code', { id: 'base-url' }, base), ' ', (() => { const b = h('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'aria-label': 'Copy base URL', onclick: () => copyText(base, b) }, icon('copy', 14), h('span', { class: 'label' }, 'Copy')); return b; })()),
      h('dt', {}, 'This key'), h('dd', {}, h('code', {}, key.masked_key), ' ', h('span', { class: 'muted' }, '(the full value was shown once, when it was created or regenerated)')),
      h('dt', {}, 'Header'), h('dd', {}, h('code', {}, 'Authorization: Bearer sk_live_…'), ' or ', h('code', {}, 'X-API-Key: sk_live_…'))),
    endpoint(base, { method: 'GET', path: '/me', description: "Check the key: answers with the key's name, scopes and rate limit." })));

  // The account's own values for the examples: from the server's docs data, else (an older
  // server) its latest broadcast from the broadcasts list; placeholders for the rest.
  let samples = serverDocs && serverDocs.samples && typeof serverDocs.samples === 'object' ? serverDocs.samples : null;
  if (!samples && scopes.some((s) => s.startsWith('broadcast:'))) {
    try {
      const list = await api.broadcasts();
      const latest = list && Array.isArray(list.items) ? list.items[0] : null;
      if (latest && typeof latest.id === 'string') samples = { broadcast: { id: latest.id, name: latest.name } };
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
    }
  }
  const ex = examplesFrom(samples, scopes);
  const chosen = chooseEndpoints(scopes, serverDocs, ex);
  const INTRO = {
    broadcast: 'Send approved WhatsApp templates in bulk, to a list of recipients or to an audience of your contacts (by tags and attributes). Each recipient may override the broadcast\'s default parameters. Phones on your suppression list are never sent to.',
    contacts: 'Create, read, update and delete contacts, import them from a CSV file, and keep the suppression list of people who opted out. Phone numbers are stored in E.164 format.',
    leads: 'Create, read, update and assign leads.',
    templates: 'List the message templates available to your account.',
    'chatbot-flows': 'Start a chatbot flow for a contact from an external system.',
    webhooks: 'Get every outcome of your messages (sent, delivered, read, failed) and of your dispatches pushed to your URL, signed, retried for up to a day and a half, replayable.',
  };
  for (const { id, title, endpoints } of chosen) {
    sections.push(section(id, title, INTRO[id],
      id === 'broadcast' && hasScope(scopes, 'broadcast:send') ? broadcastPicker(base) : null,
      endpoints.map((e) => endpoint(base, e)),
      id === 'webhooks' ? verificationExample() : null));
  }
  sections.push(section('errors', 'Error Codes', 'Errors have one JSON shape; every response carries an X-Request-Id header.',
    h('div', { class: 'table-wrap' }, h('table', { class: 'doc-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Code'), h('th', { scope: 'col' }, 'Meaning'))),
      h('tbody', {}, errorCodes.map(([status, code, meaning]) => h('tr', {}, h('td', {}, h('strong', {}, status)), h('td', {}, h('code', {}, code)), h('td', {}, meaning)))))),
    h('pre', { class: 'code-sample', tabindex: '0' }, h('code', {}, JSON.stringify({ error: { code: 'insufficient_scope', message: 'this API key lacks the scope contacts:create', request_id: '01JD7X5K3M', required_scope: 'contacts:create' } }, null, 2)))));
  sections.push(section('rate-limits', 'Rate Limits', null,
    h('p', { class: 'rate-limit-line' }, 'This key: ', h('strong', { id: 'key-rate-limit' }, limit === null ? 'no limit' : `${formatNumber(limit)} requests per hour`), limit === null ? ': its responses carry none of the rate-limit headers below.' : ', counted across all servers.'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'doc-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Response header'), h('th', { scope: 'col' }, 'Meaning'))),
      h('tbody', {}, RATE_HEADERS.map(([name, meaning]) => h('tr', {}, h('td', {}, h('code', {}, name)), h('td', {}, meaning)))))),
    h('p', {}, 'When a request is refused with 429, wait the number of seconds in Retry-After before retrying.')));

  const toc = h('nav', { class: 'doc-toc', 'aria-label': 'On this page' },
    h('p', { class: 'toc-title' }, 'On this page'),
    h('ul', {}, sections.map((s) => h('li', {}, h('a', {
      href: `#/api-keys/${encodeURIComponent(key.id)}/docs`,
      onclick: (e) => { e.preventDefault(); s.scrollIntoView({ behavior: 'smooth', block: 'start' }); const t = s.querySelector('h2'); t.tabIndex = -1; t.focus({ preventScroll: true }); },
    }, s.querySelector('h2').textContent)))));

  clear(root).append(
    h('a', { href: '#/api-keys', class: 'back' }, icon('left', 14), 'API Keys'),
    h('div', { class: 'page-header' },
      h('div', {},
        h('h1', {}, 'API Documentation'),
        h('p', { class: 'lead' }, 'Ready-to-use examples for ', h('strong', {}, key.name), ', showing only what its scopes allow.')),
      h('span', { class: `status status-${key.status}` }, key.status === 'active' ? 'Active' : key.status === 'inactive' ? 'Inactive' : 'Expired')),
    h('div', { class: 'key-summary' },
      h('code', {}, key.masked_key),
      key.scope_group_name ? h('span', { class: 'tag tag-group' }, key.scope_group_name) : null,
      h('ul', { class: 'badges', 'aria-label': 'Scopes' }, scopes.map((s) => h('li', { class: 'badge' }, s)))),
    h('div', { class: 'docs-layout' }, toc, h('div', { class: 'doc-sections' }, sections)));
}
