// What the load tests share: settings from the environment or `.ezpulze/stack.env`, the
// loopback guard, the template they send and its creation.

import http from 'k6/http';
import { fail } from 'k6';

// KEY=value lines of stack.env (as `make up` writes it) into an object.
export function parseStackEnv(text) {
  const out = {};
  for (const line of (text || '').split('\n')) {
    const m = line.match(/^\s*([A-Z_][A-Z0-9_]*)=(.*)$/);
    if (m) out[m[1]] = m[2].trim().replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return out;
}

// A setting: the environment (or `k6 run -e`) first, then stack.env, then the fallback.
export function settings(stack) {
  return (name, fallback) => __ENV[name] || stack[name] || fallback;
}

// These scripts must never load a shared or production server.
export function requireLoopback(apiUrl) {
  const host = (apiUrl.match(/^https?:\/\/(\[[^\]]+\]|[^/:]+)/) || [])[1] || '';
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
    throw new Error(`API_URL ${apiUrl} is not a loopback address; this load test only runs against a local stack`);
  }
}

export const TEMPLATE = {
  name: 'k6_order_update',
  language: 'en_US',
  category: 'UTILITY',
  components: [
    { type: 'BODY', text: 'Hi {{1}}, order {{2}} shipped', example: { body_text: [['Ann', '1']] } },
  ],
};

export function authHeaders(apiKey, extra) {
  return Object.assign({ Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' }, extra || {});
}

// The id of TEMPLATE: created, or found when it exists (409). `tags` go on both requests.
export function templateId(apiUrl, apiKey, tags) {
  const created = http.post(`${apiUrl}/api/v1/templates`, JSON.stringify(TEMPLATE), {
    headers: authHeaders(apiKey),
    tags,
    responseCallback: http.expectedStatuses(201, 409),
  });
  if (created.status === 201) return created.json('id');
  if (created.status !== 409) fail(`POST /api/v1/templates: ${created.status} ${created.body}`);
  const list = http.get(`${apiUrl}/api/v1/templates`, { headers: authHeaders(apiKey), tags });
  if (list.status !== 200) fail(`GET /api/v1/templates: ${list.status} ${list.body}`);
  const found = (list.json('items') || []).find((t) => t.name === TEMPLATE.name && t.language === TEMPLATE.language);
  if (!found) fail(`template ${TEMPLATE.name} exists (409) but is not listed`);
  return found.id;
}

// A new broadcast of `template` named `name`; its id.
export function newBroadcast(apiUrl, apiKey, template, name, tags) {
  const res = http.post(`${apiUrl}/api/v1/broadcasts`, JSON.stringify({ name, template_id: template }), {
    headers: authHeaders(apiKey),
    tags,
  });
  if (res.status !== 201) fail(`POST /api/v1/broadcasts: ${res.status} ${res.body}`);
  return res.json('id');
}
