// The Add endpoint and Edit endpoint dialogs of the Webhooks page, and the one-time display of
// an endpoint's signing secret (after create and after a rotation).

import { h, announce, formatDateTime, formField, setFieldError } from './dom.js';
import { api, ApiError } from './api.js';
import { openDialog, showOnce } from './dialog.js';
import { checkWebhookUrl, parsePerSecond, checkDescription, DEFAULT_PER_SECOND, MAX_PER_SECOND } from './validate.js';

/** The event types an endpoint can subscribe to, with what each one means. */
export const EVENT_TYPES = [
  { type: 'message.sent', label: 'A message reached WhatsApp (sent)' },
  { type: 'message.delivered', label: 'A message was delivered to the phone' },
  { type: 'message.read', label: 'A message was read' },
  { type: 'message.failed', label: 'A message failed' },
  { type: 'dispatch.completed', label: 'A dispatch completed' },
  { type: 'dispatch.paused', label: 'A dispatch was paused' },
];

let formCounter = 0;

function sentence(message) {
  const m = String(message || '').trim();
  if (!m) return 'This value is not accepted.';
  const first = m.charAt(0).toUpperCase() + m.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** Every key of the account (the keys list, page after page), for the key filter. */
export async function listAllKeys() {
  const keys = [];
  for (let page = 1; page <= 40; page += 1) {
    const data = await api.listKeys({ page, perPage: 50 });
    keys.push(...data.items);
    if (keys.length >= data.total || data.items.length === 0) break;
  }
  return keys;
}

/**
 * Opens the add dialog (no `endpoint`) or the edit dialog for `endpoint`.
 * `onSaved(endpoint)` runs after a successful save (for add: once the secret is dismissed).
 */
export function openWebhookForm({ endpoint, onSaved } = {}) {
  const editing = Boolean(endpoint);
  const uid = `wh${++formCounter}`;
  const dlg = openDialog({
    title: editing ? 'Edit webhook endpoint' : 'Add webhook endpoint',
    size: 'lg',
    name: editing ? 'edit-webhook' : 'create-webhook',
  });

  const url = formField({
    id: `${uid}-url`,
    label: 'Endpoint URL',
    control: h('input', { type: 'url', name: 'url', autocomplete: 'off', spellcheck: 'false', inputmode: 'url', placeholder: 'https://hooks.example.com/ezpulze' }),
    hint: 'EzPulze posts each event here as JSON, signed with the endpoint\'s secret. Use https:// (plain http:// only to this machine, in development).',
  });
  url.control.value = editing ? endpoint.url : '';

  // Events: none ticked = every type.
  const chosen = new Set(editing ? endpoint.events || [] : []);
  const eventBoxes = EVENT_TYPES.map((e) => h('input', { type: 'checkbox', name: 'events', value: e.type, id: `${uid}-ev-${e.type.replace('.', '-')}`, checked: chosen.has(e.type) }));
  const eventsError = h('p', { class: 'field-error', id: `${uid}-events-error`, hidden: true });
  const eventsHint = h('p', { class: 'hint', id: `${uid}-events-hint` }, 'Tick none to receive every event type.');
  const eventsSet = h('fieldset', { class: 'events-field', 'aria-describedby': `${uid}-events-hint ${uid}-events-error` },
    h('legend', {}, 'Events'),
    eventsHint,
    h('div', { class: 'event-grid' }, EVENT_TYPES.map((e, i) => h('label', { class: 'check event-check', for: eventBoxes[i].id },
      eventBoxes[i],
      h('span', {}, h('code', {}, e.type), h('span', { class: 'event-label' }, e.label))))),
    eventsError);
  const events = { wrap: eventsSet, control: eventsSet, errorEl: eventsError };

  // Mode: only when adding (an endpoint keeps its mode).
  let modeLive = null;
  let modeTest = null;
  let mode = null;
  if (!editing) {
    modeLive = h('input', { type: 'radio', name: `${uid}-mode`, value: 'live', id: `${uid}-mode-live`, checked: true });
    modeTest = h('input', { type: 'radio', name: `${uid}-mode`, value: 'test', id: `${uid}-mode-test` });
    mode = h('fieldset', { class: 'mode-field' },
      h('legend', {}, 'Mode'),
      h('div', { class: 'mode-switch' },
        h('label', { class: 'mode-option', for: modeLive.id }, modeLive, h('span', {}, h('strong', {}, 'Live'), ' (events of sk_live_ keys)')),
        h('label', { class: 'mode-option', for: modeTest.id }, modeTest, h('span', {}, h('strong', {}, 'Test'), ' (events of sk_test_ keys)'))));
  }

  // The key filter: a multi-select of the account's keys of the endpoint's mode (a key of the
  // other mode never sends an event the endpoint receives). Nothing selected = every key.
  const keySelect = h('select', { name: 'key_ids', multiple: true, size: '5', disabled: true }, h('option', { disabled: true }, 'Loading keys…'));
  const keys = formField({
    id: `${uid}-keys`,
    label: 'Only messages sent with these keys',
    control: keySelect,
    hint: 'Select none for the messages of every key. Ctrl-click (⌘-click on a Mac) selects several.',
  });
  const selectedKeys = new Set(editing && Array.isArray(endpoint.key_ids) ? endpoint.key_ids : []);
  let allKeys = null;
  const currentMode = () => (editing ? endpoint.mode : modeTest && modeTest.checked ? 'test' : 'live');
  const renderKeys = () => {
    if (!allKeys) return;
    const wanted = currentMode();
    for (const o of keySelect.options) {
      if (o.value && !o.disabled) {
        if (o.selected) selectedKeys.add(o.value);
        else selectedKeys.delete(o.value);
      }
    }
    const list = allKeys.filter((k) => (k.mode || 'live') === wanted);
    const options = list.map((k) => h('option', { value: k.id, selected: selectedKeys.has(k.id) }, `${k.name} (${k.masked_key})`));
    // Keys the endpoint names that are gone from the list stay selected, so a save keeps them.
    if (editing) {
      for (const id of selectedKeys) {
        if (!allKeys.some((k) => k.id === id)) options.push(h('option', { value: id, selected: true }, `Deleted key ${id}`));
      }
    }
    if (options.length === 0) {
      keySelect.replaceChildren(h('option', { disabled: true }, wanted === 'test' ? 'No test-mode keys (sk_test_) in this account' : 'No live keys in this account yet'));
      keySelect.disabled = true;
    } else {
      keySelect.replaceChildren(...options);
      keySelect.size = Math.min(Math.max(options.length, 3), 6);
      keySelect.disabled = false;
    }
  };
  // Switching the mode empties the selection (the other mode's keys are not listed).
  for (const radio of [modeLive, modeTest]) radio?.addEventListener('change', () => { selectedKeys.clear(); for (const o of keySelect.options) o.selected = false; renderKeys(); });
  listAllKeys().then((list) => {
    allKeys = list;
    renderKeys();
  }).catch((err) => {
    keySelect.replaceChildren(h('option', { disabled: true }, 'The keys could not be loaded'));
    if (!(err instanceof ApiError && err.status === 401)) setFieldError(keys, `The keys could not be loaded; the filter is left as it is (${err.message}).`);
  });

  const rate = formField({
    id: `${uid}-rate`,
    label: 'Max requests per second',
    control: h('input', { type: 'text', inputmode: 'numeric', name: 'max_per_second', autocomplete: 'off', class: 'input-short' }),
    hint: `This endpoint never receives more than this many requests in a second (1 to ${MAX_PER_SECOND.toLocaleString()}).`,
  });
  rate.control.value = String(editing ? endpoint.max_per_second : DEFAULT_PER_SECOND);

  const description = formField({
    id: `${uid}-description`,
    label: 'Description',
    control: h('input', { type: 'text', name: 'description', autocomplete: 'off', placeholder: 'CRM sync' }),
    hint: 'Optional: what this endpoint is for.',
  });
  description.control.value = editing ? endpoint.description || '' : '';

  const phoneBox = h('input', { type: 'checkbox', name: 'include_phone', id: `${uid}-phone`, checked: editing && endpoint.include_phone, 'aria-describedby': `${uid}-phone-hint` });
  const phone = h('div', { class: 'field field-check' },
    h('label', { class: 'check', for: phoneBox.id }, phoneBox, h('span', {}, 'Include the recipient\'s phone number')),
    h('p', { class: 'hint', id: `${uid}-phone-hint` }, 'Adds data.phone to message events. The message body is never sent.'));

  for (const f of [url, rate, description]) f.control.addEventListener('input', () => setFieldError(f, null));
  eventsSet.addEventListener('change', () => setFieldError(events, null));
  keySelect.addEventListener('change', () => setFieldError(keys, null));

  const form = h('form', { id: `${uid}-form`, novalidate: true, class: 'webhook-form' },
    url.wrap, description.wrap, events.wrap, mode, keys.wrap, rate.wrap, phone);
  dlg.body.append(form);
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Cancel');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id }, editing ? 'Save changes' : 'Add endpoint');
  dlg.footer.append(cancel, submit);

  const fieldFor = (apiField) => {
    const name = apiField.replace(/[[.].*$/, '');
    if (name === 'url') return url;
    if (name === 'events') return events;
    if (name === 'key_ids') return keys;
    if (name === 'max_per_second') return rate;
    if (name === 'description') return description;
    return null;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    dlg.error(null);
    const errors = [];
    const report = (f, message) => {
      setFieldError(f, message);
      if (message) errors.push(f);
    };
    report(url, checkWebhookUrl(url.control.value));
    const rateValue = parsePerSecond(rate.control.value);
    report(rate, rateValue.error);
    report(description, checkDescription(description.control.value));
    if (errors.length) {
      errors[0].control.focus();
      announce(`${errors.length} field${errors.length > 1 ? 's need' : ' needs'} attention`);
      return;
    }

    const body = {
      url: url.control.value.trim(),
      events: eventBoxes.filter((b) => b.checked).map((b) => b.value),
      max_per_second: rateValue.value,
      description: description.control.value.trim(),
      include_phone: phoneBox.checked,
    };
    // The filter is sent once the keys are listed (a failed listing leaves it unchanged).
    if (allKeys) {
      const ids = [...keySelect.selectedOptions].map((o) => o.value).filter(Boolean);
      body.key_ids = ids.length ? ids : null;
    } else if (!editing) {
      body.key_ids = null;
    }
    if (!editing && modeTest.checked) body.mode = 'test';

    dlg.busy(true);
    try {
      const saved = editing ? await api.updateWebhook(endpoint.id, body) : await api.createWebhook(body);
      dlg.busy(false);
      if (editing) {
        dlg.close();
        announce(`Saved ${saved.url}`);
        if (onSaved) onSaved(saved);
      } else {
        showSecretOnce(dlg, saved, { onDone: () => { if (onSaved) onSaved(saved); } });
      }
    } catch (err) {
      dlg.busy(false);
      if (err instanceof ApiError && err.status === 401) return;
      if (err instanceof ApiError && err.details.length) {
        const unmapped = [];
        let first = null;
        for (const d of err.details) {
          const f = fieldFor(d.field);
          if (f) {
            setFieldError(f, sentence(d.message));
            first = first || f;
          } else unmapped.push(`${d.field}: ${d.message}`);
        }
        if (unmapped.length) dlg.error(unmapped.join('; '));
        if (first) (first === events ? eventBoxes[0] : first.control).focus();
      } else {
        dlg.error(err);
        submit.focus();
      }
    }
  });

  dlg.focus(url.control);
  return dlg;
}

/**
 * Replaces a dialog's content with an endpoint's new signing secret: a warning box, the
 * secret, Copy and Done. The secret lives only in this dialog's DOM and is gone once it closes.
 * `rotated`: the secret replaces another one, which keeps signing until `secret_rotated_until`.
 */
export function showSecretOnce(dlg, saved, { rotated = false, onDone } = {}) {
  const facts = [
    h('dt', {}, 'Endpoint'), h('dd', {}, h('code', {}, saved.url || '')),
    h('dt', {}, 'Events'), h('dd', {}, saved.events && saved.events.length ? saved.events.join(', ') : 'All events'),
  ];
  if (rotated && saved.secret_rotated_until) {
    facts.push(h('dt', {}, 'Previous secret'), h('dd', {}, `Keeps signing alongside until ${formatDateTime(saved.secret_rotated_until)}`));
  }
  showOnce(dlg, {
    title: rotated ? 'New signing secret' : 'Webhook endpoint added',
    name: 'webhook-secret',
    value: saved.secret || '',
    label: 'Signing secret',
    copyClass: 'copy-secret',
    headline: "This is the only time you'll see this signing secret.",
    note: rotated
      ? 'Put it in your receiver now. The previous secret keeps signing alongside it for 24 hours, then only this one does.'
      : "Put it in your receiver and verify every request's webhook-signature with it (Standard Webhooks). If you lose it, rotate the secret.",
    facts,
    onDone,
  });
}
