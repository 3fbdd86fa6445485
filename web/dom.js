// Small DOM helpers shared by the console's views: element builder, dialogs, menus, toasts
// and formatting. No framework; everything here works with the keyboard.

/**
 * Creates an element. `attrs` keys: `class`, `text`, `on{Event}` (listener), `dataset`,
 * booleans (set when true), anything else as an attribute. Children may be strings, nodes,
 * arrays, or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = shown(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(shown(c)));
  }
}

// Control (C0 but tab and newline, DEL, C1), bidirectional-control, zero-width and BOM
// characters: what the server's text policy refuses in names.
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * `value` as text to show, with the characters names may not hold written as `\u{202e}`:
 * stored data from before the server's text policy must not reorder or hide what is shown
 * (SECURITY: `/\u202egnp.exe` would display as `/exe.png`). Every text the console builds
 * with `h` and `replace` goes through here.
 */
export function shown(value) {
  return String(value).replace(HIDDEN, (c) => `\\u{${c.codePointAt(0).toString(16).padStart(4, '0')}}`);
}

/** Removes every child of `el` and appends `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let idCounter = 0;
/** A document-unique id with a readable prefix. */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** An inline SVG icon from the small set the console uses (decorative: aria-hidden). */
export function icon(name, cls = '') {
  const paths = {
    check: 'M6.5 11.2 3.3 8l-1.1 1.1 4.3 4.3 8.5-8.5-1.1-1.1z',
    circle: 'M8 2.5a5.5 5.5 0 1 0 0 11 5.5 5.5 0 0 0 0-11zM8 4a4 4 0 1 1 0 8 4 4 0 0 1 0-8z',
    dots: 'M8 3.2a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6zm0 3.5a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6zm0 3.5a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6z',
    plus: 'M7.25 2.5h1.5v4.75h4.75v1.5H8.75v4.75h-1.5V8.75H2.5v-1.5h4.75z',
    close: 'M4.1 3 3 4.1 6.9 8 3 11.9 4.1 13 8 9.1l3.9 3.9 1.1-1.1L9.1 8 13 4.1 11.9 3 8 6.9z',
    upload: 'M7.25 11V4.9L5 7.1 3.9 6 8 1.9 12.1 6 11 7.1 8.75 4.9V11zM2.5 12.5h11V14h-11z',
    down: 'M4 6l4 4 4-4z',
    link: 'M6.6 9.4a2.5 2.5 0 0 0 3.5 0l2.4-2.4a2.5 2.5 0 0 0-3.5-3.5l-.9.9 1 1 .9-.9a1 1 0 0 1 1.4 1.4L9 8.4a1 1 0 0 1-1.4 0zm2.8-2.8a2.5 2.5 0 0 0-3.5 0L3.5 9a2.5 2.5 0 0 0 3.5 3.5l.9-.9-1-1-.9.9A1 1 0 0 1 4.6 10L7 7.6a1 1 0 0 1 1.4 0z',
    file: 'M4 1.5h5l3.5 3.5v9.5h-8.5zm1.5 1.5v10h5.5V6H8V3z',
    lock: 'M5 6.5V5a3 3 0 0 1 6 0v1.5h1V14H4V6.5zm1.5 0h3V5a1.5 1.5 0 0 0-3 0z',
    globe: 'M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zm4.9 5.75h-2.2a10 10 0 0 0-.9-3.9 5 5 0 0 1 3.1 3.9zM8 3.1c.5.6 1.1 2 1.2 4.15H6.8C6.9 5.1 7.5 3.7 8 3.1zM6.2 3.35a10 10 0 0 0-.9 3.9H3.1a5 5 0 0 1 3.1-3.9zm-3.1 5.4h2.2a10 10 0 0 0 .9 3.9 5 5 0 0 1-3.1-3.9zM8 12.9c-.5-.6-1.1-2-1.2-4.15h2.4C9.1 10.9 8.5 12.3 8 12.9zm1.8-.25a10 10 0 0 0 .9-3.9h2.2a5 5 0 0 1-3.1 3.9z',
    eyeoff: 'M2.1 1 1 2.1l2.2 2.2A7.6 7.6 0 0 0 .8 8c1.2 2.7 4 4.5 7.2 4.5 1.2 0 2.3-.3 3.3-.7l2.6 2.6 1.1-1.1zM8 11a3 3 0 0 1-3-3c0-.5.1-.9.3-1.3l4 4c-.4.2-.8.3-1.3.3zm0-7.5c3.2 0 6 1.8 7.2 4.5a7.8 7.8 0 0 1-2 2.7L11 8.5V8a3 3 0 0 0-3-3h-.5L5.9 3.9c.7-.3 1.4-.4 2.1-.4z',
    alert: 'M8 1.5 .8 14h14.4zm-.75 4.5h1.5v4h-1.5zm0 5h1.5v1.5h-1.5z',
  };
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon ${cls}`.trim());
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', paths[name] || paths.circle);
  p.setAttribute('fill-rule', 'evenodd');
  svg.append(p);
  return svg;
}

// ---------------------------------------------------------------------------------------------
// Toasts: a polite live region, so screen readers hear them too.

/** Most toasts shown at once; older ones give way. */
const MAX_TOASTS = 3;

/** Removes the toasts shown with `tag`: their state is superseded ("Deploy All to make it live" once deployed). */
export function clearToasts(tag) {
  for (const el of document.querySelectorAll(`.toast[data-tag="${tag}"]`)) el.remove();
}

/**
 * Shows a short message; `kind` is `info`, `success` or `error`; `detail` is shown as code
 * (a URL, a command). While a modal dialog is open the toast is shown inside it, since the
 * rest of the page is inert and covered then. Returns the element.
 */
export function toast(message, kind = 'info', { timeout = 5000, detail = null, tag = null } = {}) {
  const dialogs = document.querySelectorAll('dialog[open]');
  const top = dialogs.length ? dialogs[dialogs.length - 1] : null;
  let region = document.getElementById('toasts');
  if (top) {
    region = top.querySelector(':scope > .toasts');
    if (!region) {
      region = h('div', { class: 'toasts', 'aria-live': 'polite' });
      top.append(region);
    }
  }
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, message),
    detail ? h('code', { class: 'toast-detail' }, detail) : null,
    h('button', { class: 'icon-btn toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: () => el.remove() }, icon('close')));
  if (tag) el.dataset.tag = tag;
  region.append(el);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

// ---------------------------------------------------------------------------------------------
// Dialogs: native <dialog> (focus trap, Escape) with a title, body and footer.

/**
 * Opens a modal dialog. `build(dialog, close)` returns the body content; `actions` are the
 * footer buttons. Resolves with the value passed to `close` (undefined on Escape/Cancel).
 */
export function openDialog({ title, build, actions = [], wide = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const dialog = h('dialog', { class: `dialog${wide ? ' dialog-wide' : ''}`, 'aria-labelledby': titleId });
    let result;
    const close = (value) => {
      result = value;
      if (dialog.open) dialog.close();
    };
    const header = h('header', { class: 'dialog-header' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close dialog', onclick: () => close(undefined) }, icon('close')));
    const body = h('div', { class: 'dialog-body' });
    const footer = h('footer', { class: 'dialog-footer' });
    dialog.append(header, body, footer);
    append(body, [build(dialog, close, footer)]);
    for (const a of actions) footer.append(a);
    if (!actions.length) footer.remove();
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('[autofocus]') || body.querySelector('input, select, textarea, button');
    if (first) first.focus();
  });
}

/** A confirmation dialog; resolves true when confirmed. */
export function confirmDialog({ title, message, confirm = 'Confirm', danger = false }) {
  let closeFn;
  const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', onclick: () => closeFn(true) }, confirm);
  const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeFn(false) }, 'Cancel');
  return openDialog({
    title,
    build: (_d, close) => {
      closeFn = close;
      return Array.isArray(message) ? message : h('p', {}, message);
    },
    actions: [cancel, ok],
  }).then((v) => v === true);
}

/** A labelled form field: label, control, optional hint. Returns the wrapper. */
export function field(labelText, control, hint = null) {
  const id = control.id || uid('f');
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), control, hintEl);
}

/** An inline error box (role=alert) that stays hidden while empty. */
export function errorBox() {
  const el = h('div', { class: 'alert alert-error', role: 'alert', hidden: true });
  el.show = (msg) => {
    if (!msg) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    replace(el, icon('alert'), h('span', {}, msg));
    el.hidden = false;
  };
  return el;
}

// ---------------------------------------------------------------------------------------------
// Menus: a button that opens a role=menu list; arrows, Home/End, Escape and Tab work.

let openMenuState = null;

function closeOpenMenu(restoreFocus) {
  if (!openMenuState) return;
  const { menu, button, onDocDown } = openMenuState;
  openMenuState = null;
  menu.remove();
  document.removeEventListener('pointerdown', onDocDown, true);
  if (button) {
    button.setAttribute('aria-expanded', 'false');
    if (restoreFocus) button.focus();
  }
}

/**
 * Opens a menu of `items` ({label, onSelect, danger, disabled} or 'separator') anchored at
 * `button` (or at a pointer position `at` = {x, y}).
 */
export function openMenu(button, items, { at = null, label = 'Actions' } = {}) {
  closeOpenMenu(false);
  const menu = h('div', { class: 'menu', role: 'menu', 'aria-label': label, tabindex: '-1' });
  const entries = [];
  for (const item of items) {
    if (item === 'separator') {
      menu.append(h('div', { class: 'menu-sep', role: 'separator' }));
      continue;
    }
    const el = h('button', {
      type: 'button', role: 'menuitem', tabindex: '-1',
      class: `menu-item${item.danger ? ' danger' : ''}`,
      'aria-disabled': item.disabled ? 'true' : null,
      onclick: () => {
        if (item.disabled) return;
        closeOpenMenu(true);
        item.onSelect();
      },
    }, item.label);
    entries.push(el);
    menu.append(el);
  }
  const focusAt = (i) => {
    const n = entries.length;
    entries[((i % n) + n) % n].focus();
  };
  menu.addEventListener('keydown', (e) => {
    const i = entries.indexOf(document.activeElement);
    if (e.key === 'ArrowDown') { e.preventDefault(); focusAt(i + 1); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); focusAt(i < 0 ? -1 : i - 1); }
    else if (e.key === 'Home') { e.preventDefault(); focusAt(0); }
    else if (e.key === 'End') { e.preventDefault(); focusAt(-1); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeOpenMenu(true); }
    else if (e.key === 'Tab') { closeOpenMenu(true); }
    else if (e.key.length === 1 && /\S/.test(e.key)) {
      const k = e.key.toLowerCase();
      const start = i + 1;
      for (let j = 0; j < entries.length; j += 1) {
        const el = entries[(start + j) % entries.length];
        if (el.textContent.trim().toLowerCase().startsWith(k)) { el.focus(); break; }
      }
    }
  });
  // Inside an open modal dialog, the menu must live in that dialog (the top layer).
  const host = (button && button.closest('dialog')) || document.body;
  host.append(menu);
  // Absolute in the host's coordinates, so the menu scrolls with what it belongs to.
  const origin = host === document.body ? { left: -window.scrollX, top: -window.scrollY } : host.getBoundingClientRect();
  const rect = at ? { left: at.x, right: at.x, bottom: at.y, top: at.y } : button.getBoundingClientRect();
  const mw = menu.offsetWidth;
  const mh = menu.offsetHeight;
  let left = at ? rect.left : rect.right - mw;
  left = Math.max(8, Math.min(left, window.innerWidth - mw - 8));
  let top = rect.bottom + 4;
  if (top + mh > window.innerHeight - 8) top = Math.max(8, rect.top - mh - 4);
  menu.style.left = `${left - origin.left}px`;
  menu.style.top = `${top - origin.top}px`;
  const onDocDown = (e) => {
    if (!menu.contains(e.target) && e.target !== button && !(button && button.contains(e.target))) closeOpenMenu(false);
  };
  document.addEventListener('pointerdown', onDocDown, true);
  openMenuState = { menu, button, onDocDown };
  if (button) button.setAttribute('aria-expanded', 'true');
  focusAt(0);
}

/** Opens the menu at `button`, or closes it when it is already open there. */
export function toggleMenu(button, items, opts = {}) {
  if (openMenuState && openMenuState.button === button) closeOpenMenu(true);
  else openMenu(button, items, opts);
}

/** A button that toggles a menu built by `items()` when clicked or on ArrowDown. */
export function menuButton(content, items, { label, cls = 'btn' } = {}) {
  const btn = h('button', { type: 'button', class: cls, 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': label || null }, content);
  const toggle = () => {
    if (openMenuState && openMenuState.button === btn) closeOpenMenu(true);
    else openMenu(btn, items(), { label: label || btn.textContent.trim() });
  };
  btn.addEventListener('click', toggle);
  btn.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && !(openMenuState && openMenuState.button === btn)) {
      e.preventDefault();
      toggle();
    }
  });
  return btn;
}

window.addEventListener('resize', () => closeOpenMenu(false));

// ---------------------------------------------------------------------------------------------
// Formatting.

/** Bytes as people read them: `512 B`, `1.5 KB`, `25.0 MB` (1 KB = 1024 bytes, as the limits). */
export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** An ISO date as a short local date and time (with seconds when `seconds`). */
export function formatDate(iso, seconds = false) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined,
  });
}

/** Copies text to the clipboard (the async API where allowed, else a hidden textarea). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // Permission refused: fall through to the selection fallback.
  }
  const ta = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  const host = document.activeElement?.closest?.('dialog') || document.body;
  host.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  ta.remove();
  return ok;
}
