// k6 load test of the Broadcast API's send path against a local stack (`make up`).
//
//   set -a; . .ezpulze/stack.env; set +a
//   k6 run loadtest/broadcast.js
//
// setup() creates (or finds) the template `k6_order_update` and creates a broadcast from it;
// then VUs send it to 100-1000 recipients per request (unique phone numbers within a request)
// and check the 202 answer. The run is bounded (ITERATIONS requests, at most DURATION) and
// only ever talks to a loopback address. See loadtest/README.md for the knobs.

import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { authHeaders, newBroadcast, parseStackEnv, requireLoopback, settings, templateId } from './lib.js';

// --- Configuration: environment first, then .ezpulze/stack.env (written by `make up`) ---
let stackText = '';
try {
  stackText = open('../.ezpulze/stack.env');
} catch (_) {
  // No stack.env: the environment must say everything.
}
const env = settings(parseStackEnv(stackText));

const API_URL = env('API_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const API_KEY = env('API_KEY', '');
const VUS = parseInt(env('VUS', '10'), 10);
const ITERATIONS = parseInt(env('ITERATIONS', '200'), 10);
const DURATION = env('DURATION', '2m');
const MIN_RECIPIENTS = parseInt(env('MIN_RECIPIENTS', '100'), 10);
const MAX_RECIPIENTS = parseInt(env('MAX_RECIPIENTS', '1000'), 10);
const PHONE_PREFIX = env('PHONE_PREFIX', '+1415555');

requireLoopback(API_URL);
if (!(MIN_RECIPIENTS >= 1 && MAX_RECIPIENTS >= MIN_RECIPIENTS && MAX_RECIPIENTS <= 10000)) {
  throw new Error('need 1 <= MIN_RECIPIENTS <= MAX_RECIPIENTS <= 10000');
}

export const options = {
  scenarios: {
    send: {
      executor: 'shared-iterations',
      vus: VUS,
      iterations: ITERATIONS,
      maxDuration: DURATION,
    },
  },
  setupTimeout: '30s',
  thresholds: {
    'http_req_failed{name:send}': ['rate<0.01'],
    'http_req_duration{name:send}': ['p(95)<3000', 'p(99)<5000'],
    checks: ['rate>0.99'],
    recipients_rejected: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

const recipientsAccepted = new Counter('recipients_accepted');
const recipientsRejected = new Counter('recipients_rejected');

function headers(extra) {
  return authHeaders(API_KEY, extra);
}

export function setup() {
  if (!API_KEY) fail('API_KEY is not set: run `make up` (it writes .ezpulze/stack.env) or export API_KEY');
  const tags = { name: 'setup' };
  const template = templateId(API_URL, API_KEY, tags);
  return { broadcastId: newBroadcast(API_URL, API_KEY, template, `k6 load test ${new Date().toISOString()}`, tags) };
}

// `count` distinct numbers PHONE_PREFIX + 4 digits, from a random start (unique within a request).
function recipients(count, order) {
  const start = Math.floor(Math.random() * 10000);
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const suffix = String((start + i) % 10000).padStart(4, '0');
    out[i] = { to: `${PHONE_PREFIX}${suffix}`, variables: { body: ['Ann', String(order + i)] } };
  }
  return out;
}

export default function (data) {
  const span = Math.min(MAX_RECIPIENTS, 10000) - MIN_RECIPIENTS + 1;
  const count = Math.min(MIN_RECIPIENTS + Math.floor(Math.random() * span), 10000);
  const iteration = exec.scenario.iterationInTest;
  const body = JSON.stringify({ recipients: recipients(count, iteration * 10000) });
  const res = http.post(`${API_URL}/api/v1/broadcasts/${data.broadcastId}/send`, body, {
    headers: headers({ 'Idempotency-Key': `k6-${exec.vu.idInTest}-${iteration}-${Date.now()}` }),
    tags: { name: 'send' },
    timeout: '30s',
  });
  let accepted = 0;
  let rejected = count;
  if (res.status === 202) {
    accepted = res.json('accepted') || 0;
    rejected = (res.json('rejected') || []).length;
  }
  recipientsAccepted.add(accepted);
  recipientsRejected.add(rejected);
  check(
    res,
    {
      'send answers 202': (r) => r.status === 202,
      'every recipient accepted': () => accepted === count && rejected === 0,
      'a dispatch id is returned': (r) => r.status === 202 && typeof r.json('dispatch_id') === 'string',
    },
  );
}
