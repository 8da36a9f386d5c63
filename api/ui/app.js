// The EzPulze admin single page: sign-in, the API keys page, the per-key documentation page,
// the Webhooks page and an endpoint's delivery log, routed by the URL hash (#/api-keys,
// #/api-keys/<id>/docs, #/webhooks, #/webhooks/<id>/deliveries).

import { h, clear, announce } from './dom.js';
import { api, onSessionExpired, describeError, ApiError } from './api.js';
import { renderKeysPage } from './keys.js';
import { renderDocsPage } from './docs.js';
import { renderWebhooksPage, renderDeliveriesPage } from './webhooks.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const ctx = { catalogue: null, signedIn: false };

function closeDialogs() {
  for (const d of document.querySelectorAll('dialog')) {
    if (typeof d.ezpClose === 'function') d.ezpClose();
    else d.remove();
  }
}

function showSignIn(notice) {
  ctx.signedIn = false;
  closeDialogs();
  topbar.hidden = true;
  document.title = 'Sign in · EzPulze';
  const input = h('input', { type: 'password', id: 'admin-token', name: 'token', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'admin-token-hint admin-token-error', required: true });
  const error = h('p', { class: 'field-error', id: 'admin-token-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const setError = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => setError(null));
  const form = h('form', { class: 'signin-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      setError('Enter your admin token.');
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      await api.signIn(token);
      input.value = '';
      await start();
    } catch (err) {
      submit.disabled = false;
      submit.textContent = 'Sign in';
      setError(err instanceof ApiError && err.status === 401
        ? 'That admin token is not valid. Check it and try again.'
        : describeError(err));
      input.focus();
    }
  } },
  h('div', { class: 'field' },
    h('label', { for: 'admin-token' }, 'Admin token'),
    input,
    h('p', { class: 'hint', id: 'admin-token-hint' }, "Your account's admin token (it starts with adm_)."),
    error),
  submit);
  clear(main).append(h('div', { class: 'signin' },
    h('div', { class: 'signin-card' },
      h('div', { class: 'signin-brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: '36', height: '36' }), h('span', {}, 'EzPulze')),
      h('h1', {}, 'Sign in'),
      notice ? h('div', { class: 'alert alert-info', role: 'status' }, notice) : null,
      form)));
  input.focus();
}

async function route() {
  if (!ctx.signedIn) return;
  const hash = window.location.hash || '#/api-keys';
  const docs = /^#\/api-keys\/([^/]+)\/docs$/.exec(hash);
  const deliveries = /^#\/webhooks\/([^/]+)\/deliveries$/.exec(hash);
  const section = deliveries || hash === '#/webhooks' ? 'webhooks' : 'api-keys';
  for (const a of document.querySelectorAll('.nav-link')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  closeDialogs();
  if (docs) {
    await renderDocsPage(main, ctx, decodeURIComponent(docs[1]));
  } else if (deliveries) {
    await renderDeliveriesPage(main, decodeURIComponent(deliveries[1]));
  } else if (hash === '#/webhooks') {
    await renderWebhooksPage(main, ctx);
  } else {
    if (hash !== '#/api-keys') history.replaceState(null, '', '#/api-keys');
    await renderKeysPage(main, ctx);
  }
  window.scrollTo(0, 0);
}

async function start() {
  try {
    ctx.catalogue = await api.scopes({ quiet401: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn();
      return;
    }
    clear(main).append(h('div', { class: 'alert alert-error', role: 'alert' }, `EzPulze could not start: ${describeError(err)}`));
    return;
  }
  ctx.signedIn = true;
  topbar.hidden = false;
  await route();
  main.focus({ preventScroll: true });
}

onSessionExpired(() => {
  if (!ctx.signedIn) return;
  showSignIn('Your session has expired. Sign in again to continue.');
  announce('Your session has expired');
});

window.addEventListener('hashchange', () => { route(); });

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await api.signOut();
  } catch {
    // Signed out locally either way.
  }
  ctx.catalogue = null;
  showSignIn('You have signed out.');
});

start();
