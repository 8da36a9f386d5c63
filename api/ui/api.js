// The admin API client. The session lives in an HttpOnly cookie the page cannot read; every
// call sends it (same origin). A 401 from an admin route means the session ended: listeners of
// `onSessionExpired` take the user back to sign-in.

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `The server answered ${status}`);
    this.status = status;
    this.code = err.code || (status === 0 ? 'network' : 'http_' + status);
    this.details = fieldErrors(err);
    this.requestId = err.request_id || '';
  }
}

// Field errors of a 422: `details` ([{field, message}]), or `fields` as such a list or as an
// object of field -> message.
function fieldErrors(err) {
  const list = err.details ?? err.fields;
  if (Array.isArray(list)) return list.filter((d) => d && typeof d.field === 'string').map((d) => ({ field: d.field, message: String(d.message ?? '') }));
  if (list && typeof list === 'object') return Object.entries(list).map(([field, message]) => ({ field, message: String(message) }));
  return [];
}

const expiredListeners = new Set();

export function onSessionExpired(fn) {
  expiredListeners.add(fn);
}

async function call(method, path, body, { quiet401 = false } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: { message: 'The server could not be reached. Check your connection and try again.' } });
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !quiet401) {
      for (const fn of expiredListeners) fn(error);
    }
    throw error;
  }
  return data;
}

export const api = {
  get: (path, opts) => call('GET', path, undefined, opts),
  post: (path, body, opts) => call('POST', path, body, opts),
  patch: (path, body, opts) => call('PATCH', path, body, opts),
  del: (path, opts) => call('DELETE', path, undefined, opts),

  signIn: (token) => call('POST', '/ui/session', { token }, { quiet401: true }),
  signOut: () => call('DELETE', '/ui/session', undefined, { quiet401: true }),

  scopes: (opts) => call('GET', '/admin/v1/scopes', undefined, opts),
  listKeys: ({ page, perPage, sort, order }) => {
    const q = new URLSearchParams({ page: String(page), per_page: String(perPage) });
    if (sort) {
      q.set('sort', sort);
      q.set('order', order || 'asc');
    }
    return call('GET', `/admin/v1/api-keys?${q}`);
  },
  getKey: (id) => call('GET', `/admin/v1/api-keys/${encodeURIComponent(id)}`),
  createKey: (body) => call('POST', '/admin/v1/api-keys', body),
  updateKey: (id, body) => call('PATCH', `/admin/v1/api-keys/${encodeURIComponent(id)}`, body),
  deleteKey: (id) => call('DELETE', `/admin/v1/api-keys/${encodeURIComponent(id)}`),
  regenerateKey: (id) => call('POST', `/admin/v1/api-keys/${encodeURIComponent(id)}/regenerate`),
  usage: (id) => call('GET', `/admin/v1/api-keys/${encodeURIComponent(id)}/usage`),
  keyDocs: (id) => call('GET', `/admin/v1/api-keys/${encodeURIComponent(id)}/docs`),
  broadcasts: () => call('GET', '/admin/v1/broadcasts'),

  listWebhooks: () => call('GET', '/admin/v1/webhook-endpoints'),
  getWebhook: (id) => call('GET', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}`),
  createWebhook: (body) => call('POST', '/admin/v1/webhook-endpoints', body),
  updateWebhook: (id, body) => call('PATCH', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}`, body),
  deleteWebhook: (id) => call('DELETE', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}`),
  rotateWebhookSecret: (id) => call('POST', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}/rotate-secret`),
  webhookDeliveries: (id, { limit, cursor, state } = {}) => {
    const q = new URLSearchParams();
    if (limit) q.set('limit', String(limit));
    if (cursor) q.set('cursor', cursor);
    if (state) q.set('state', state);
    const query = q.toString();
    return call('GET', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}/deliveries${query ? `?${query}` : ''}`);
  },
  recoverWebhook: (id, since) => call('POST', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}/recover`, { since }),
  retryDelivery: (id, deliveryId) => call('POST', `/admin/v1/webhook-endpoints/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(deliveryId)}/retry`),
  broadcastExample: (id) => call('GET', `/admin/v1/broadcasts/${encodeURIComponent(id)}/example`),
};

/** A user-facing sentence for an error, with the request id for support. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return String((error && error.message) || error);
  let text = error.message;
  if (error.code === 'validation_failed' && error.details.length) {
    text = error.details.map((d) => `${d.field}: ${d.message}`).join('; ');
  }
  return error.requestId ? `${text} (request ${error.requestId})` : text;
}
