// The API keys page: the table, sorting, pagination, the empty state, and the row actions
// (toggle, regenerate, usage stats, documentation, edit, delete).

import { h, icon, clear, announce, formatRelative, formatDateTime, formatNumber } from './dom.js';
import { api, ApiError, describeError } from './api.js';
import { openDialog, confirmDialog } from './dialog.js';
import { openKeyForm, showKeyOnce } from './key_form.js';

const PAGE_SIZES = [10, 25, 50];
const state = { page: 1, perPage: 10, sort: null, order: 'asc' };

try {
  const saved = Number(window.localStorage.getItem('ezp.perPage'));
  if (PAGE_SIZES.includes(saved)) state.perPage = saved;
} catch {
  // Storage may be unavailable; the default page size is fine.
}

const STATUS_LABEL = { active: 'Active', inactive: 'Inactive', expired: 'Expired' };

/** Renders the page into `root`; `ctx.catalogue` is the scope catalogue. */
export async function renderKeysPage(root, ctx) {
  document.title = 'API Keys · EzPulze';
  const view = {
    root,
    ctx,
    alert: h('div', { class: 'alert alert-error', role: 'alert', hidden: true }),
    content: h('div', { class: 'keys-content', 'aria-busy': 'true' }),
  };
  const create = h('button', { type: 'button', class: 'btn btn-primary', id: 'create-key', onclick: () => openCreate(view) }, icon('plus'), 'Create API Key');
  clear(root).append(
    h('div', { class: 'page-header' },
      h('div', {},
        h('h1', {}, 'API Keys'),
        h('p', { class: 'lead' }, 'API keys let your website, CRM or automation tool send WhatsApp messages, manage contacts, update leads and more.')),
      create),
    view.alert,
    view.content,
  );
  await load(view);
}

function openCreate(view) {
  openKeyForm({ catalogue: view.ctx.catalogue, onSaved: () => { state.page = 1; load(view); } });
}

async function load(view) {
  view.content.setAttribute('aria-busy', 'true');
  let data;
  try {
    data = await api.listKeys(state);
  } catch (err) {
    view.content.setAttribute('aria-busy', 'false');
    if (err instanceof ApiError && err.status === 401) return;
    view.alert.textContent = `The API keys could not be loaded: ${describeError(err)}`;
    view.alert.hidden = false;
    return;
  }
  view.alert.hidden = true;
  const pages = Math.max(1, Math.ceil(data.total / state.perPage));
  if (data.items.length === 0 && data.total > 0 && state.page > 1) {
    state.page = Math.min(state.page - 1, pages);
    return load(view);
  }
  view.content.setAttribute('aria-busy', 'false');
  if (data.total === 0) {
    clear(view.content).append(emptyState(view));
    return;
  }
  clear(view.content).append(table(view, data), pagination(view, data, pages));
}

function emptyState(view) {
  return h('div', { class: 'empty-state' },
    h('div', { class: 'empty-icon' }, icon('key', 32)),
    h('h2', {}, 'No API keys yet'),
    h('p', {}, 'Create a key to connect your website, CRM or automation tool to EzPulze.'),
    h('button', { type: 'button', class: 'btn btn-primary', onclick: () => openCreate(view) }, icon('plus'), 'Create API Key'));
}

function sortHeader(view, label, column) {
  const active = state.sort === column;
  const ariaSort = active ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none';
  const button = h('button', {
    type: 'button',
    class: 'sort-btn',
    onclick: () => {
      if (state.sort === column) state.order = state.order === 'asc' ? 'desc' : 'asc';
      else { state.sort = column; state.order = 'asc'; }
      state.page = 1;
      load(view).then(() => {
        const again = view.content.querySelector(`[data-sort="${column}"]`);
        if (again) again.focus();
      });
    },
    dataset: { sort: column },
  }, label, icon(active ? (state.order === 'asc' ? 'up' : 'down') : 'sort', 14));
  return h('th', { scope: 'col', 'aria-sort': ariaSort }, button);
}

function table(view, data) {
  const offset = (data.page - 1) * data.per_page;
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'keys-table' },
      h('caption', { class: 'visually-hidden' }, 'API keys. Sortable by name and status.'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', class: 'col-num' }, '#'),
        sortHeader(view, 'Name', 'name'),
        h('th', { scope: 'col' }, 'Key'),
        h('th', { scope: 'col' }, 'Scopes'),
        h('th', { scope: 'col' }, 'Last Used'),
        sortHeader(view, 'Status', 'status'),
        h('th', { scope: 'col', class: 'col-actions' }, 'Actions'))),
      h('tbody', {}, data.items.map((key, i) => row(view, key, offset + i + 1)))));
}

function scopeBadges(scopes) {
  const shown = scopes.slice(0, 2);
  const rest = scopes.slice(2);
  return h('div', { class: 'badges' },
    shown.map((s) => h('span', { class: 'badge' }, s)),
    rest.length ? h('span', { class: 'badge badge-more', title: rest.join(', '), tabindex: '0', 'aria-label': `${rest.length} more: ${rest.join(', ')}` }, `+${rest.length} more`) : null);
}

function row(view, key, number) {
  const tr = h('tr', { dataset: { keyId: key.id, status: key.status } });
  const nameCell = h('td', { class: 'col-name' },
    h('div', { class: 'key-name' }, key.name),
    h('div', { class: 'key-labels' },
      key.scope_group_name ? h('span', { class: 'tag tag-group' }, key.scope_group_name) : h('span', { class: 'tag tag-custom' }, 'Custom scopes'),
      key.mode === 'test' ? h('span', { class: 'tag tag-test' }, 'Test') : null));
  const lastUsed = key.last_used_at
    ? h('time', { datetime: key.last_used_at, title: formatDateTime(key.last_used_at) }, formatRelative(key.last_used_at))
    : h('span', { class: 'muted' }, 'Never');
  const status = h('span', { class: `status status-${key.status}` }, STATUS_LABEL[key.status] || key.status);
  if (key.status === 'expired' && key.expires_at) status.title = `Expired ${formatDateTime(key.expires_at)}`;

  const toggle = h('button', {
    type: 'button',
    role: 'switch',
    class: 'switch',
    'aria-checked': key.active ? 'true' : 'false',
    'aria-label': `Active: ${key.name}`,
    title: key.active ? 'Deactivate' : 'Activate',
    onclick: () => toggleKey(view, key, toggle),
  }, h('span', { class: 'switch-thumb' }));
  const action = (name, label, iconName, onclick, extra = {}) => h('button', {
    type: 'button', class: `icon-btn ${extra.danger ? 'icon-btn-danger' : ''}`, 'aria-label': `${label}: ${key.name}`, title: label, dataset: { action: name }, onclick,
  }, icon(iconName));
  const docsLink = h('a', { class: 'icon-btn', href: `#/api-keys/${encodeURIComponent(key.id)}/docs`, 'aria-label': `API documentation: ${key.name}`, title: 'API documentation', dataset: { action: 'docs' } }, icon('book'));

  tr.append(
    h('td', { class: 'col-num' }, String(number)),
    nameCell,
    h('td', {}, h('code', { class: 'masked' }, key.masked_key)),
    h('td', {}, scopeBadges(key.scopes)),
    h('td', { class: 'col-used' }, lastUsed),
    h('td', {}, status),
    h('td', { class: 'col-actions' }, h('div', { class: 'actions' },
      toggle,
      action('regenerate', 'Regenerate', 'refresh', () => regenerate(view, key)),
      action('usage', 'View Usage Stats', 'chart', () => openUsage(key)),
      docsLink,
      action('edit', 'Edit', 'edit', () => openKeyForm({ catalogue: view.ctx.catalogue, key, onSaved: () => load(view) })),
      action('delete', 'Delete', 'trash', () => remove(view, key), { danger: true }))),
  );
  return tr;
}

async function toggleKey(view, key, button) {
  button.disabled = true;
  try {
    const saved = await api.updateKey(key.id, { active: !key.active });
    announce(`${saved.name} is now ${saved.active ? 'active' : 'inactive'}`);
    await load(view);
    const again = view.content.querySelector(`tr[data-key-id="${saved.id}"] .switch`);
    if (again) again.focus();
  } catch (err) {
    button.disabled = false;
    if (err instanceof ApiError && err.status === 401) return;
    view.alert.textContent = `Could not change ${key.name}: ${describeError(err)}`;
    view.alert.hidden = false;
  }
}

async function regenerate(view, key) {
  const saved = await confirmDialog({
    title: 'Regenerate API key?',
    name: 'confirm-regenerate',
    message: [
      h('p', {}, 'A new value replaces the key ', h('strong', {}, key.name), ' (', h('code', {}, key.masked_key), ').'),
      h('p', {}, 'The current value stops working immediately: every integration using it must be updated.'),
    ],
    confirmLabel: 'Regenerate',
    danger: true,
    action: () => api.regenerateKey(key.id),
  });
  if (!saved) return;
  const dlg = openDialog({ title: 'API Key Regenerated', size: 'md', name: 'key-created' });
  showKeyOnce(dlg, saved, () => load(view));
  dlg.setTitle(`New API Key: ${saved.name}`);
}

async function remove(view, key) {
  const done = await confirmDialog({
    title: 'Delete API key?',
    name: 'confirm-delete',
    message: [
      h('p', {}, h('strong', {}, key.name), ' (', h('code', {}, key.masked_key), ') will be permanently removed.'),
      h('p', {}, 'Requests using it will be rejected with 401. This cannot be undone.'),
    ],
    confirmLabel: 'Delete',
    danger: true,
    action: async () => { await api.deleteKey(key.id); return true; },
  });
  if (!done) return;
  announce(`Deleted ${key.name}`);
  await load(view);
  const create = document.getElementById('create-key');
  if (create) create.focus();
}

function metric(label, value, extra = '') {
  return h('div', { class: `metric ${extra}` }, h('div', { class: 'metric-label' }, label), h('div', { class: 'metric-value' }, value));
}

function rateBar(label, percent) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  const shown = `${value.toFixed(value % 1 === 0 ? 0 : 1)}%`;
  const id = `rate-${label.toLowerCase().replace(/\s+/g, '-')}`;
  const fill = h('div', { class: 'progress-fill' });
  fill.style.width = `${value}%`;
  return h('div', { class: 'rate' },
    h('div', { class: 'rate-head' }, h('span', { id }, label), h('span', { class: 'rate-value' }, shown)),
    h('div', { class: 'progress', role: 'progressbar', 'aria-labelledby': id, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(value), 'aria-valuetext': shown }, fill));
}

async function openUsage(key) {
  const dlg = openDialog({ title: 'Usage Stats', size: 'md', name: 'usage' });
  dlg.body.append(h('p', { class: 'muted' }, 'Loading…'));
  dlg.footer.append(h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Close'));
  dlg.focus(dlg.footer.querySelector('button'));
  let u;
  try {
    u = await api.usage(key.id);
  } catch (err) {
    dlg.body.replaceChildren();
    if (!(err instanceof ApiError && err.status === 401)) dlg.error(err);
    return;
  }
  dlg.body.replaceChildren(
    h('p', { class: 'usage-key' }, h('strong', {}, key.name), ' ', h('code', {}, key.masked_key)),
    h('div', { class: 'metrics' },
      metric('Total Messages', formatNumber(u.total_messages), 'metric-total'),
      metric('Sent', formatNumber(u.sent), 'metric-sent'),
      metric('Delivered', formatNumber(u.delivered), 'metric-delivered'),
      metric('Read', formatNumber(u.read), 'metric-read'),
      metric('Failed', formatNumber(u.failed), 'metric-failed'),
      metric('Last Message', u.last_message_at ? formatDateTime(u.last_message_at) : 'Never', 'metric-last')),
    rateBar('Delivery Rate', u.delivery_rate),
    rateBar('Read Rate', u.read_rate),
    h('p', { class: 'hint' }, 'Only messages sent with this key through the Broadcast API are counted, not messages sent from the EzPulze UI.'));
}

/** Pagination: rows per page (10, 25, 50), the range shown, previous/next. */
function pagination(view, data, pages) {
  const first = (data.page - 1) * data.per_page + 1;
  const last = Math.min(data.total, data.page * data.per_page);
  const size = h('select', {
    id: 'per-page',
    onchange: () => {
      state.perPage = Number(size.value);
      state.page = 1;
      try { window.localStorage.setItem('ezp.perPage', String(state.perPage)); } catch { /* ignore */ }
      load(view).then(() => { const again = document.getElementById('per-page'); if (again) again.focus(); });
    },
  }, PAGE_SIZES.map((n) => h('option', { value: String(n), selected: n === state.perPage }, String(n))));
  const go = (page, id) => () => {
    state.page = page;
    load(view).then(() => {
      const again = document.getElementById(id);
      if (again && !again.disabled) again.focus();
      else document.getElementById('per-page')?.focus();
    });
  };
  return h('nav', { class: 'pagination', 'aria-label': 'Pagination' },
    h('div', { class: 'page-size' }, h('label', { for: 'per-page' }, 'Rows per page'), size),
    h('p', { class: 'page-range', 'aria-live': 'polite' }, `${first}–${last} of ${data.total}`),
    h('div', { class: 'page-buttons' },
      h('button', { type: 'button', class: 'btn btn-secondary btn-sm', id: 'page-prev', disabled: data.page <= 1, onclick: go(data.page - 1, 'page-prev') }, icon('left', 14), 'Previous'),
      h('span', { class: 'page-of' }, `Page ${data.page} of ${pages}`),
      h('button', { type: 'button', class: 'btn btn-secondary btn-sm', id: 'page-next', disabled: data.page >= pages, onclick: go(data.page + 1, 'page-next') }, 'Next', icon('chevron', 14))));
}
