// One service: its environments (domain, URL, active build), the Assets pane (status per
// asset, Add+, Deploy All) and the History tab.

import { h, replace, field, errorBox, openDialog, confirmDialog, toast, clearToasts, icon, menuButton, formatBytes, openMenu, toggleMenu } from './dom.js';
import { pool, sizeProblem } from './api.js';
import { assetUrl } from './urls.js';
import { openUploadDialog, openEditorDialog } from './upload.js';
import { assetMenuItems, openAssetDialog, cachedInfo, latestVersion } from './asset.js';
import { renderHistory } from './history.js';
import { deleteService } from './services.js';
import { pathOf, envName, visIcon } from './names.js';

/** Renders the service page for `serviceId` (SID or unique name). */
export async function renderService(main, ctx, serviceId, { env, tab }) {
  const view = new ServiceView(main, ctx, serviceId, env, tab === 'history' ? 'history' : 'assets');
  await view.start();
}

const VIS_LABEL = { public: 'Public', protected: 'Protected', private: 'Private' };

class ServiceView {
  constructor(main, ctx, serviceId, envSid, tab) {
    this.main = main;
    this.ctx = ctx;
    this.api = ctx.api;
    this.serviceId = serviceId;
    this.envSid = envSid;
    this.tab = tab;
    this.service = null;
    this.envs = [];
    this.env = null;
    /** [{asset, latest, info, versionsInEnv}] sorted by path. */
    this.rows = [];
    /** Version SIDs in the selected environment's active build. */
    this.active = new Set();
    /** Asset SIDs with some version in the active build. */
    this.activeAssets = new Set();
    /** Builds by SID (immutable, so cached for the life of the view). */
    this.buildCache = new Map();
    this.deploying = false;
  }

  get alive() {
    return this.ctx.alive();
  }

  async start() {
    document.title = 'Service · assetd';
    replace(this.main, h('section', { class: 'page' }, h('p', { class: 'loading' }, 'Loading service…')));
    try {
      [this.service, this.envs] = await Promise.all([
        this.api.service(this.serviceId),
        this.api.environments(this.serviceId),
      ]);
    } catch (e) {
      if (!this.alive) return;
      const err = errorBox();
      err.show(e.status === 404 ? `There is no service ${this.serviceId} in this account.` : `Cannot load the service: ${e.message}`);
      replace(this.main, h('section', { class: 'page' }, breadcrumb(this.serviceId), err));
      return;
    }
    if (!this.alive) return;
    this.pickEnv(this.envSid);
    document.title = `${this.service.friendly_name} · assetd`;
    this.renderFrame();
    await this.showTab(this.tab, false);
  }

  pickEnv(sid) {
    this.env = this.envs.find((e) => e.sid === sid)
      || this.envs.find((e) => e.domain_suffix === 'dev')
      || this.envs[0] || null;
  }

  /** Keeps the URL in step with the environment and tab without re-rendering. */
  syncHash() {
    const q = new URLSearchParams();
    if (this.env) q.set('env', this.env.sid);
    if (this.tab !== 'assets') q.set('tab', this.tab);
    const hash = `#/services/${encodeURIComponent(this.service.sid)}${q.toString() ? `?${q}` : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  // ---- Frame: header, environment card, tabs ----------------------------------------------------

  renderFrame() {
    const s = this.service;
    this.envCard = h('section', { class: 'card env-card', 'aria-label': 'Environment' });
    this.panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'service-panel', tabindex: '-1' });
    this.tabs = {
      assets: h('button', { type: 'button', role: 'tab', id: 'tab-assets', class: 'tab', 'aria-controls': 'service-panel', onclick: () => this.showTab('assets') }, 'Assets'),
      history: h('button', { type: 'button', role: 'tab', id: 'tab-history', class: 'tab', 'aria-controls': 'service-panel', onclick: () => this.showTab('history') }, 'History'),
    };
    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Service sections' }, this.tabs.assets, this.tabs.history);
    tablist.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft' && e.key !== 'Home' && e.key !== 'End') return;
      e.preventDefault();
      const next = this.tab === 'assets' ? 'history' : 'assets';
      const target = e.key === 'Home' ? 'assets' : e.key === 'End' ? 'history' : next;
      this.showTab(target).then(() => this.tabs[target].focus());
    });
    replace(this.main, h('section', { class: 'page' },
      breadcrumb(s.friendly_name),
      h('div', { class: 'page-header' },
        h('div', { class: 'title-block' },
          h('h1', {}, s.friendly_name),
          h('p', { class: 'muted small' }, s.unique_name !== s.friendly_name ? [h('code', {}, s.unique_name), ' · '] : null, h('code', { class: 'sid' }, s.sid))),
        h('button', { type: 'button', class: 'btn btn-danger-ghost', id: 'delete-service', onclick: () => deleteService(this.ctx, this.service) }, 'Delete service')),
      this.envCard, tablist, this.panel));
    this.renderEnvCard();
  }

  renderEnvCard() {
    const newEnv = h('button', { type: 'button', class: 'btn', id: 'new-environment', onclick: () => this.createEnvDialog() }, icon('plus'), 'New environment');
    if (!this.env) {
      replace(this.envCard,
        h('div', { class: 'env-empty' },
          h('div', {}, h('h2', { class: 'h3' }, 'No environment yet'),
            h('p', { class: 'muted' }, 'Assets are served from an environment\'s domain once deployed. Create one (for example ', h('code', {}, 'dev'), ').')),
          newEnv));
      return;
    }
    const select = h('select', { id: 'env-select', class: 'env-select' },
      this.envs.map((e) => h('option', { value: e.sid, selected: e.sid === this.env.sid }, envName(e))));
    select.addEventListener('change', () => this.selectEnv(select.value));
    // Switching environment while Deploy All runs would show one environment's deploy in the
    // other's pane: the selector waits for the deploy.
    select.disabled = this.deploying;
    this.envSelect = select;
    const e = this.env;
    const url = assetUrl(e, '/');
    replace(this.envCard,
      h('div', { class: 'env-head' },
        h('div', { class: 'env-pick' }, h('label', { for: 'env-select' }, 'Environment'), select),
        h('div', { class: 'env-actions' },
          newEnv,
          h('button', { type: 'button', class: 'btn btn-danger-ghost', 'aria-label': `Delete environment ${envName(e)}`, onclick: () => this.deleteEnv() }, 'Delete'))),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, 'Domain'), h('dd', {}, h('code', { id: 'env-domain' }, e.domain_name))),
        h('div', {}, h('dt', {}, 'URL'), h('dd', {}, h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', id: 'env-url' }, url))),
        h('div', {}, h('dt', {}, 'Active build'), h('dd', { id: 'env-build' }, e.build_sid ? h('code', {}, e.build_sid) : h('span', { class: 'muted' }, 'Nothing deployed yet')))));
  }

  async selectEnv(sid) {
    this.pickEnv(sid);
    this.syncHash();
    this.renderEnvCard();
    await this.showTab(this.tab, false);
  }

  async showTab(tab, focusPanel = false) {
    this.tab = tab;
    for (const [name, el] of Object.entries(this.tabs)) {
      el.setAttribute('aria-selected', String(name === tab));
      el.tabIndex = name === tab ? 0 : -1;
    }
    this.panel.setAttribute('aria-labelledby', `tab-${tab}`);
    this.syncHash();
    if (tab === 'history') {
      await renderHistory(this.panel, this);
    } else {
      this.renderAssetsPane();
      await this.refresh();
    }
    if (focusPanel) this.panel.focus();
  }

  // ---- Environments ----------------------------------------------------------------------------

  createEnvDialog() {
    const suffix = h('input', { name: 'suffix', maxlength: '16', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', placeholder: 'dev', autofocus: true });
    const taken = new Set(this.envs.map((e) => e.domain_suffix || ''));
    if (!taken.has('dev')) suffix.value = 'dev';
    const preview = h('p', { class: 'hint' });
    const base = this.envs[0] ? this.envs[0].domain_name.slice(this.envs[0].domain_name.indexOf('.') + 1) : null;
    const update = () => {
      const v = suffix.value.trim().toLowerCase();
      const label = v ? `${this.service.domain_base}-${v}` : this.service.domain_base;
      replace(preview, 'Domain: ', h('code', {}, base ? `${label}.${base}` : label), ' · unique name: ', h('code', {}, v ? `${v}-environment` : 'production'));
    };
    suffix.addEventListener('input', update);
    update();
    const err = errorBox();
    let closeFn;
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: 'create-env-form' }, 'Create environment');
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Cancel');
    openDialog({
      title: 'New environment',
      actions: [cancel, submit],
      build: (_d, close) => {
        closeFn = close;
        const form = h('form', { id: 'create-env-form', novalidate: true },
          field('Domain suffix', suffix, 'Letters, digits and single dashes, up to 16 characters; empty for a production environment without a suffix.'),
          preview, err);
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          const v = suffix.value.trim();
          if (v && (!/^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$/.test(v) || v.length > 16)) {
            err.show('The suffix may contain only letters, digits and single dashes (up to 16 characters).');
            return;
          }
          submit.disabled = true;
          try {
            const env = await this.api.createEnvironment(this.service.sid, v);
            close(env);
            this.envs.push(env);
            toast(`Created environment ${envName(env)} at ${env.domain_name}.`, 'success');
            await this.selectEnv(env.sid);
          } catch (ex) {
            err.show(ex.message);
            submit.disabled = false;
          }
        });
        return form;
      },
    });
  }

  async deleteEnv() {
    const e = this.env;
    const ok = await confirmDialog({
      title: 'Delete environment?',
      message: [
        h('p', {}, 'Delete ', h('strong', {}, envName(e)), ' (', h('code', {}, e.domain_name), ')?'),
        h('p', {}, 'Its URLs stop answering and its deployment history is removed. Assets and builds stay in the service.'),
      ],
      confirm: 'Delete environment',
      danger: true,
    });
    if (!ok) return;
    try {
      await this.api.deleteEnvironment(this.service.sid, e.sid);
      this.envs = this.envs.filter((x) => x.sid !== e.sid);
      toast(`Deleted environment ${envName(e)}.`, 'success');
      await this.selectEnv(null);
    } catch (ex) {
      toast(`Cannot delete ${envName(e)}: ${ex.message}`, 'error', { timeout: 10000 });
    }
  }

  /** The build `sid`, from the cache or the API. */
  async getBuild(sid) {
    if (!this.buildCache.has(sid)) this.buildCache.set(sid, await this.api.build(this.service.sid, sid));
    return this.buildCache.get(sid);
  }

  // ---- Assets pane -------------------------------------------------------------------------------

  renderAssetsPane() {
    const add = menuButton([icon('plus'), 'Add', icon('down', 'caret')], () => [
      { label: 'Upload File(s)…', onSelect: () => this.upload([]) },
      { label: 'New Asset…', onSelect: () => openEditorDialog(this) },
    ], { label: 'Add', cls: 'btn' });
    add.id = 'add-button';
    this.deployBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'deploy-all', onclick: () => this.deployAll() }, 'Deploy All');
    this.countEl = h('span', { class: 'count' });
    this.deployStatus = h('div', { class: 'deploy-status', id: 'deploy-status', 'aria-live': 'polite' });
    this.list = h('ul', { class: 'asset-list', id: 'asset-list', 'aria-label': 'Assets', 'aria-busy': 'true' });
    this.legend = h('p', { class: 'legend muted small' });
    const drop = h('div', { class: 'drop-overlay', 'aria-hidden': 'true' }, icon('upload'), 'Drop files to upload');
    const pane = h('section', { class: 'card assets-pane', 'aria-labelledby': 'assets-title' },
      h('div', { class: 'pane-toolbar' },
        h('h2', { id: 'assets-title' }, 'Assets ', this.countEl),
        h('div', { class: 'toolbar-actions' }, add, this.deployBtn)),
      this.deployStatus,
      h('div', { class: 'asset-head', 'aria-hidden': 'true' },
        h('span', {}, ''), h('span', {}, 'Path'), h('span', {}, 'Visibility'), h('span', { class: 'right' }, 'Size'), h('span', {}, '')),
      this.list, this.legend, drop);
    // Drag-and-drop anywhere on the pane opens the upload dialog with the dropped files.
    let depth = 0;
    pane.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth += 1;
      pane.classList.add('dragging');
    });
    pane.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    pane.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (!depth) pane.classList.remove('dragging');
    });
    pane.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      pane.classList.remove('dragging');
      this.upload([...e.dataTransfer.files]);
    });
    replace(this.panel, pane);
  }

  upload(files) {
    openUploadDialog(this, files);
  }

  /** Reloads the environment, the asset list, each asset's latest version and the statuses. */
  async refresh() {
    const S = this.service.sid;
    let envChanged = false;
    // Refreshes can overlap (an action's refresh while another is loading): only the newest
    // one may render, so an older answer never overwrites a newer one.
    this.refreshSeq = (this.refreshSeq || 0) + 1;
    const seq = this.refreshSeq;
    const current = () => seq === this.refreshSeq && this.alive && this.tab === 'assets';
    try {
      const [assets, env] = await Promise.all([
        this.api.assets(S),
        this.env ? this.api.environment(S, this.env.sid) : Promise.resolve(null),
      ]);
      const versions = await pool(assets, 6, (a) => this.api.versions(S, a.sid));
      const latest = versions.map(latestVersion);
      const infos = await pool(latest, 6, (v, i) => (v ? cachedInfo(this.api, S, assets[i].sid, v.sid) : null));
      const active = new Set();
      const activeAssets = new Set();
      if (env && env.build_sid) {
        const b = await this.getBuild(env.build_sid);
        for (const v of b.asset_versions) {
          active.add(v.sid);
          activeAssets.add(v.asset_sid);
        }
      }
      if (!current()) return true;
      if (env && this.env && env.sid === this.env.sid) {
        envChanged = this.env.build_sid !== env.build_sid;
        this.env = env;
        this.envs = this.envs.map((x) => (x.sid === env.sid ? env : x));
      }
      this.active = active;
      this.activeAssets = activeAssets;
      this.rows = assets.map((asset, i) => ({ asset, latest: latest[i], info: infos[i], versions: versions[i] }))
        .sort((a, b) => pathOf(a).localeCompare(pathOf(b)));
    } catch (e) {
      if (!current()) return false;
      this.list.removeAttribute('aria-busy');
      const err = errorBox();
      err.show(`Cannot load the assets: ${e.message}`);
      replace(this.list, h('li', {}, err));
      return false;
    }
    if (envChanged) this.renderEnvCard();
    this.renderList();
    return true;
  }

  statusOf(row) {
    if (!row.latest) return 'empty';
    return this.active.has(row.latest.sid) ? 'deployed' : 'changed';
  }

  renderList() {
    this.list.removeAttribute('aria-busy');
    // "Deployed …" no longer holds once something changed since.
    if (this.deployStatus.querySelector('.alert-success') && this.rows.some((r) => this.statusOf(r) !== 'deployed')) {
      this.deployStatus.replaceChildren();
    }
    this.countEl.textContent = String(this.rows.length);
    const envLabel = this.env ? envName(this.env) : 'an environment';
    replace(this.legend,
      icon('check', 'st-deployed'), ` deployed to ${envLabel}  ·  `,
      icon('circle', 'st-changed'), ` changed, or not in ${envLabel}'s active build`);
    if (!this.rows.length) {
      replace(this.list, h('li', { class: 'empty' },
        h('h3', {}, 'No assets yet'),
        h('p', { class: 'muted' }, 'Use Add to upload files or create a JSON, HTML or TwiML asset, or drop files here. Then Deploy All.')));
      return;
    }
    // Keep keyboard focus on the same row's control across the re-render.
    const active = document.activeElement;
    const li = active && active.closest ? active.closest('.asset-row') : null;
    const keep = li && this.list.contains(li)
      ? { path: li.dataset.path, sel: active.classList.contains('row-menu') ? '.row-menu' : '.asset-path' }
      : null;
    replace(this.list, this.rows.map((row) => this.renderRow(row)));
    if (keep) {
      const again = this.rowElement(keep.path);
      if (again) again.querySelector(keep.sel).focus();
    }
  }

  renderRow(row) {
    const path = pathOf(row);
    const status = this.statusOf(row);
    const envLabel = this.env ? envName(this.env) : 'no environment';
    let statusText;
    if (status === 'deployed') statusText = `Deployed to ${envLabel}`;
    else if (status === 'empty') statusText = 'No content: the upload did not finish';
    else if (this.activeAssets.has(row.asset.sid)) statusText = `Changed: ${envLabel} serves an older version`;
    else statusText = `Not deployed to ${envLabel}`;
    const vis = row.latest ? row.latest.visibility : null;
    const menuBtn = h('button', {
      type: 'button', class: 'icon-btn row-menu', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
      'aria-label': `Actions for ${path}`,
    }, icon('dots'));
    const items = () => assetMenuItems(this, row);
    menuBtn.addEventListener('click', () => toggleMenu(menuBtn, items(), { label: `Actions for ${path}` }));
    menuBtn.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') { e.preventDefault(); openMenu(menuBtn, items(), { label: `Actions for ${path}` }); }
    });
    const li = h('li', { class: `asset-row st-${status}`, dataset: { path, status, sid: row.asset.sid } },
      h('span', { class: 'status', title: statusText },
        icon(status === 'deployed' ? 'check' : status === 'empty' ? 'alert' : 'circle', `st-${status}`),
        h('span', { class: 'visually-hidden' }, statusText)),
      h('button', { type: 'button', class: 'asset-path', onclick: () => openAssetDialog(this, row), title: `Open ${path}` }, path),
      h('span', { class: 'vis' }, vis ? h('span', { class: `badge vis-${vis}` }, visIcon(vis), VIS_LABEL[vis]) : h('span', { class: 'muted' }, '—')),
      h('span', { class: 'size right' }, row.info ? formatBytes(row.info.size) : '—'),
      menuBtn);
    // Right-click (or the context-menu key) on a row opens the same menu.
    li.addEventListener('contextmenu', (e) => {
      e.preventDefault();
      const at = e.clientX || e.clientY ? { x: e.clientX, y: e.clientY } : null;
      openMenu(menuBtn, items(), { at, label: `Actions for ${path}` });
    });
    return li;
  }

  /** A row's element, for focusing after a refresh. */
  rowElement(path) {
    return [...this.list.querySelectorAll('.asset-row')].find((li) => li.dataset.path === path) || null;
  }

  // ---- Deploy All --------------------------------------------------------------------------------

  showDeploy(kind, message, progress = null) {
    const parts = [];
    if (kind === 'error') parts.push(h('div', { class: 'alert alert-error', role: 'alert' }, icon('alert'), h('span', {}, message)));
    else if (kind === 'success') parts.push(h('div', { class: 'alert alert-success', role: 'status' }, icon('check'), h('span', {}, message)));
    else {
      parts.push(h('div', { class: 'deploy-progress' },
        h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', {}, message)));
      const bar = h('progress', { max: '100', 'aria-label': 'Deploy progress' });
      if (progress !== null) bar.value = progress;
      parts.push(bar);
    }
    replace(this.deployStatus, parts);
  }

  async deployAll() {
    if (this.deploying) return;
    if (!this.env) {
      this.showDeploy('error', 'Create an environment first: Deploy All deploys to the selected environment.');
      this.createEnvDialog();
      return;
    }
    const S = this.service.sid;
    const env = this.env;
    this.setDeploying(true);
    let sids;
    let proceed = false;
    try {
      // What another tab or client changed since this list was loaded must be in the build:
      // deploying a stale list would take their newer assets offline.
      this.showDeploy('progress', 'Checking for changes made elsewhere…', 5);
      // A failed refresh leaves the old list: no verdict may be drawn from it.
      if (!(await this.refresh())) {
        if (this.alive) this.showDeploy('error', 'Deploy failed: cannot load the current assets from the server.');
        return;
      }
      if (!this.alive) return;
      const rows = this.rows.filter((r) => r.latest);
      if (!rows.length) {
        this.showDeploy('error', 'There is nothing to deploy: add an asset first.');
        return;
      }
      for (const r of rows) {
        const problem = r.info && r.info.size !== null ? sizeProblem(r.latest.path, r.info.size, r.latest.visibility) : null;
        if (problem) {
          this.showDeploy('error', `Cannot deploy: ${problem}.`);
          return;
        }
      }
      sids = rows.map((r) => r.latest.sid);
      if (this.env.build_sid && sids.length === this.active.size && sids.every((x) => this.active.has(x))) {
        this.showDeploy('success', `${envName(env)} already serves the latest version of every asset.`);
        clearToasts('undeployed');
        return;
      }
      proceed = true;
    } catch (e) {
      if (this.alive) this.showDeploy('error', `Deploy failed: ${e.message}`);
      return;
    } finally {
      if (!proceed) this.setDeploying(false);
    }
    try {
      this.showDeploy('progress', `Building ${sids.length} asset${sids.length === 1 ? '' : 's'}…`, 15);
      // An earlier build with exactly these versions (after a rollback, say) is deployed again
      // rather than duplicated.
      const want = [...sids].sort().join(',');
      const same = (await this.api.builds(S)).find((b) => b.status === 'completed'
        && b.asset_versions.map((v) => v.sid).sort().join(',') === want);
      const build = same || await this.api.createCompletedBuild(S, sids);
      this.buildCache.delete(build.sid);
      this.showDeploy('progress', `Deploying build ${build.sid} to ${envName(env)}…`, 65);
      try {
        await this.api.deploy(S, env.sid, build.sid);
      } catch (e) {
        // 409: that build is already live there (deployed by someone else meanwhile).
        if (e.status !== 409) throw e;
      }
      this.showDeploy('progress', 'Updating statuses…', 90);
      await this.refresh();
      if (!this.alive) return;
      this.showDeploy('success', `Deployed ${sids.length} asset${sids.length === 1 ? '' : 's'} to ${envName(env)} (build ${build.sid}${same ? ', reused: it holds exactly these versions' : ''}).`);
      clearToasts('undeployed');
    } catch (e) {
      if (!this.alive) return;
      this.showDeploy('error', `Deploy failed: ${e.message}`);
    } finally {
      this.setDeploying(false);
    }
  }

  /** Deploy All's busy state: the button and the environment selector wait for it. */
  setDeploying(on) {
    this.deploying = on;
    this.deployBtn.disabled = on;
    this.deployBtn.textContent = on ? 'Deploying…' : 'Deploy All';
    if (this.envSelect) this.envSelect.disabled = on;
    // The button was focused when pressed from the keyboard: keep the focus on it.
    if (!on && document.activeElement === document.body) this.deployBtn.focus();
  }

  /** Asset rows by path (for uploads that replace an existing asset). */
  byPath() {
    const m = new Map();
    for (const r of this.rows) m.set(pathOf(r), r);
    return m;
  }
}

function breadcrumb(current) {
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' },
    h('a', { href: '#/' }, 'Services'), h('span', { 'aria-hidden': 'true', class: 'sep' }, '/'),
    h('span', { 'aria-current': 'page' }, current));
}

function hasFiles(e) {
  return e.dataTransfer && [...e.dataTransfer.types].includes('Files');
}
