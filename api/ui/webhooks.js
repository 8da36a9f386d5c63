// The Webhooks page (#/webhooks): the account's webhook endpoints with their actions (toggle,
// delivery log, edit, rotate secret, delete), and the delivery log of one endpoint
// (#/webhooks/<id>/deliveries): newest first, Load more, Retry per delivery, the event body,
// and Recover failed since…. The contract is docs/integrator-events.md.

import { h, icon, clear, announce, formatRelative, formatDateTime, formatNumber } from './dom.js';
import { api, ApiError, describeError } from './api.js';
import { openDialog, confirmDialog } from './dialog.js';
import { openWebhookForm, showSecretOnce } from './webhook_form.js';
import { parseSince, toDateTimeInput } from './validate.js';

const DELIVERY_PAGE = 25;

/** Active, Inactive (turned off by someone) or Disabled (turned off after failing). */
function endpointStatus(ep) {
  if (ep.active) return 'active';
  return ep.disabled_at || ep.disabled_reason ? 'disabled' : 'inactive';
}

const STATUS_LABEL = { active: 'Active', inactive: 'Inactive', disabled: 'Disabled' };

function when(iso) {
  return h('time', { datetime: iso, title: formatDateTime(iso) }, formatRelative(iso));
}

function statusCell(ep) {
  const status = endpointStatus(ep);
  const cell = h('div', { class: 'endpoint-status' }, h('span', { class: `status status-${status}` }, STATUS_LABEL[status]));
  if (status === 'disabled') {
    cell.append(h('p', { class: 'status-note disabled-reason' },
      ep.disabled_reason || 'Disabled after its deliveries kept failing.',
      ep.disabled_at ? [' ', h('span', { class: 'disabled-at' }, 'Disabled ', when(ep.disabled_at))] : null));
  } else if (ep.active && ep.failing_since) {
    cell.append(h('p', { class: 'status-note failing' }, 'Failing since ', when(ep.failing_since)));
  }
  if (ep.secret_rotated_until && new Date(ep.secret_rotated_until).getTime() > Date.now()) {
    cell.append(h('p', { class: 'status-note muted' }, 'Previous secret signs until ', h('time', { datetime: ep.secret_rotated_until }, formatDateTime(ep.secret_rotated_until))));
  }
  return cell;
}

function eventBadges(events) {
  if (!events || events.length === 0) return h('span', { class: 'tag tag-group' }, 'All events');
  const shown = events.slice(0, 2);
  const rest = events.slice(2);
  return h('div', { class: 'badges' },
    shown.map((e) => h('span', { class: 'badge' }, e)),
    rest.length ? h('span', { class: 'badge badge-more', title: rest.join(', '), tabindex: '0', 'aria-label': `${rest.length} more: ${rest.join(', ')}` }, `+${rest.length} more`) : null);
}

// ---------------------------------------------------------------------------------------------
// The endpoints list

/** Renders the Webhooks page into `root`. */
export async function renderWebhooksPage(root) {
  document.title = 'Webhooks · EzPulze';
  const view = {
    root,
    alert: h('div', { class: 'alert alert-error', role: 'alert', hidden: true }),
    content: h('div', { class: 'webhooks-content', 'aria-busy': 'true' }),
  };
  const add = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-endpoint', onclick: () => openAdd(view) }, icon('plus'), 'Add endpoint');
  clear(root).append(
    h('div', { class: 'page-header' },
      h('div', {},
        h('h1', {}, 'Webhooks'),
        h('p', { class: 'lead' }, 'EzPulze posts what happens to your messages (sent, delivered, read, failed) and dispatches to these URLs, each request signed with the endpoint\'s secret.')),
      add),
    view.alert,
    view.content,
  );
  await load(view);
}

function openAdd(view) {
  openWebhookForm({ onSaved: () => load(view) });
}

async function load(view) {
  view.content.setAttribute('aria-busy', 'true');
  let data;
  try {
    data = await api.listWebhooks();
  } catch (err) {
    view.content.setAttribute('aria-busy', 'false');
    if (err instanceof ApiError && err.status === 401) return;
    view.alert.textContent = `The webhook endpoints could not be loaded: ${describeError(err)}`;
    view.alert.hidden = false;
    return;
  }
  view.alert.hidden = true;
  view.content.setAttribute('aria-busy', 'false');
  const items = (data && data.items) || [];
  if (items.length === 0) {
    clear(view.content).append(emptyState(view));
    return;
  }
  clear(view.content).append(table(view, items));
}

function emptyState(view) {
  return h('div', { class: 'empty-state' },
    h('div', { class: 'empty-icon' }, icon('send', 32)),
    h('h2', {}, 'No webhook endpoints yet'),
    h('p', {}, 'Add an endpoint to have your CRM or backend told when messages are delivered, read or fail.'),
    h('button', { type: 'button', class: 'btn btn-primary', onclick: () => openAdd(view) }, icon('plus'), 'Add endpoint'));
}

function table(view, items) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'webhooks-table' },
      h('caption', { class: 'visually-hidden' }, 'Webhook endpoints'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'URL'),
        h('th', { scope: 'col' }, 'Events'),
        h('th', { scope: 'col' }, 'Mode'),
        h('th', { scope: 'col', class: 'col-number' }, 'Max/s'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Description'),
        h('th', { scope: 'col', class: 'col-actions' }, 'Actions'))),
      h('tbody', {}, items.map((ep) => row(view, ep)))));
}

function row(view, ep) {
  const status = endpointStatus(ep);
  const tr = h('tr', { dataset: { endpointId: ep.id, status } });
  const label = ep.description ? `${ep.url} (${ep.description})` : ep.url;
  const keyCount = Array.isArray(ep.key_ids) ? ep.key_ids.length : 0;
  const urlCell = h('td', { class: 'col-url' },
    h('div', { class: 'endpoint-url' }, ep.url),
    keyCount || ep.include_phone ? h('div', { class: 'key-labels' },
      keyCount ? h('span', { class: 'tag tag-custom' }, keyCount === 1 ? 'Only 1 key' : `Only ${keyCount} keys`) : null,
      ep.include_phone ? h('span', { class: 'tag tag-custom' }, 'With phone') : null) : null);

  const toggle = h('button', {
    type: 'button',
    role: 'switch',
    class: 'switch',
    'aria-checked': ep.active ? 'true' : 'false',
    'aria-label': `Active: ${label}`,
    title: ep.active ? 'Deactivate' : 'Activate',
    onclick: () => toggleEndpoint(view, ep, toggle),
  }, h('span', { class: 'switch-thumb' }));
  const action = (name, text, iconName, onclick, extra = {}) => h('button', {
    type: 'button', class: `icon-btn ${extra.danger ? 'icon-btn-danger' : ''}`, 'aria-label': `${text}: ${label}`, title: text, dataset: { action: name }, onclick,
  }, icon(iconName));
  const log = h('a', { class: 'icon-btn', href: `#/webhooks/${encodeURIComponent(ep.id)}/deliveries`, 'aria-label': `Delivery log: ${label}`, title: 'Delivery log', dataset: { action: 'deliveries' } }, icon('list'));

  tr.append(
    urlCell,
    h('td', {}, eventBadges(ep.events)),
    h('td', {}, ep.mode === 'test' ? h('span', { class: 'tag tag-test' }, 'Test') : h('span', { class: 'tag tag-live' }, 'Live')),
    h('td', { class: 'col-number' }, formatNumber(ep.max_per_second)),
    h('td', { class: 'col-status' }, statusCell(ep)),
    h('td', { class: 'col-description' }, ep.description ? ep.description : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'col-actions' }, h('div', { class: 'actions' },
      toggle,
      log,
      action('edit', 'Edit', 'edit', () => openWebhookForm({ endpoint: ep, onSaved: () => load(view) })),
      action('rotate', 'Rotate secret', 'key', () => rotate(view, ep)),
      action('delete', 'Delete', 'trash', () => remove(view, ep), { danger: true }))),
  );
  return tr;
}

async function toggleEndpoint(view, ep, button) {
  button.disabled = true;
  try {
    const saved = await api.updateWebhook(ep.id, { active: !ep.active });
    announce(`${saved.url} is now ${saved.active ? 'active' : 'inactive'}`);
    await load(view);
    const again = view.content.querySelector(`tr[data-endpoint-id="${CSS.escape(saved.id)}"] .switch`);
    if (again) again.focus();
  } catch (err) {
    button.disabled = false;
    if (err instanceof ApiError && err.status === 401) return;
    view.alert.textContent = `Could not change ${ep.url}: ${describeError(err)}`;
    view.alert.hidden = false;
  }
}

async function rotate(view, ep) {
  const saved = await confirmDialog({
    title: 'Rotate signing secret?',
    name: 'confirm-rotate',
    message: [
      h('p', {}, 'A new secret replaces the one of ', h('code', {}, ep.url), '.'),
      h('p', {}, 'The current secret keeps signing alongside the new one for 24 hours: update your receiver within that time.'),
    ],
    confirmLabel: 'Rotate secret',
    danger: true,
    action: () => api.rotateWebhookSecret(ep.id),
  });
  if (!saved) return;
  const dlg = openDialog({ title: 'New signing secret', size: 'md', name: 'webhook-secret' });
  showSecretOnce(dlg, { url: ep.url, events: ep.events, ...saved }, { rotated: true, onDone: () => load(view) });
}

async function remove(view, ep) {
  const done = await confirmDialog({
    title: 'Delete webhook endpoint?',
    name: 'confirm-delete',
    message: [
      h('p', {}, h('code', {}, ep.url), ' will be permanently removed, with its deliveries still waiting.'),
      h('p', {}, 'It receives no more events. This cannot be undone.'),
    ],
    confirmLabel: 'Delete',
    danger: true,
    action: async () => { await api.deleteWebhook(ep.id); return true; },
  });
  if (!done) return;
  announce(`Deleted ${ep.url}`);
  await load(view);
  const add = document.getElementById('add-endpoint');
  if (add) add.focus();
}

// ---------------------------------------------------------------------------------------------
// The delivery log of one endpoint

const STATES = ['pending', 'delivering', 'succeeded', 'failed'];
const STATE_LABEL = { pending: 'Pending', delivering: 'Delivering', succeeded: 'Succeeded', failed: 'Failed' };

/** Renders the delivery log of endpoint `id` into `root`. */
export async function renderDeliveriesPage(root, id) {
  document.title = 'Delivery log · EzPulze';
  const back = h('a', { class: 'back', href: '#/webhooks' }, icon('left', 16), 'Webhooks');
  clear(root).append(back, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  let ep;
  try {
    ep = await api.getWebhook(id);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    clear(root).append(back, h('h1', {}, 'Delivery log'),
      h('div', { class: 'alert alert-error', role: 'alert' }, err instanceof ApiError && err.status === 404
        ? 'This webhook endpoint does not exist (it may have been deleted).'
        : `The endpoint could not be loaded: ${describeError(err)}`));
    return;
  }

  const view = {
    ep,
    state: '',
    cursor: null,
    alert: h('div', { class: 'alert alert-error', role: 'alert', hidden: true }),
    notice: h('div', { class: 'alert alert-info', role: 'status', hidden: true }),
    content: h('div', { class: 'deliveries-content', 'aria-busy': 'true' }),
    more: h('div', { class: 'load-more' }),
  };
  const stateSelect = h('select', { id: 'delivery-state', onchange: () => { view.state = stateSelect.value; reload(view); } },
    h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s }, STATE_LABEL[s])));
  const status = endpointStatus(ep);
  clear(root).append(
    back,
    h('div', { class: 'page-header' },
      h('div', {},
        h('h1', {}, 'Delivery log'),
        h('div', { class: 'key-summary' },
          h('code', { class: 'endpoint-url' }, ep.url),
          h('span', { class: `status status-${status}` }, STATUS_LABEL[status]),
          ep.mode === 'test' ? h('span', { class: 'tag tag-test' }, 'Test') : h('span', { class: 'tag tag-live' }, 'Live'),
          ep.description ? h('span', { class: 'muted' }, ep.description) : null)),
      h('button', { type: 'button', class: 'btn btn-secondary', id: 'recover', onclick: () => openRecover(view) }, icon('refresh'), 'Recover failed since…')),
    h('div', { class: 'toolbar' },
      h('div', { class: 'page-size' }, h('label', { for: 'delivery-state' }, 'State'), stateSelect),
      h('button', { type: 'button', class: 'btn btn-secondary btn-sm', id: 'refresh-deliveries', onclick: () => reload(view) }, icon('refresh', 14), 'Refresh')),
    view.notice,
    view.alert,
    view.content,
    view.more,
  );
  await reload(view);
}

async function reload(view) {
  view.cursor = null;
  view.tbody = null;
  await loadPage(view, { replace: true });
}

async function loadPage(view, { replace = false } = {}) {
  view.content.setAttribute('aria-busy', 'true');
  let data;
  try {
    data = await api.webhookDeliveries(view.ep.id, { limit: DELIVERY_PAGE, cursor: replace ? null : view.cursor, state: view.state || null });
  } catch (err) {
    view.content.setAttribute('aria-busy', 'false');
    if (err instanceof ApiError && err.status === 401) return null;
    view.alert.textContent = `The deliveries could not be loaded: ${describeError(err)}`;
    view.alert.hidden = false;
    return null;
  }
  view.alert.hidden = true;
  view.content.setAttribute('aria-busy', 'false');
  const items = (data && data.items) || [];
  view.cursor = (data && data.next_cursor) || null;
  if (replace) {
    if (items.length === 0) {
      clear(view.content).append(h('div', { class: 'empty-state empty-small' },
        h('h2', {}, view.state ? `No ${STATE_LABEL[view.state].toLowerCase()} deliveries` : 'No deliveries yet'),
        h('p', {}, 'Each event sent to this endpoint is listed here with its attempts.')));
    } else {
      view.tbody = h('tbody', {});
      clear(view.content).append(h('div', { class: 'table-wrap' },
        h('table', { class: 'deliveries-table' },
          h('caption', { class: 'visually-hidden' }, 'Deliveries, newest first'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Time'),
            h('th', { scope: 'col' }, 'Event type'),
            h('th', { scope: 'col' }, 'Event ID'),
            h('th', { scope: 'col' }, 'State'),
            h('th', { scope: 'col', class: 'col-number' }, 'Attempts'),
            h('th', { scope: 'col', class: 'col-number' }, 'Last status'),
            h('th', { scope: 'col', class: 'col-number' }, 'Latency'),
            h('th', { scope: 'col', class: 'col-actions' }, 'Actions'))),
          view.tbody)));
    }
  }
  const rows = items.map((d) => deliveryRow(view, d));
  if (view.tbody) view.tbody.append(...rows);
  renderMore(view);
  return rows;
}

function renderMore(view) {
  clear(view.more);
  if (!view.cursor) return;
  const button = h('button', {
    type: 'button',
    class: 'btn btn-secondary',
    id: 'load-more',
    onclick: async () => {
      button.disabled = true;
      button.textContent = 'Loading…';
      const rows = await loadPage(view);
      if (!rows) {
        button.disabled = false;
        button.textContent = 'Load more';
        return;
      }
      announce(`${rows.length} more deliver${rows.length === 1 ? 'y' : 'ies'} loaded`);
      // Focus stays on Load more while there is more, else moves to the first new row's action.
      const again = document.getElementById('load-more');
      if (again) again.focus();
      else if (rows[0]) rows[0].querySelector('button')?.focus();
    },
  }, 'Load more');
  view.more.append(button);
}

function stateCell(d) {
  const cell = h('div', { class: 'delivery-state' }, h('span', { class: `status state-${d.state}` }, STATE_LABEL[d.state] || d.state));
  if (d.state === 'pending' && d.next_attempt_at) {
    cell.append(h('p', { class: 'status-note muted' }, d.attempts > 0 ? 'Next attempt ' : 'Due ', when(d.next_attempt_at)));
  }
  if (d.last_error) cell.append(h('p', { class: 'status-note last-error', title: d.last_error }, d.last_error));
  return cell;
}

function deliveryRow(view, d) {
  const tr = h('tr', { dataset: { deliveryId: d.id, state: d.state } });
  const fill = (delivery) => {
    tr.dataset.state = delivery.state;
    const retry = h('button', {
      type: 'button', class: 'btn btn-secondary btn-sm', dataset: { action: 'retry' }, 'aria-label': `Retry ${delivery.event_id}`,
      onclick: () => retryDelivery(view, delivery, retry, fill),
    }, icon('refresh', 14), 'Retry');
    const details = h('button', {
      type: 'button', class: 'icon-btn', dataset: { action: 'event' }, 'aria-label': `Event body: ${delivery.event_id}`, title: 'Event body',
      onclick: () => openDelivery(delivery),
    }, icon('eye'));
    tr.replaceChildren(
      h('td', { class: 'col-time' }, h('time', { datetime: delivery.created_at, title: formatRelative(delivery.created_at) }, formatDateTime(delivery.created_at))),
      h('td', {}, h('span', { class: 'badge' }, delivery.event_type)),
      h('td', { class: 'col-event-id' }, h('code', {}, delivery.event_id)),
      h('td', { class: 'col-status' }, stateCell(delivery)),
      h('td', { class: 'col-number' }, formatNumber(delivery.attempts)),
      h('td', { class: 'col-number' }, delivery.last_status === null || delivery.last_status === undefined
        ? h('span', { class: 'muted', 'aria-label': 'none' }, '—')
        : h('span', { class: `http-status http-${String(delivery.last_status).charAt(0)}xx` }, String(delivery.last_status))),
      h('td', { class: 'col-number' }, delivery.last_latency_ms === null || delivery.last_latency_ms === undefined
        ? h('span', { class: 'muted', 'aria-label': 'none' }, '—')
        : `${formatNumber(delivery.last_latency_ms)} ms`),
      h('td', { class: 'col-actions' }, h('div', { class: 'actions' }, details, retry)),
    );
  };
  fill(d);
  return tr;
}

async function retryDelivery(view, d, button, fill) {
  button.disabled = true;
  view.alert.hidden = true;
  try {
    const saved = await api.retryDelivery(view.ep.id, d.id);
    fill({ ...d, ...(saved || {}), state: (saved && saved.state) || 'pending' });
    announce(`${d.event_id} will be sent again`);
    const again = view.tbody?.querySelector(`tr[data-delivery-id="${CSS.escape(d.id)}"] [data-action="retry"]`);
    if (again) again.focus();
  } catch (err) {
    button.disabled = false;
    if (err instanceof ApiError && err.status === 401) return;
    view.alert.textContent = `Could not retry ${d.event_id}: ${describeError(err)}`;
    view.alert.hidden = false;
  }
}

function openDelivery(d) {
  const dlg = openDialog({ title: `Event ${d.event_id}`, size: 'lg', name: 'delivery' });
  const facts = [
    ['Event type', d.event_type],
    ['State', STATE_LABEL[d.state] || d.state],
    ['Attempts', formatNumber(d.attempts)],
    ['Created', formatDateTime(d.created_at)],
    ['Last attempt', d.last_attempt_at ? formatDateTime(d.last_attempt_at) : 'None yet'],
    ['Next attempt', d.state === 'pending' && d.next_attempt_at ? formatDateTime(d.next_attempt_at) : '—'],
    ['Last status', d.last_status === null || d.last_status === undefined ? '—' : String(d.last_status)],
    ['Latency', d.last_latency_ms === null || d.last_latency_ms === undefined ? '—' : `${formatNumber(d.last_latency_ms)} ms`],
  ];
  if (d.last_error) facts.push(['Last error', d.last_error]);
  dlg.body.append(
    h('dl', { class: 'key-facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', { class: 'body-title' }, 'Body as posted'),
    h('pre', { class: 'code-sample', tabindex: '0', 'aria-label': 'Event body' }, h('code', {}, d.body ? JSON.stringify(d.body, null, 2) : '(not included in this listing)')));
  const close = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Close');
  dlg.footer.append(close);
  close.focus();
}

function openRecover(view) {
  const dlg = openDialog({ title: 'Recover failed deliveries', size: 'sm', name: 'recover' });
  const id = 'recover-since';
  const input = h('input', { type: 'datetime-local', id, name: 'since', max: toDateTimeInput(new Date()), 'aria-describedby': `${id}-hint ${id}-error` });
  input.value = toDateTimeInput(new Date(Date.now() - 24 * 3600e3));
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const setError = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => setError(null));
  const form = h('form', { id: 'recover-form', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: id }, 'Failed since'),
      input,
      h('p', { class: 'hint', id: `${id}-hint` }, 'Every event that ended failed at this endpoint since then is sent again (your local time).'),
      error));
  dlg.body.append(form);
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Cancel');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id }, 'Recover');
  dlg.footer.append(cancel, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    dlg.error(null);
    const since = parseSince(input.value);
    if (since.error) {
      setError(since.error);
      input.focus();
      return;
    }
    dlg.busy(true);
    try {
      const result = await api.recoverWebhook(view.ep.id, since.value);
      dlg.busy(false);
      dlg.close();
      const n = Number(result && result.recovered) || 0;
      const message = n === 0
        ? `No failed deliveries since ${formatDateTime(since.value)}.`
        : `${formatNumber(n)} failed deliver${n === 1 ? 'y' : 'ies'} since ${formatDateTime(since.value)} will be sent again.`;
      view.notice.textContent = message;
      view.notice.hidden = false;
      announce(message);
      await reload(view);
    } catch (err) {
      dlg.busy(false);
      if (err instanceof ApiError && err.status === 401) return;
      const sinceError = err instanceof ApiError && err.details.find((d) => d.field === 'since');
      if (sinceError) {
        setError(sinceError.message.charAt(0).toUpperCase() + sinceError.message.slice(1));
        input.focus();
      } else {
        dlg.error(err);
        submit.focus();
      }
    }
  });
  input.focus();
}
