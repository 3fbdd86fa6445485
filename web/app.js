// The console's entry point: session (sessionStorage only), sign-in, top bar and the
// hash router (#/ = services, #/services/{sid}?env={ZE…}&tab=assets|history).

import { h, replace, field, errorBox, toast } from './dom.js';
import { Api, signIn } from './api.js';
import { renderServices } from './services.js';
import { renderService } from './service.js';

const SESSION_KEY = 'assetd.session';
const main = document.getElementById('main');
const account = document.getElementById('account');

let api = restore();
/** Increases on every navigation; a view drops late async results of an older one. */
let generation = 0;

function restore() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (s && typeof s.user === 'string' && typeof s.secret === 'string') return watch(new Api(s.user, s.secret));
  } catch (_) {
    sessionStorage.removeItem(SESSION_KEY);
  }
  return null;
}

function watch(a) {
  a.onUnauthorized = (err) => {
    // The token was rotated or the account suspended while signed in.
    signOut(err.message);
  };
  return a;
}

function signOut(message = null) {
  sessionStorage.removeItem(SESSION_KEY);
  api = null;
  for (const d of document.querySelectorAll('dialog')) d.close();
  route(message);
}

/** Navigates to a hash route (`#/…`). */
export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderAccount() {
  if (!api) {
    account.replaceChildren();
    return;
  }
  const kind = api.user.startsWith('SK') ? 'API key' : 'Account';
  replace(account,
    h('span', { class: 'account-id', title: `${kind} ${api.user}` },
      h('span', { class: 'account-kind' }, kind), ' ', h('code', {}, shortSid(api.user))),
    h('button', { type: 'button', class: 'btn btn-topbar', id: 'sign-out', onclick: () => signOut() }, 'Sign out'));
}

function shortSid(sid) {
  return sid.length > 14 ? `${sid.slice(0, 6)}…${sid.slice(-4)}` : sid;
}

function renderSignIn(message) {
  document.title = 'Sign in · assetd';
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, spellcheck: 'false', autocapitalize: 'off', placeholder: 'AC… or SK…', autofocus: true });
  const secret = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, placeholder: 'Auth token or API key secret' });
  const err = errorBox();
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const form = h('form', { class: 'signin-form', novalidate: true },
    field('Account SID or API key SID', user),
    field('Auth token or API key secret', secret, 'Kept in this browser tab only (session storage), sent as HTTP Basic auth, cleared on sign out.'),
    err, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const u = user.value.trim();
    const s = secret.value.trim();
    if (!/^(AC|SK)[0-9a-fA-F]{32}$/.test(u)) {
      err.show('Enter an Account SID (AC followed by 32 hex digits) or an API key SID (SK…).');
      user.focus();
      return;
    }
    if (!s) {
      err.show('Enter the auth token (or the API key secret).');
      secret.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    err.show(null);
    try {
      api = watch(await signIn(u, s));
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ user: u, secret: s }));
      route();
    } catch (ex) {
      err.show(ex.message);
      submit.disabled = false;
      submit.textContent = 'Sign in';
      secret.select();
      secret.focus();
    }
  });
  const notice = message ? h('div', { class: 'alert alert-error', role: 'alert' }, message) : null;
  replace(main, h('section', { class: 'signin' },
    h('div', { class: 'signin-card card' },
      h('h1', {}, 'Sign in to assetd'),
      h('p', { class: 'muted' }, 'Use the Account SID and auth token that ', h('code', {}, 'assetd serve'), ' printed on its first start (', h('code', {}, 'assetd account'), ' prints them again while the server is stopped), or an API key.'),
      notice, form)));
  user.focus();
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || '') };
}

function route(message = null) {
  const first = generation === 0;
  generation += 1;
  const gen = generation;
  renderAccount();
  if (!api) {
    renderSignIn(message);
    return;
  }
  const ctx = {
    api,
    alive: () => gen === generation,
    navigate,
  };
  const { parts, query } = parseHash();
  if (parts[0] === 'services' && parts[1]) {
    renderService(main, ctx, parts[1], { env: query.get('env'), tab: query.get('tab') || 'assets' });
  } else {
    renderServices(main, ctx);
  }
  // A new view: move focus to it, so keyboard and screen-reader users start there.
  if (!first) main.focus();
  if (message) toast(message, 'error');
}

window.addEventListener('hashchange', () => route());
window.addEventListener('unhandledrejection', (e) => {
  // Every action catches its own errors; this only makes a surprise visible on the page too.
  toast(`Unexpected error: ${e.reason && e.reason.message ? e.reason.message : e.reason}`, 'error');
});
route();
