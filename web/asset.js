// One asset: its context menu (visibility, Copy URL, rename, download, delete) and the open
// view (preview, Copy URL, signed curl command for protected assets, text editing).

import { h, replace, field, errorBox, openDialog, confirmDialog, toast, icon, formatBytes, formatDate, copyText } from './dom.js';
import { sizeProblem } from './api.js';
import { assetUrl, normalizePath, pathProblem } from './urls.js';
import { signUrl, curlCommand, shellQuote, hasWebCrypto } from './sign.js';
import { pathOf, envName, visIcon } from './names.js';

/** Size and type of version bytes, by version SID (versions are immutable). */
const infoCache = new Map();

/** `{size, type}` of a version, from the cache or a HEAD of its content. */
export async function cachedInfo(api, S, A, V) {
  if (!infoCache.has(V)) {
    infoCache.set(V, api.contentInfo(S, A, V).catch((e) => {
      infoCache.delete(V);
      throw e;
    }));
  }
  return infoCache.get(V);
}

/** Records an uploaded version: its size and type, so that no HEAD is needed for them. */
export function rememberVersion(v, size, type) {
  infoCache.set(v.sid, Promise.resolve({ size, type }));
}

/** The newest of an asset's versions: the API lists them oldest first, in creation order. */
export function latestVersion(versions) {
  return versions.length ? versions[versions.length - 1] : null;
}

const VIS = ['public', 'protected', 'private'];

/** The context-menu entries of an asset row. */
export function assetMenuItems(view, row) {
  const vis = row.latest ? row.latest.visibility : null;
  const items = [{ label: 'Open', onSelect: () => openAssetDialog(view, row) }];
  if (row.latest && vis !== 'private') {
    items.push({ label: 'Copy URL', onSelect: () => copyUrl(view, row) });
  }
  if (vis === 'protected') {
    items.push({ label: 'Copy signed curl command', onSelect: () => copySignedCurl(view, row) });
    items.push({ label: 'Share link…', onSelect: () => shareDialog(view, row) });
  }
  items.push('separator');
  if (row.latest) {
    for (const v of VIS) {
      if (v !== vis) items.push({ label: `Make ${v}`, onSelect: () => setVisibility(view, row, v) });
    }
  }
  items.push({ label: 'Rename path…', onSelect: () => renameDialog(view, row), disabled: !row.latest });
  if (row.latest) items.push({ label: 'Download', onSelect: () => download(view, row) });
  items.push('separator');
  items.push({ label: 'Delete…', danger: true, onSelect: () => deleteAsset(view, row) });
  return items;
}

function urlOf(view, row) {
  return view.env ? assetUrl(view.env, pathOf(row)) : null;
}

/**
 * Confirms a copy on the button that did it ("Copied" for two seconds) and in a status
 * region for screen readers, instead of a toast over the dialog.
 */
function confirmOnButton(button, status, message) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  replace(button, icon('check'), 'Copied');
  status.textContent = message;
  clearTimeout(button.copiedTimer);
  button.copiedTimer = setTimeout(() => {
    button.textContent = label;
    status.textContent = '';
  }, 2000);
}

/** Copies the asset's URL; feedback on `button` (+ `status`) when given, else a toast. */
async function copyUrl(view, row, button = null, status = null) {
  const url = urlOf(view, row);
  if (!url) {
    toast('Create an environment first: asset URLs belong to an environment.', 'error');
    return;
  }
  const ok = await copyText(url);
  if (ok && button) {
    confirmOnButton(button, status, 'Copied the URL to the clipboard.');
    return;
  }
  const note = view.statusOf(row) === 'deployed' ? '' : ` It is not live in ${envName(view.env)} until you Deploy All.`;
  toast(ok ? `Copied the URL.${note}` : 'Could not copy to the clipboard; copy it from here:', ok ? 'success' : 'error', { detail: url, timeout: 8000 });
}

/** The signed curl command for a protected asset, or explains why there is none. */
async function signedCommand(view, row) {
  const url = urlOf(view, row);
  if (!url) return { error: 'Create an environment first: asset URLs belong to an environment.' };
  if (!view.api.hasAuthToken) {
    return {
      error: 'Signing needs the account\'s auth token, and this session uses an API key. On the server, run:',
      command: `assetd sign ${shellQuote(url)} --data DATADIR`,
    };
  }
  const sig = await signUrl(view.api.secret, url);
  return { command: curlCommand(url, sig), url, signature: sig };
}

async function copySignedCurl(view, row, button = null, status = null) {
  const s = await signedCommand(view, row);
  if (s.error) {
    toast(s.error, 'error', { detail: s.command || null, timeout: 12000 });
    return;
  }
  const ok = await copyText(s.command);
  if (ok && button) {
    confirmOnButton(button, status, 'Copied the signed curl command to the clipboard.');
    return;
  }
  toast(ok ? 'Copied the signed curl command.' : 'Could not copy to the clipboard; copy it from here:', ok ? 'success' : 'error', { detail: s.command, timeout: 8000 });
}

/** Lifetimes offered for a share link (the server refuses more than its maximum, 7 days by default). */
const SHARE_TTLS = [
  ['1 hour', 3600],
  ['1 day', 86400],
  ['7 days', 7 * 86400],
];

/**
 * The "Share link" dialog of a protected asset: pick how long the link works, create it (the
 * server signs it with the account's token, so this works with an API key too), copy it.
 * Anyone with the link can open the file until it expires; promoting a new auth token
 * revokes every link.
 */
function shareDialog(view, row) {
  const url = urlOf(view, row);
  if (!url) {
    toast('Create an environment first: asset URLs belong to an environment.', 'error');
    return;
  }
  const path = pathOf(row);
  const ttl = h('select', { id: 'share-ttl', name: 'ttl' },
    SHARE_TTLS.map(([label, secs], i) => h('option', { value: String(secs), selected: i === 1 }, label)));
  const out = h('input', { readonly: true, id: 'share-url', class: 'mono', 'aria-label': 'Share link', placeholder: 'Create a link first' });
  out.addEventListener('focus', () => out.select());
  const expires = h('p', { class: 'hint', id: 'share-expires', role: 'status' });
  const err = errorBox();
  const copied = h('span', { class: 'visually-hidden', role: 'status' });
  const create = h('button', { type: 'button', class: 'btn btn-primary', id: 'share-create' }, 'Create link');
  const copy = h('button', { type: 'button', class: 'btn', id: 'share-copy', disabled: true }, 'Copy link');
  let closeFn;
  const close = h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Close');
  create.addEventListener('click', async () => {
    create.disabled = true;
    err.show(null);
    try {
      const r = await view.api.shareLink(url, Number(ttl.value));
      out.value = r.url;
      expires.textContent = `Anyone with this link can open ${path} until ${formatDate(r.date_expires)}.`;
      copy.disabled = false;
      copy.focus();
    } catch (e) {
      err.show(`Cannot create a share link: ${e.message}`);
    }
    create.disabled = false;
  });
  copy.addEventListener('click', async () => {
    if (await copyText(out.value)) confirmOnButton(copy, copied, 'Copied the share link to the clipboard.');
    else toast('Could not copy to the clipboard; copy it from the field.', 'error');
  });
  ttl.addEventListener('change', () => {
    out.value = '';
    expires.textContent = '';
    copy.disabled = true;
  });
  openDialog({
    title: `Share ${path}`,
    actions: [close],
    build: (_d, c) => {
      closeFn = c;
      return h('div', { class: 'share' },
        h('p', { class: 'muted small' }, 'A link that opens this protected file in any browser, without a signature header, until it expires. Rotating the auth token revokes it.'),
        field('Link works for', ttl),
        h('div', { class: 'url-row' }, field('Link', out), create, copy),
        expires, err, copied);
    },
  });
}

/** Uploads `blob` as a new version of the row's asset; returns the version. */
async function newVersion(view, row, { path, visibility, blob, onProgress = null }) {
  const v = await view.api.uploadVersion(view.service.sid, row.asset.sid, { path, visibility, blob, filename: path.split('/').pop() || 'index' }, { onProgress });
  rememberVersion(v, blob.size, blob.type);
  return v;
}

async function setVisibility(view, row, visibility) {
  const path = pathOf(row);
  const size = row.info ? row.info.size : null;
  const problem = size !== null ? sizeProblem(path, size, visibility) : null;
  if (problem) {
    toast(`Cannot make ${path} ${visibility}: ${problem}.`, 'error', { timeout: 10000 });
    return;
  }
  const note = toast(`Making ${path} ${visibility}…`, 'info', { timeout: 0 });
  try {
    const blob = await view.api.content(view.service.sid, row.asset.sid, row.latest.sid);
    await newVersion(view, row, { path, visibility, blob });
    note.remove();
    toast(`${path} is now ${visibility}. Deploy All to apply it to ${view.env ? envName(view.env) : 'an environment'}.`, 'success', { tag: 'undeployed' });
    await view.refresh();
    focusRow(view, path);
  } catch (e) {
    note.remove();
    toast(`Cannot change the visibility of ${path}: ${e.message}`, 'error', { timeout: 10000 });
  }
}

function focusRow(view, path) {
  const li = view.rowElement(path);
  if (li) li.querySelector('.row-menu').focus();
}

function renameDialog(view, row) {
  const old = pathOf(row);
  const input = h('input', { name: 'path', value: old, required: true, maxlength: '255', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', autofocus: true });
  const err = errorBox();
  let closeFn;
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: 'rename-form' }, 'Rename');
  const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Cancel');
  openDialog({
    title: `Rename ${old}`,
    actions: [cancel, submit],
    build: (_d, close) => {
      closeFn = close;
      const form = h('form', { id: 'rename-form', novalidate: true },
        field('New path', input, 'The asset keeps its history; the new path is live after the next Deploy All. Use / or /assets/index.html to serve it at the root URL.'),
        err);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const path = normalizePath(input.value);
        const problem = pathProblem(path);
        if (problem) { err.show(problem); input.focus(); return; }
        if (path === old) { close(); return; }
        if (view.byPath().has(path)) { err.show(`Another asset already has the path ${path}.`); input.focus(); return; }
        submit.disabled = true;
        err.show(null);
        const S = view.service.sid;
        let renamed = false;
        try {
          const blob = await view.api.content(S, row.asset.sid, row.latest.sid);
          await view.api.renameAsset(S, row.asset.sid, path);
          renamed = true;
          await newVersion(view, row, { path, visibility: row.latest.visibility, blob });
          close(path);
          toast(`Renamed ${old} to ${path}. Deploy All to apply it.`, 'success', { tag: 'undeployed' });
          await view.refresh();
          focusRow(view, path);
        } catch (ex) {
          if (renamed) await view.api.renameAsset(S, row.asset.sid, row.asset.friendly_name).catch(() => null);
          err.show(ex.message);
          submit.disabled = false;
        }
      });
      return form;
    },
  });
}

async function download(view, row) {
  const path = pathOf(row);
  try {
    const blob = await view.api.content(view.service.sid, row.asset.sid, row.latest.sid);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: path.split('/').pop() || 'index', class: 'visually-hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    toast(`Cannot download ${path}: ${e.message}`, 'error', { timeout: 10000 });
  }
}

async function deleteAsset(view, row) {
  const path = pathOf(row);
  const S = view.service.sid;
  // Environments whose active build holds a version of this asset: the API refuses to delete
  // it while that is so, so the console first deploys each of them without it.
  let live = [];
  try {
    const envs = await view.api.environments(S);
    const mine = new Set(row.versions.map((v) => v.sid));
    for (const e of envs) {
      if (!e.build_sid) continue;
      const b = await view.getBuild(e.build_sid);
      const keep = b.asset_versions.filter((v) => !mine.has(v.sid));
      if (keep.length !== b.asset_versions.length) live.push({ env: e, keep });
    }
  } catch (e) {
    toast(`Cannot delete ${path}: ${e.message}`, 'error', { timeout: 10000 });
    return;
  }
  const only = live.find((l) => !l.keep.length);
  if (only) {
    toast(`Cannot delete ${path}: it is the only asset live in ${envName(only.env)}. Deploy other assets there first, or delete that environment.`, 'error', { timeout: 12000 });
    return;
  }
  const message = [
    h('p', {}, 'Delete ', h('code', {}, path), ' and all its versions?'),
    h('p', { class: 'muted' }, 'Builds never change: an older build that holds it keeps it, so rolling back to one of those serves it again.'),
  ];
  if (live.length) {
    message.push(h('p', {}, `It is live in ${live.map((l) => envName(l.env)).join(', ')}. Deleting it removes it from there now: each of those environments gets a new deployment of what it serves today, without this asset.`));
  }
  const ok = await confirmDialog({ title: 'Delete asset?', message, confirm: 'Delete asset', danger: true });
  if (!ok) return;
  try {
    for (const l of live) {
      const b = await view.api.createCompletedBuild(S, l.keep.map((v) => v.sid));
      await view.api.deploy(S, l.env.sid, b.sid);
    }
    await view.api.deleteAsset(S, row.asset.sid);
    toast(`Deleted ${path}.`, 'success');
  } catch (e) {
    toast(`Cannot delete ${path}: ${e.message}`, 'error', { timeout: 10000 });
  }
  await view.refresh();
  const first = view.list.querySelector('.asset-path');
  if (first) first.focus();
}

// ---- The open view --------------------------------------------------------------------------------

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|ecmascript|x-javascript|ld\+json|manifest\+json)|application\/[\w.+-]+\+(json|xml))/;
/** Largest text shown in the editor. */
const MAX_EDIT = 1024 * 1024;

/** Opens the asset: details, URL, signed command (protected), preview or text editor. */
export function openAssetDialog(view, row) {
  const path = pathOf(row);
  if (!row.latest) {
    toast(`${path} has no content yet: upload a file to it.`, 'error');
    return;
  }
  const v = row.latest;
  const status = view.statusOf(row);
  const url = urlOf(view, row);
  const preview = h('div', { class: 'preview', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading preview…'));
  const blobUrls = [];
  const footer = [];
  const save = h('button', { type: 'button', class: 'btn btn-primary', id: 'save-version', hidden: true }, 'Save new version');
  footer.push(h('button', { type: 'button', class: 'btn', autofocus: v.visibility === 'private', onclick: () => download(view, row) }, 'Download'), save);
  let closeFn;
  footer.push(h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Close'));

  const sections = [];
  const copied = h('span', { class: 'visually-hidden', role: 'status' });
  sections.push(copied);
  sections.push(h('dl', { class: 'facts facts-grid' },
    h('div', {}, h('dt', {}, 'Visibility'), h('dd', {}, h('span', { class: `badge vis-${v.visibility}` }, visIcon(v.visibility), v.visibility))),
    h('div', {}, h('dt', {}, 'Size'), h('dd', {}, row.info ? formatBytes(row.info.size) : '—')),
    h('div', {}, h('dt', {}, 'Type'), h('dd', {}, h('code', {}, row.info && row.info.type ? row.info.type : '—'))),
    h('div', {}, h('dt', {}, view.env ? `In ${envName(view.env)}` : 'Status'), h('dd', {},
      status === 'deployed' ? h('span', { class: 'ok' }, icon('check', 'st-deployed'), ' Deployed') : h('span', {}, icon('circle', 'st-changed'), ' Not deployed'))),
    h('div', { class: 'wide' }, h('dt', {}, 'Version'), h('dd', {}, h('code', { class: 'sid' }, v.sid))),
    h('div', { class: 'wide' }, h('dt', {}, 'Updated'), h('dd', {}, formatDate(v.date_created)))));

  if (v.visibility === 'private') {
    sections.push(h('p', { class: 'note' }, icon('eyeoff'), ' Private assets have no URL: they answer 404 over HTTP. Your code gets them through the API (Download, or the build\'s private-asset bundle).'));
  } else if (url) {
    const urlInput = h('input', { readonly: true, value: url, id: 'asset-url', class: 'mono' });
    urlInput.addEventListener('focus', () => urlInput.select());
    sections.push(h('div', { class: 'url-row' },
      field('URL', urlInput, status === 'deployed' ? null : `Not live in ${envName(view.env)} until you Deploy All.`),
      h('button', { type: 'button', class: 'btn', id: 'copy-url', autofocus: true, onclick: (e) => copyUrl(view, row, e.currentTarget, copied) }, 'Copy URL')));
  } else {
    sections.push(h('p', { class: 'note' }, 'Create an environment to give this asset a URL.'));
  }
  if (v.visibility === 'protected' && url) {
    const out = h('textarea', { readonly: true, id: 'signed-curl', class: 'mono', rows: '3', 'aria-label': 'Signed curl command' });
    const msg = h('p', { class: 'hint' });
    const copyBtn = h('button', { type: 'button', class: 'btn', id: 'copy-curl' }, 'Copy signed curl command');
    sections.push(h('div', { class: 'signed' },
      h('h3', { class: 'h4' }, 'Signed request'),
      h('p', { class: 'muted small' }, 'Protected assets answer 403 without a valid X-Twilio-Signature. This command carries one, computed here with your auth token',
        hasWebCrypto() ? ' (WebCrypto).' : ' (built-in HMAC-SHA1; this page is not a secure context).'),
      out, msg, copyBtn));
    signedCommand(view, row).then((s) => {
      out.value = s.command || '';
      if (s.error) msg.textContent = s.error;
    }).catch((e) => { msg.textContent = `Cannot sign: ${e.message}`; });
    copyBtn.addEventListener('click', () => copySignedCurl(view, row, copyBtn, copied));
  }
  sections.push(h('h3', { class: 'h4' }, 'Preview'), preview);

  const S = view.service.sid;
  const loadPreview = async () => {
    let blob;
    try {
      blob = await view.api.content(S, row.asset.sid, v.sid);
    } catch (e) {
      replace(preview, h('p', { class: 'alert alert-error', role: 'alert' }, `Cannot load the content: ${e.message}`));
      return;
    }
    preview.removeAttribute('aria-busy');
    const type = (blob.type || (row.info && row.info.type) || '').toLowerCase();
    const objectUrl = () => { const u = URL.createObjectURL(blob); blobUrls.push(u); return u; };
    if (type.startsWith('image/')) {
      replace(preview, h('img', { src: objectUrl(), alt: `Preview of ${path}`, class: 'preview-img' }));
    } else if (type.startsWith('audio/')) {
      replace(preview, h('audio', { src: objectUrl(), controls: true, preload: 'metadata', 'aria-label': `Play ${path}` }));
    } else if (type.startsWith('video/')) {
      replace(preview, h('video', { src: objectUrl(), controls: true, preload: 'metadata', class: 'preview-img', 'aria-label': `Play ${path}` }));
    } else if (TEXT_TYPES.test(type) || (!type && blob.size < MAX_EDIT)) {
      if (blob.size > MAX_EDIT) {
        replace(preview, h('p', { class: 'muted' }, `This text is ${formatBytes(blob.size)}; it is too large to show here. Use Download.`));
        return;
      }
      const text = await blob.text();
      const editor = h('textarea', { class: 'editor mono', id: 'asset-editor', spellcheck: 'false', rows: '14', 'aria-label': `Content of ${path}` });
      editor.value = text;
      const err = errorBox();
      replace(preview, editor, err);
      save.hidden = false;
      save.disabled = true;
      editor.addEventListener('input', () => { save.disabled = editor.value === text; });
      save.addEventListener('click', async () => {
        const body = editor.value;
        if (/json/.test(type)) {
          try { JSON.parse(body); } catch (e) { err.show(`Not valid JSON: ${e.message}`); return; }
        }
        const newBlob = new Blob([body], { type: blob.type || 'text/plain' });
        const problem = sizeProblem(path, newBlob.size, v.visibility);
        if (problem) { err.show(problem); return; }
        save.disabled = true;
        save.textContent = 'Saving…';
        try {
          await newVersion(view, row, { path, visibility: v.visibility, blob: newBlob });
          closeFn();
          toast(`Saved a new version of ${path}. Deploy All to make it live.`, 'success', { tag: 'undeployed' });
          await view.refresh();
          focusRow(view, path);
        } catch (e) {
          err.show(e.message);
          save.disabled = false;
          save.textContent = 'Save new version';
        }
      });
    } else {
      replace(preview, h('p', { class: 'muted' }, `No preview for ${type || 'this type'}. Use Download to get the file.`));
    }
  };

  openDialog({
    title: path,
    wide: true,
    actions: footer,
    build: (_d, close) => {
      closeFn = close;
      return h('div', { class: 'asset-view' }, sections);
    },
  }).then(() => {
    for (const u of blobUrls) URL.revokeObjectURL(u);
  });
  loadPreview();
}

