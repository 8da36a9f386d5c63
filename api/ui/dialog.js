// Modal dialogs on the native <dialog> element: the rest of the page is inert while one is
// open, Tab and Shift+Tab stay inside it, Escape closes it, and focus returns to the control
// that opened it.

import { h, icon, copyText } from './dom.js';
import { describeError } from './api.js';

const FOCUSABLE = [
  'a[href]', 'button:not([disabled])', 'input:not([disabled]):not([type="hidden"])',
  'select:not([disabled])', 'textarea:not([disabled])', 'summary', '[tabindex]:not([tabindex="-1"])',
].join(',');

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => {
    if (el.closest('[hidden]') || el.closest('[inert]')) return false;
    // Content of a closed <details> (but its summary) cannot take focus.
    const details = el.closest('details');
    if (details && !details.open && el.tagName !== 'SUMMARY' && el.parentElement !== details) return false;
    return el.getClientRects().length > 0;
  });
}

let counter = 0;

/**
 * Opens a modal dialog.
 * @param {object} o
 * @param {string} o.title
 * @param {string} [o.size] 'sm' | 'md' | 'lg'
 * @param {string} [o.name] a data-dialog name, for tests and styling
 * @param {Function} [o.onClose]
 * @returns {{el: HTMLDialogElement, body: HTMLElement, footer: HTMLElement, close: Function, setTitle: Function, error: Function}}
 */
export function openDialog({ title, size = 'md', name = '', onClose } = {}) {
  const id = `dlg-${++counter}`;
  const opener = document.activeElement;
  const heading = h('h2', { id: `${id}-title`, class: 'dialog-title' }, title);
  const closeButton = h('button', { type: 'button', class: 'icon-btn dialog-close', 'aria-label': 'Close' }, icon('close', 18));
  const errorBox = h('div', { class: 'alert alert-error', role: 'alert', hidden: true, id: `${id}-error` });
  const body = h('div', { class: 'dialog-body' });
  const footer = h('div', { class: 'dialog-footer' });
  const el = h('dialog', {
    class: `dialog dialog-${size}`,
    'aria-labelledby': `${id}-title`,
    'aria-modal': 'true',
    dataset: { dialog: name },
  },
  h('div', { class: 'dialog-header' }, heading, closeButton),
  errorBox,
  body,
  footer);

  let closed = false;
  const closeHandlers = onClose ? [onClose] : [];
  const close = (result, { restoreFocus = true } = {}) => {
    if (closed) return;
    closed = true;
    if (el.open) el.close();
    el.remove();
    if (restoreFocus && opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
    for (const fn of closeHandlers) fn(result);
  };
  // Lets the app close every dialog when the session ends.
  el.ezpClose = () => close(undefined, { restoreFocus: false });

  closeButton.addEventListener('click', () => close());
  el.addEventListener('cancel', (event) => {
    // Escape: close (unless a request is in flight).
    event.preventDefault();
    if (!el.classList.contains('busy')) close();
  });
  el.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const items = focusables(el);
    if (!items.length) {
      event.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement;
    if (event.shiftKey && (active === first || !el.contains(active))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !el.contains(active))) {
      event.preventDefault();
      first.focus();
    }
  });

  document.body.appendChild(el);
  el.showModal();

  const controller = {
    el,
    body,
    footer,
    close,
    setTitle(text) { heading.textContent = text; },
    onClose(fn) { closeHandlers.push(fn); },
    /** Shows an error at the top of the dialog (or hides it when called with nothing). */
    error(err) {
      if (!err) {
        errorBox.hidden = true;
        errorBox.textContent = '';
        return;
      }
      errorBox.textContent = typeof err === 'string' ? err : describeError(err);
      errorBox.hidden = false;
    },
    /** Marks the dialog busy: buttons disabled, Escape ignored. */
    busy(on) {
      el.classList.toggle('busy', on);
      el.setAttribute('aria-busy', on ? 'true' : 'false');
      for (const b of el.querySelectorAll('.dialog-footer button')) b.disabled = on;
    },
    /** Puts focus on the first field (or the given element). */
    focus(target) {
      const t = target || focusables(body)[0] || focusables(el)[0];
      if (t) t.focus();
    },
  };
  return controller;
}

/**
 * A confirmation dialog. `action` runs on confirm; its error is shown in the dialog, which
 * stays open. Resolves with the action's result, or null when cancelled.
 */
export function confirmDialog({ title, message, confirmLabel, danger = false, name = 'confirm', action }) {
  return new Promise((resolve) => {
    let result = null;
    const dlg = openDialog({ title, size: 'sm', name, onClose: () => resolve(result) });
    dlg.body.append(...(Array.isArray(message) ? message : [h('p', {}, message)]));
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => dlg.close() }, 'Cancel');
    const confirm = h('button', {
      type: 'button',
      class: danger ? 'btn btn-danger' : 'btn btn-primary',
      onclick: async () => {
        dlg.error(null);
        dlg.busy(true);
        try {
          result = await action();
          dlg.busy(false);
          dlg.close();
        } catch (err) {
          dlg.busy(false);
          if (err && err.status === 401) {
            dlg.close();
            return;
          }
          dlg.error(err);
          confirm.focus();
        }
      },
    }, confirmLabel);
    dlg.footer.append(cancel, confirm);
    cancel.focus();
  });
}

/**
 * Turns `dlg` into the "shown only this once" view of a secret `value`: a warning box with
 * `headline` and `note`, the value read-only with a Copy button (class `copyClass`), the
 * `facts` (`[dt, dd]` pairs of elements) and Done. Done or Escape closes; `onDone` runs then.
 */
export function showOnce(dlg, { title, name, value, label, copyClass, headline, note, facts, onDone }) {
  dlg.setTitle(title);
  dlg.el.dataset.dialog = name;
  const input = h('input', { type: 'text', readonly: true, class: 'key-value', value, 'aria-label': label, spellcheck: 'false' });
  input.addEventListener('focus', () => input.select());
  const copy = h('button', { type: 'button', class: `btn btn-secondary ${copyClass}`, onclick: () => copyText(value, copy) }, icon('copy'), h('span', { class: 'label' }, 'Copy'));
  dlg.body.replaceChildren(
    h('div', { class: 'warning-box', role: 'alert' },
      h('div', { class: 'warning-title' }, icon('warn', 18), h('strong', {}, headline)),
      h('p', {}, note),
      h('div', { class: 'key-row' }, input, copy)),
    h('dl', { class: 'key-facts' }, facts));
  const done = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => dlg.close() }, 'Done');
  dlg.footer.replaceChildren(done);
  dlg.onClose(() => { if (onDone) onDone(); });
  copy.focus();
}
