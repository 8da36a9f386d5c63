// The Create API Key and Edit API Key dialogs, and the one-time display of a new key value.

import { h, icon, announce, formField, setFieldError } from './dom.js';
import { api, ApiError } from './api.js';
import { openDialog, showOnce } from './dialog.js';
import { checkName, checkIps, ipLines, parseRateLimit, parseExpiry, toDateInput } from './validate.js';

const DEFAULT_RATE_LIMIT = 1000;
let formCounter = 0;

/** Which individual checkboxes to tick for a stored scope list. */
function expandScopes(catalogue, scopes) {
  const set = new Set(scopes);
  for (const res of catalogue.resources) {
    const all = res.actions.find((a) => a.scope.endsWith(':all'));
    if (all && set.has(all.scope)) for (const a of res.actions) set.add(a.scope);
  }
  return set;
}

/**
 * Opens the create dialog (no `key`) or the edit dialog for `key`.
 * `onSaved(key)` runs after a successful save (for create: after Done).
 */
export function openKeyForm({ catalogue, key = null, onSaved }) {
  const editing = Boolean(key);
  const uid = `kf${++formCounter}`;
  const dlg = openDialog({ title: editing ? 'Edit API Key' : 'Create API Key', size: 'lg', name: editing ? 'edit-key' : 'create-key' });

  // --- Name ---
  const name = formField({
    id: `${uid}-name`,
    label: 'Key name',
    control: h('input', { type: 'text', name: 'name', autocomplete: 'off', maxlength: '200', value: key ? key.name : '', placeholder: 'e.g. Website Contact Form' }),
    hint: 'A descriptive name, for example "Website Contact Form", "CRM Integration" or "n8n Automation".',
  });

  // --- Permissions ---
  const startMode = key && !key.scope_group ? 'scopes' : 'group';
  const modeGroup = h('input', { type: 'radio', name: `${uid}-mode`, value: 'group', id: `${uid}-mode-group`, checked: startMode === 'group' });
  const modeScopes = h('input', { type: 'radio', name: `${uid}-mode`, value: 'scopes', id: `${uid}-mode-scopes`, checked: startMode === 'scopes' });

  const groupSelect = h('select', { name: 'scope_group' },
    h('option', { value: '' }, 'Choose a scope group…'),
    catalogue.groups.map((g) => h('option', { value: g.id, selected: key && key.scope_group === g.id }, g.name)));
  const group = formField({ id: `${uid}-group`, label: 'Scope group', control: groupSelect });
  const groupInfo = h('div', { class: 'group-info', 'aria-live': 'polite' });
  const renderGroupInfo = () => {
    groupInfo.replaceChildren();
    const g = catalogue.groups.find((x) => x.id === groupSelect.value);
    if (!g) {
      groupInfo.append(h('p', { class: 'muted' }, 'Pick the bundle that fits your integration; its permissions are shown here.'));
      return;
    }
    groupInfo.append(
      h('p', { class: 'group-included' }, h('strong', {}, 'Included permissions: '), g.included),
      h('ul', { class: 'badges', 'aria-label': `Scopes of ${g.name}` }, g.scopes.map((s) => h('li', { class: 'badge' }, s))),
      h('p', { class: 'muted' }, h('strong', {}, 'Best for: '), g.best_for),
    );
  };
  groupSelect.addEventListener('change', () => { renderGroupInfo(); setFieldError(group, null); });
  renderGroupInfo();

  // Editing: the key's current permissions are ticked, so switching a group key to individual
  // scopes starts from what it has.
  const ticked = expandScopes(catalogue, key ? key.scopes : []);
  const scopeBoxes = [];
  const resourceSets = catalogue.resources.map((res) => {
    const boxes = res.actions.map((a) => {
      const box = h('input', { type: 'checkbox', value: a.scope, id: `${uid}-${a.scope.replace(':', '-')}`, checked: ticked.has(a.scope) });
      scopeBoxes.push(box);
      return { action: a, box };
    });
    const all = boxes.find((b) => b.action.scope.endsWith(':all'));
    const others = boxes.filter((b) => b !== all);
    if (all) {
      all.box.addEventListener('change', () => { for (const b of others) b.box.checked = all.box.checked; });
      for (const b of others) b.box.addEventListener('change', () => { all.box.checked = others.every((o) => o.box.checked); });
    }
    return h('fieldset', { class: 'scope-resource', dataset: { resource: res.id } },
      h('legend', {}, res.name),
      boxes.map(({ action, box }) => h('label', { class: 'check', for: box.id }, box, h('span', {}, action.label))));
  });
  const scopesError = h('p', { class: 'field-error', id: `${uid}-scopes-error`, hidden: true });
  const scopesGrid = h('div', { class: 'scope-grid', role: 'group', 'aria-label': 'Individual scopes', 'aria-describedby': `${uid}-scopes-error` }, resourceSets);
  const scopesField = { control: scopesGrid, errorEl: scopesError };
  scopesGrid.addEventListener('change', () => setFieldError(scopesField, null));

  const groupPanel = h('div', { class: 'mode-panel', id: `${uid}-panel-group` }, group.wrap, groupInfo);
  const scopesPanel = h('div', { class: 'mode-panel', id: `${uid}-panel-scopes` },
    h('p', { class: 'hint' }, 'Select at least one permission. "All" grants every action of its resource.'),
    scopesGrid, scopesError);
  const syncMode = () => {
    groupPanel.hidden = !modeGroup.checked;
    scopesPanel.hidden = !modeScopes.checked;
  };
  modeGroup.addEventListener('change', syncMode);
  modeScopes.addEventListener('change', syncMode);
  syncMode();

  const permissions = h('fieldset', { class: 'permissions' },
    h('legend', {}, 'Permissions'),
    h('div', { class: 'mode-switch' },
      h('label', { class: 'mode-option', for: modeGroup.id }, modeGroup, h('span', {}, h('strong', {}, 'Scope group'), ' (Recommended)')),
      h('label', { class: 'mode-option', for: modeScopes.id }, modeScopes, h('span', {}, h('strong', {}, 'Individual scopes'), ' (Advanced)'))),
    groupPanel, scopesPanel);

  // --- Advanced settings ---
  const ips = formField({
    id: `${uid}-ips`,
    label: 'Allowed IP Addresses',
    control: h('textarea', { name: 'allowed_ips', rows: '3', spellcheck: 'false', placeholder: '203.0.113.10\n198.51.100.7' }),
    hint: 'One IPv4 or IPv6 address or CIDR range (e.g. 10.0.0.0/8) per line. Leave empty to allow all IPs.',
  });
  ips.control.value = key ? key.allowed_ips.join('\n') : '';
  const rate = formField({
    id: `${uid}-rate`,
    label: 'Rate Limit (requests per hour)',
    control: h('input', { type: 'text', inputmode: 'numeric', name: 'rate_limit_per_hour', autocomplete: 'off' }),
    hint: 'Maximum API requests per hour. Leave empty for no limit.',
  });
  rate.control.value = key ? (key.rate_limit_per_hour === null ? '' : String(key.rate_limit_per_hour)) : String(DEFAULT_RATE_LIMIT);
  const initialExpiry = key ? toDateInput(key.expires_at) : '';
  const expiry = formField({
    id: `${uid}-expiry`,
    label: 'Expiration Date',
    control: h('input', { type: 'date', name: 'expires_at', min: toDateInput(new Date().toISOString()) }),
    hint: 'The key stops working at the end of this day. Leave empty for no expiration.',
  });
  expiry.control.value = initialExpiry;
  const advanced = h('details', { class: 'advanced', open: Boolean(key && (key.allowed_ips.length || key.expires_at)) },
    h('summary', {}, icon('chevron'), h('span', {}, 'Advanced Settings')),
    h('div', { class: 'advanced-body' }, ips.wrap, rate.wrap, expiry.wrap));

  for (const f of [name, ips, rate, expiry]) f.control.addEventListener('input', () => setFieldError(f, null));

  const form = h('form', { id: `${uid}-form`, novalidate: true, class: 'key-form' }, name.wrap, permissions, advanced);
  dlg.body.append(form);
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Cancel');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id }, editing ? 'Save Changes' : 'Create API Key');
  dlg.footer.append(cancel, submit);

  const fieldFor = (apiField) => {
    if (apiField === 'name') return name;
    if (apiField === 'scope_group') return modeGroup.checked ? group : scopesField;
    if (apiField.startsWith('scopes')) return modeGroup.checked ? group : scopesField;
    if (apiField.startsWith('allowed_ips')) return ips;
    if (apiField === 'rate_limit_per_hour') return rate;
    if (apiField === 'expires_at') return expiry;
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
    report(name, checkName(name.control.value));
    let scopeChoice = null;
    if (modeGroup.checked) {
      report(group, groupSelect.value ? null : 'Choose a scope group, or switch to individual scopes.');
      setFieldError(scopesField, null);
      if (groupSelect.value) scopeChoice = { scope_group: groupSelect.value };
    } else {
      setFieldError(group, null);
      const chosen = [];
      for (const res of catalogue.resources) {
        const all = res.actions.find((a) => a.scope.endsWith(':all'));
        const boxes = scopeBoxes.filter((b) => b.value.startsWith(`${res.id}:`));
        const allBox = all && boxes.find((b) => b.value === all.scope);
        if (allBox && allBox.checked) chosen.push(all.scope);
        else for (const b of boxes) if (b.checked) chosen.push(b.value);
      }
      report(scopesField, chosen.length ? null : 'Select at least one scope.');
      if (chosen.length) scopeChoice = { scopes: chosen };
    }
    report(ips, checkIps(ips.control.value));
    const rateValue = parseRateLimit(rate.control.value);
    report(rate, rateValue.error);
    const expiryChanged = expiry.control.value !== initialExpiry;
    const expiryValue = expiryChanged ? parseExpiry(expiry.control.value) : { value: null, error: null };
    report(expiry, expiryValue.error);

    if (errors.length) {
      if (errors.some((f) => f === ips || f === rate || f === expiry)) advanced.open = true;
      const first = errors[0].control;
      (first.querySelector ? first.querySelector('input') || first : first).focus();
      announce(`${errors.length} field${errors.length > 1 ? 's need' : ' needs'} attention`);
      return;
    }

    const body = { name: name.control.value.trim(), allowed_ips: ipLines(ips.control.value), rate_limit_per_hour: rateValue.value };
    if (editing) {
      if (scopeChoice.scope_group) body.scope_group = scopeChoice.scope_group;
      else Object.assign(body, { scope_group: null, scopes: scopeChoice.scopes });
      if (expiryChanged) body.expires_at = expiryValue.value;
    } else {
      Object.assign(body, scopeChoice);
      if (expiryValue.value) body.expires_at = expiryValue.value;
    }

    dlg.busy(true);
    try {
      const saved = editing ? await api.updateKey(key.id, body) : await api.createKey(body);
      dlg.busy(false);
      if (editing) {
        dlg.close();
        announce(`Saved ${saved.name}`);
        if (onSaved) onSaved(saved);
      } else {
        showKeyOnce(dlg, saved, () => { if (onSaved) onSaved(saved); });
      }
    } catch (err) {
      dlg.busy(false);
      if (err instanceof ApiError && err.status === 401) return;
      if (err instanceof ApiError && err.details.length) {
        const unmapped = [];
        let firstField = null;
        for (const d of err.details) {
          const f = fieldFor(d.field);
          if (f) {
            setFieldError(f, d.message.charAt(0).toUpperCase() + d.message.slice(1) + '.');
            firstField = firstField || f;
            if (f === ips || f === rate || f === expiry) advanced.open = true;
          } else unmapped.push(`${d.field}: ${d.message}`);
        }
        if (unmapped.length) dlg.error(unmapped.join('; '));
        if (firstField) firstField.control.focus();
      } else {
        dlg.error(err);
      }
    }
  });

  dlg.focus(name.control);
  return dlg;
}

/**
 * Replaces a dialog's content with the new key value: a warning box, the key, Copy and Done.
 * The value lives only in this dialog's DOM and is gone once it closes.
 */
export function showKeyOnce(dlg, saved, onDone) {
  showOnce(dlg, {
    title: saved.name ? `API Key Created: ${saved.name}` : 'API Key Created',
    name: 'key-created',
    value: saved.key,
    label: 'Your new API key',
    copyClass: 'copy-key',
    headline: "This is the only time you'll see the full API key.",
    note: "Copy it and store it securely. If you lose it, you'll need to regenerate a new key.",
    facts: [
      h('dt', {}, 'Masked key'), h('dd', {}, h('code', {}, saved.masked_key)),
      h('dt', {}, 'Scopes'), h('dd', {}, saved.scopes.join(', ')),
    ],
    onDone,
  });
}
