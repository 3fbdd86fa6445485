// Add+: Upload File(s) (file dialog or drag-and-drop, visibility per file, removal before
// upload, a progress bar per file) and New Asset (a small editor for JSON, HTML, TwiML, …).

import { h, replace, field, errorBox, openDialog, toast, icon, formatBytes } from './dom.js';
import { LIMITS, MB, sizeProblem, sizeText, limitText } from './api.js';
import { normalizePath, pathProblem } from './urls.js';
import { rememberVersion } from './asset.js';

const VISIBILITIES = [['public', 'Public'], ['protected', 'Protected'], ['private', 'Private']];
/** Twilio's console uploads as protected unless told otherwise. */
const DEFAULT_VISIBILITY = 'protected';

function visibilitySelect(value, attrs = {}) {
  return h('select', attrs, VISIBILITIES.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

/** `/name` with the characters asset paths refuse replaced by `-`. */
function pathFromName(name) {
  return `/${name.replace(/[#;,?:@+&$()'"\\\s]+/g, '-').replace(/^-+|-+$/g, '') || 'file'}`;
}

/** Creates the asset when no asset has `path` yet, then uploads one version into it. */
async function uploadOne(view, { path, visibility, blob, filename }, { onProgress, signal, known = null } = {}) {
  const S = view.service.sid;
  const existing = view.byPath().get(path);
  let asset = existing ? existing.asset : (known && known.get(path)) || null;
  let created = false;
  if (!asset) {
    asset = await view.api.createAsset(S, path);
    created = true;
    if (known) known.set(path, asset);
  }
  try {
    const v = await view.api.uploadVersion(S, asset.sid, { path, visibility, blob, filename }, { onProgress, signal });
    rememberVersion(v, blob.size, blob.type);
    return v;
  } catch (e) {
    // Leave no empty asset behind for a failed first upload.
    if (created) {
      await view.api.deleteAsset(S, asset.sid).catch(() => null);
      if (known) known.delete(path);
    }
    throw e;
  }
}

/**
 * The visibility a file starts with: the existing asset's when it replaces one (a new version
 * of a public file must not quietly become protected), else Twilio's default; public when the
 * file is too large to be private.
 */
function initialVisibility(view, file) {
  const row = view.byPath().get(normalizePath(pathFromName(file.name)));
  const current = row && row.latest ? row.latest.visibility : null;
  if (current && !(current === 'private' && file.size > LIMITS.private)) return current;
  return file.size > LIMITS.private ? 'public' : DEFAULT_VISIBILITY;
}

/** The Upload File(s) dialog, optionally starting with dropped `files`. */
export function openUploadDialog(view, files) {
  const entries = [];
  /** Assets this dialog created, by path (so a second file with that path adds a version). */
  const known = new Map();
  let uploading = false;
  let uploadedAny = false;
  let controller = null;
  let closeFn;
  const err = errorBox();
  const list = h('ul', { class: 'upload-list', 'aria-label': 'Files to upload' });
  const input = h('input', { type: 'file', multiple: true, id: 'upload-input', class: 'file-input' });
  const submit = h('button', { type: 'button', class: 'btn btn-primary', id: 'upload-start', disabled: true }, 'Upload');
  const cancel = h('button', { type: 'button', class: 'btn', id: 'upload-cancel' }, 'Cancel');

  const refused = [];
  const add = (fileList) => {
    refused.length = 0;
    for (const file of fileList) {
      if (file.size > LIMITS.public) {
        const text = sizeText(file.size, LIMITS.public);
        refused.push(`${file.name} is ${text}; assets are limited to ${limitText(LIMITS.public, text.endsWith('bytes'))} (private: ${limitText(LIMITS.private)}). It was not added.`);
        continue;
      }
      entries.push(makeEntry(file));
    }
    render();
    if (refused.length) err.show(refused.join(' '));
  };

  const makeEntry = (file) => {
    const e = { file, state: 'pending' };
    e.path = h('input', { value: pathFromName(file.name), spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', class: 'upload-path', 'aria-label': `Path for ${file.name}` });
    e.vis = visibilitySelect(initialVisibility(view, file), { class: 'upload-vis', 'aria-label': `Visibility for ${file.name}` });
    e.remove = h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Remove ${file.name}` }, icon('close'));
    e.progress = h('progress', { max: '100', value: '0', 'aria-label': `Upload progress of ${file.name}`, hidden: true });
    e.msg = h('p', { class: 'row-msg' });
    e.li = h('li', { class: 'upload-row', dataset: { name: file.name } },
      h('div', { class: 'upload-file' }, icon('file'), h('span', { class: 'file-name' }, file.name), h('span', { class: 'muted small' }, formatBytes(file.size))),
      h('div', { class: 'upload-controls' }, e.path, e.vis, e.remove),
      e.progress, e.msg);
    e.path.addEventListener('input', validate);
    e.vis.addEventListener('change', validate);
    e.remove.addEventListener('click', () => {
      const i = entries.indexOf(e);
      entries.splice(i, 1);
      render();
      const next = entries[Math.min(i, entries.length - 1)];
      (next ? next.remove : input).focus();
    });
    return e;
  };

  /** Marks problems per file; Upload is enabled only when there are none. */
  function validate() {
    const seen = new Map();
    let problems = 0;
    for (const e of entries) {
      if (e.state === 'done') continue;
      const path = normalizePath(e.path.value);
      let problem = pathProblem(path) || sizeProblem(e.file.name, e.file.size, e.vis.value);
      if (!problem && seen.has(path)) problem = `${seen.get(path)} already uses the path ${path}.`;
      seen.set(path, e.file.name);
      let note = null;
      if (!problem && (view.byPath().has(path) || known.has(path))) note = `Replaces the content of the existing asset ${path} (a new version).`;
      e.li.classList.toggle('has-error', !!problem);
      e.path.setAttribute('aria-invalid', problem ? 'true' : 'false');
      if (e.state !== 'error' || problem) {
        e.msg.textContent = problem || note || '';
        e.msg.className = `row-msg${problem ? ' error' : ''}`;
      }
      if (problem) problems += 1;
    }
    const pending = entries.filter((e) => e.state !== 'done').length;
    submit.disabled = uploading || !pending || problems > 0;
    submit.textContent = pending > 1 ? `Upload ${pending} files` : 'Upload';
  }

  function render() {
    replace(list, entries.map((e) => e.li));
    list.hidden = !entries.length;
    validate();
  }

  input.addEventListener('change', () => {
    add([...input.files]);
    input.value = '';
  });

  const zone = h('div', { class: 'dropzone' },
    icon('upload', 'dropzone-icon'),
    h('p', {}, 'Drag files here, or'),
    input,
    h('label', { for: 'upload-input', class: 'btn' }, 'Choose files'),
    h('p', { class: 'hint' }, `Up to ${LIMITS.public / MB} MB per file (private: ${LIMITS.private / MB} MB). Uploaded assets are live after Deploy All.`));
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('dragging');
    if (!uploading && ev.dataTransfer) add([...ev.dataTransfer.files]);
  });

  cancel.addEventListener('click', () => {
    if (uploading && controller) controller.abort();
    else closeFn();
  });

  submit.addEventListener('click', async () => {
    uploading = true;
    controller = new AbortController();
    submit.disabled = true;
    cancel.textContent = 'Stop';
    input.disabled = true;
    err.show(null);
    let ok = 0;
    let failed = 0;
    for (const e of entries) {
      if (e.state === 'done') continue;
      if (controller.signal.aborted) break;
      e.state = 'uploading';
      e.path.disabled = true;
      e.vis.disabled = true;
      e.remove.disabled = true;
      e.progress.hidden = false;
      e.progress.value = 0;
      e.msg.className = 'row-msg';
      e.msg.textContent = 'Uploading…';
      const path = normalizePath(e.path.value);
      try {
        await uploadOne(view, { path, visibility: e.vis.value, blob: e.file, filename: e.file.name }, {
          signal: controller.signal,
          known,
          onProgress: (loaded, total) => {
            e.progress.value = Math.round((loaded / total) * 100);
            e.msg.textContent = `Uploading… ${formatBytes(loaded)} of ${formatBytes(total)}`;
          },
        });
        e.state = 'done';
        e.progress.value = 100;
        e.msg.textContent = 'Uploaded';
        e.li.classList.add('done');
        ok += 1;
        uploadedAny = true;
      } catch (ex) {
        e.state = 'error';
        e.msg.className = 'row-msg error';
        e.msg.textContent = ex.message;
        e.path.disabled = false;
        e.vis.disabled = false;
        e.remove.disabled = false;
        failed += 1;
      }
    }
    uploading = false;
    input.disabled = false;
    cancel.textContent = 'Cancel';
    const pending = entries.filter((e) => e.state !== 'done');
    if (!failed && !pending.length) {
      closeFn(true);
      toast(`Uploaded ${ok} file${ok === 1 ? '' : 's'}. Deploy All to make ${ok === 1 ? 'it' : 'them'} live.`, 'success', { tag: 'undeployed' });
      return;
    }
    for (let i = entries.length - 1; i >= 0; i -= 1) if (entries[i].state === 'done') entries.splice(i, 1);
    render();
    for (const e of entries) if (e.state === 'error') e.li.classList.add('has-error');
    err.show(controller.signal.aborted
      ? `Stopped. ${ok} file${ok === 1 ? '' : 's'} uploaded; the rest are still listed.`
      : `${failed} file${failed === 1 ? '' : 's'} could not be uploaded; see the messages above. ${ok ? `${ok} uploaded.` : ''}`);
  });

  openDialog({
    title: 'Upload files',
    wide: true,
    actions: [cancel, submit],
    build: (dialog, close) => {
      closeFn = close;
      dialog.addEventListener('cancel', (ev) => {
        // Escape while uploading stops the upload first; a second Escape closes.
        if (uploading) {
          ev.preventDefault();
          if (controller) controller.abort();
        }
      });
      // Twilio's default, said where it is chosen: a newcomer's first protected file answers 403.
      const hint = h('p', { class: 'muted', id: 'upload-visibility-hint' },
        'New files start Protected, as in Twilio\'s console: they answer 403 without an X-Twilio-Signature. Choose Public for files anyone may fetch.');
      return h('div', { class: 'upload' }, zone, hint, list, err);
    },
  }).then(() => {
    if (uploadedAny) view.refresh();
  });
  if (files.length) add(files);
  else render();
}

// ---- New Asset -----------------------------------------------------------------------------------

const KINDS = {
  json: { label: 'JSON', type: 'application/json', path: '/config.json', template: '{\n  "greeting": "Ahoy!"\n}\n' },
  html: {
    label: 'HTML', type: 'text/html; charset=utf-8', path: '/index.html',
    template: '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <meta name="viewport" content="width=device-width, initial-scale=1">\n  <title>Hello</title>\n</head>\n<body>\n  <h1>Ahoy!</h1>\n</body>\n</html>\n',
  },
  twiml: { label: 'TwiML', type: 'text/xml', path: '/response.xml', template: '<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  <Say>Ahoy from assetd!</Say>\n</Response>\n' },
  text: { label: 'Plain text', type: 'text/plain; charset=utf-8', path: '/notes.txt', template: '' },
  css: { label: 'CSS', type: 'text/css; charset=utf-8', path: '/style.css', template: 'body {\n  font-family: system-ui, sans-serif;\n}\n' },
  js: { label: 'JavaScript', type: 'text/javascript; charset=utf-8', path: '/script.js', template: '' },
};

/**
 * Why `text` is not well-formed XML, or null: one root element, tags nested and closed,
 * attributes quoted, `&` only in entity or character references. (DOMParser is not used: on
 * bad input Chromium builds an error page with inline styles, which the console's CSP refuses.)
 */
export function xmlProblem(text) {
  const stack = [];
  let roots = 0;
  let i = 0;
  const name = /^[A-Za-z_:][\w.:-]*/;
  const line = (at) => text.slice(0, at).split('\n').length;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    const amp = chunk.search(/&(?!(?:[A-Za-z_][\w.-]*|#\d+|#x[0-9A-Fa-f]+);)/);
    if (amp >= 0) return `a bare "&" on line ${line(i + amp)} (write &amp;)`;
    if (chunk.trim() && !stack.length) return `text outside the root element on line ${line(i)}`;
    if (lt < 0) break;
    const rest = text.slice(lt);
    let end;
    if (rest.startsWith('<?')) {
      end = text.indexOf('?>', lt);
      if (end < 0) return `an unclosed "<?" on line ${line(lt)}`;
      i = end + 2;
      continue;
    }
    if (rest.startsWith('<!--')) {
      end = text.indexOf('-->', lt);
      if (end < 0) return `an unclosed comment on line ${line(lt)}`;
      i = end + 3;
      continue;
    }
    if (rest.startsWith('<![CDATA[')) {
      end = text.indexOf(']]>', lt);
      if (end < 0 || !stack.length) return `a misplaced or unclosed CDATA section on line ${line(lt)}`;
      i = end + 3;
      continue;
    }
    if (rest.startsWith('<!DOCTYPE')) {
      end = text.indexOf('>', lt);
      if (end < 0 || roots) return `a misplaced DOCTYPE on line ${line(lt)}`;
      i = end + 1;
      continue;
    }
    const m = rest.match(/^<(\/?)([^\s/>]*)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/);
    if (!m || !name.test(m[2]) || m[2].match(name)[0] !== m[2]) return `a malformed tag on line ${line(lt)}`;
    const [whole, closing, tag, , selfClosing] = m;
    if (closing) {
      if (selfClosing) return `a malformed closing tag </${tag}> on line ${line(lt)}`;
      const open = stack.pop();
      if (open !== tag) return open ? `</${tag}> on line ${line(lt)} closes <${open}>` : `</${tag}> on line ${line(lt)} closes nothing`;
    } else {
      if (!stack.length) {
        roots += 1;
        if (roots > 1) return `a second root element <${tag}> on line ${line(lt)}`;
      }
      if (!selfClosing) stack.push(tag);
    }
    i = lt + whole.length;
  }
  if (stack.length) return `<${stack[stack.length - 1]}> is never closed`;
  if (!roots) return 'there is no element';
  return null;
}

/** Why `text` is not valid for `kind` (JSON and TwiML are parsed), or null. */
function contentProblem(kind, text) {
  if (kind === 'json') {
    try { JSON.parse(text); } catch (e) { return `The content is not valid JSON: ${e.message}`; }
  }
  if (kind === 'twiml') {
    const problem = xmlProblem(text);
    if (problem) return `The content is not well-formed XML: ${problem}`;
    const root = text.replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>/g, '').trim().match(/^<([A-Za-z_][\w.:-]*)/);
    if (!root || root[1] !== 'Response') return 'TwiML needs a <Response> root element.';
  }
  return null;
}

/** The New Asset dialog: path, type, visibility and content. */
export function openEditorDialog(view) {
  let kind = 'json';
  const kindSel = h('select', { id: 'new-kind' }, Object.entries(KINDS).map(([k, v]) => h('option', { value: k }, v.label)));
  const path = h('input', { id: 'new-path', value: KINDS[kind].path, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', required: true, autofocus: true });
  const vis = visibilitySelect(DEFAULT_VISIBILITY, { id: 'new-visibility' });
  const content = h('textarea', { id: 'new-content', class: 'editor mono', rows: '12', spellcheck: 'false' });
  content.value = KINDS[kind].template;
  const pathNote = h('p', { class: 'hint', id: 'new-path-note' });
  const err = errorBox();
  const checkPath = () => {
    const p = normalizePath(path.value);
    pathNote.textContent = view.byPath().has(p) ? `An asset with the path ${p} exists: saving adds a new version of it.` : '';
  };
  path.addEventListener('input', checkPath);
  kindSel.addEventListener('change', () => {
    const prev = KINDS[kind];
    kind = kindSel.value;
    if (content.value === prev.template) content.value = KINDS[kind].template;
    if (path.value === prev.path) path.value = KINDS[kind].path;
    checkPath();
  });
  let closeFn;
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: 'new-asset-form', id: 'new-save' }, 'Save');
  const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Cancel');
  openDialog({
    title: 'New asset',
    wide: true,
    actions: [cancel, submit],
    build: (_d, close) => {
      closeFn = close;
      const form = h('form', { id: 'new-asset-form', novalidate: true },
        h('div', { class: 'form-row' },
          h('div', { class: 'grow' }, field('Path', path), pathNote),
          field('Type', kindSel),
          field('Visibility', vis)),
        field('Content', content),
        err);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const p = normalizePath(path.value);
        const problem = pathProblem(p) || contentProblem(kind, content.value);
        if (problem) { err.show(problem); return; }
        const blob = new Blob([content.value], { type: KINDS[kind].type });
        const tooBig = sizeProblem(p, blob.size, vis.value);
        if (tooBig) { err.show(tooBig); return; }
        submit.disabled = true;
        err.show(null);
        try {
          await uploadOne(view, { path: p, visibility: vis.value, blob, filename: p.split('/').pop() || 'index' });
          close(p);
          toast(`Saved ${p}. Deploy All to make it live.`, 'success', { tag: 'undeployed' });
          await view.refresh();
        } catch (ex) {
          err.show(ex.message);
          submit.disabled = false;
        }
      });
      checkPath();
      return form;
    },
  });
}
