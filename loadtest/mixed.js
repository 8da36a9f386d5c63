// k6 mixed-traffic load test against a local stack (`make up`): small requests (contact
// reads and writes, dispatch reads) at a constant arrival rate beside bulk sends, while a large
// backlog of queued messages drains. The p99 of the small requests and of the bulk sends are
// reported apart (the `kind` tag), so a send path that slows every other request shows.
//
//   set -a; . .ezpulze/stack.env; set +a
//   k6 run -e BACKLOG=2000000 -e SMALL_RPS=400 -e DURATION=3m loadtest/mixed.js
//
// setup() creates (or finds) the template `k6_order_update`, a broadcast of it, and queues
// BACKLOG messages (requests of 10,000 recipients, before the clock starts); then, for
// DURATION, `small` runs SMALL_RPS requests/s spread over four kinds of small request and
// `bulk` sends BULK_RPS requests/s of BULK_RECIPIENTS recipients. Loopback only. See
// loadtest/README.md.

import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { authHeaders, newBroadcast, parseStackEnv, requireLoopback, settings, templateId } from './lib.js';

let stackText = '';
try {
  stackText = open('../.ezpulze/stack.env');
} catch (_) {
  // No stack.env: the environment must say everything.
}
const env = settings(parseStackEnv(stackText));
const int = (name, fallback) => parseInt(env(name, fallback), 10);

const API_URL = env('API_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const API_KEY = env('API_KEY', '');
const BACKLOG = int('BACKLOG', '0');
const SMALL_RPS = int('SMALL_RPS', '400');
const BULK_RPS = int('BULK_RPS', '1');
const BULK_RECIPIENTS = int('BULK_RECIPIENTS', '1000');
const DURATION = env('DURATION', '3m');
const SMALL_P99_MS = int('SMALL_P99_MS', '100');

requireLoopback(API_URL);
if (!(BULK_RECIPIENTS >= 1 && BULK_RECIPIENTS <= 10000)) throw new Error('need 1 <= BULK_RECIPIENTS <= 10000');
if (!(SMALL_RPS >= 1 && BULK_RPS >= 0 && BACKLOG >= 0)) throw new Error('need SMALL_RPS >= 1, BULK_RPS >= 0, BACKLOG >= 0');

const scenarios = {
  small: {
    executor: 'constant-arrival-rate',
    rate: SMALL_RPS,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.max(10, Math.ceil(SMALL_RPS / 10)),
    maxVUs: Math.max(50, SMALL_RPS),
    exec: 'small',
  },
};
if (BULK_RPS > 0) {
  scenarios.bulk = {
    executor: 'constant-arrival-rate',
    rate: BULK_RPS,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: 4,
    maxVUs: 32,
    exec: 'bulk',
  };
}

export const options = {
  scenarios,
  // Queuing the backlog: 10,000 recipients a request, about 60,000 a second on 2 cores.
  setupTimeout: `${60 + Math.ceil(BACKLOG / 10000)}s`,
  thresholds: {
    [`http_req_duration{kind:small}`]: [`p(99)<${SMALL_P99_MS}`],
    'http_req_duration{kind:bulk}': ['p(99)<5000'],
    'http_req_failed{kind:small}': ['rate<0.01'],
    'http_req_failed{kind:bulk}': ['rate<0.01'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

const recipientsAccepted = new Counter('recipients_accepted');

function headers(extra) {
  return authHeaders(API_KEY, extra);
}

// `count` recipients from `base` on: +1 then 10 digits, distinct across the whole run.
function recipients(count, base) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = { to: `+1${String(2000000000 + base + i)}`, variables: { body: ['Ann', String(base + i)] } };
  }
  return out;
}

function send(broadcastId, count, base, kind) {
  const res = http.post(
    `${API_URL}/api/v1/broadcasts/${broadcastId}/send`,
    JSON.stringify({ recipients: recipients(count, base) }),
    { headers: headers(), tags: { kind, name: 'send' }, timeout: '60s' },
  );
  if (res.status === 202) recipientsAccepted.add(res.json('accepted') || 0);
  return res;
}

export function setup() {
  if (!API_KEY) fail('API_KEY is not set: run `make up` (it writes .ezpulze/stack.env) or export API_KEY');
  const tags = { kind: 'setup' };
  const broadcastId = newBroadcast(API_URL, API_KEY, templateId(API_URL, API_KEY, tags), `k6 mixed ${new Date().toISOString()}`, tags);
  // Recipients of this run start at a random block, so runs on one stack do not collide.
  const base = Math.floor(Math.random() * 500) * 10000000;
  let dispatchId = null;
  for (let done = 0; done < BACKLOG; done += 10000) {
    const res = send(broadcastId, Math.min(10000, BACKLOG - done), base + done, 'setup');
    if (res.status !== 202) fail(`queuing the backlog: ${res.status} ${res.body}`);
    dispatchId = res.json('dispatch_id');
  }
  if (!dispatchId) {
    const res = send(broadcastId, 1, base + BACKLOG, 'setup');
    if (res.status !== 202) fail(`a first dispatch: ${res.status} ${res.body}`);
    dispatchId = res.json('dispatch_id');
  }
  return { broadcastId, dispatchId, base: base + BACKLOG + 1 };
}

// Small requests, in turn: a page of contacts, a contact created, a dispatch, a page of its
// messages.
export function small(data) {
  const i = exec.scenario.iterationInTest;
  const p = { headers: headers(), tags: { kind: 'small' } };
  let res;
  switch (i % 4) {
    case 0:
      res = http.get(`${API_URL}/api/v1/contacts?limit=20`, Object.assign({}, p, { tags: { kind: 'small', name: 'contacts list' } }));
      break;
    case 1: {
      const phone = `+1${String(3000000000 + ((data.base + exec.vu.idInTest * 1000003 + i) % 999999999))}`;
      res = http.post(
        `${API_URL}/api/v1/contacts`,
        JSON.stringify({ phone, name: 'Load Test' }),
        Object.assign({}, p, { tags: { kind: 'small', name: 'contact create' }, responseCallback: http.expectedStatuses(201, 409) }),
      );
      break;
    }
    case 2:
      res = http.get(`${API_URL}/api/v1/dispatches/${data.dispatchId}`, Object.assign({}, p, { tags: { kind: 'small', name: 'dispatch' } }));
      break;
    default:
      res = http.get(
        `${API_URL}/api/v1/dispatches/${data.dispatchId}/messages?limit=20`,
        Object.assign({}, p, { tags: { kind: 'small', name: 'dispatch messages' } }),
      );
  }
  check(res, { 'small request answered 2xx (or 409 for a contact that exists)': (r) => r.status < 300 || r.status === 409 });
}

export function bulk(data) {
  const i = exec.scenario.iterationInTest;
  const res = send(data.broadcastId, BULK_RECIPIENTS, data.base + 1000000000 + i * BULK_RECIPIENTS, 'bulk');
  check(res, { 'bulk send answers 202': (r) => r.status === 202 });
}
