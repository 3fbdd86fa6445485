// History of the selected environment: its deployments (newest first) with one-click
// rollback, and the service's builds, each deployable to the environment.

import { h, replace, errorBox, toast, formatDate, icon } from './dom.js';
import { envName, visIcon } from './names.js';

/** Renders the History tab of `view` (a ServiceView) into `panel`. */
export async function renderHistory(panel, view) {
  if (!view.env) {
    replace(panel, h('section', { class: 'card' }, h('div', { class: 'empty' },
      h('h2', {}, 'No environment yet'),
      h('p', { class: 'muted' }, 'Create an environment; its deployments show up here.'))));
    return;
  }
  const S = view.service.sid;
  const env = view.env;
  const deps = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading deployments…'));
  const builds = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading builds…'));
  replace(panel,
    h('section', { class: 'card', 'aria-labelledby': 'deployments-title' },
      h('div', { class: 'pane-toolbar' }, h('h2', { id: 'deployments-title' }, `Deployments to ${envName(env)}`)),
      deps),
    // Every build of the service, folded: the deployments above are the timeline, and this
    // list (which repeats their builds) is for deploying one that was never deployed here.
    h('section', { class: 'card', 'aria-labelledby': 'builds-title' },
      h('details', { id: 'all-builds' },
        h('summary', { class: 'pane-toolbar' }, h('h2', { id: 'builds-title', class: 'inline' }, 'All builds of this service'),
          h('p', { class: 'muted small' }, 'Newest first. Builds never change; deploying one switches the environment at once.')),
        builds)));
  let deployments;
  let buildList;
  let fresh;
  try {
    [deployments, buildList, fresh] = await Promise.all([
      view.api.deployments(S, env.sid),
      view.api.builds(S),
      view.api.environment(S, env.sid),
    ]);
  } catch (e) {
    if (!view.alive || view.tab !== 'history') return;
    const err = errorBox();
    err.show(`Cannot load the history: ${e.message}`);
    replace(deps, err);
    builds.replaceChildren();
    return;
  }
  if (!view.alive || view.tab !== 'history' || view.env.sid !== env.sid) return;
  view.env = fresh;
  const live = fresh.build_sid;
  const bySid = new Map(buildList.map((b) => [b.sid, b]));
  for (const b of buildList) view.buildCache.set(b.sid, b);

  const rollback = async (buildSid, button) => {
    button.disabled = true;
    button.textContent = 'Deploying…';
    try {
      await view.api.deploy(S, env.sid, buildSid);
      toast(`${envName(env)} now serves build ${buildSid}.`, 'success');
    } catch (e) {
      toast(`Cannot deploy build ${buildSid}: ${e.message}`, 'error', { timeout: 10000 });
    }
    await renderHistory(panel, view);
    view.renderEnvCard();
    const first = panel.querySelector('.rollback') || panel.querySelector('h2');
    if (first) first.focus();
  };

  deps.removeAttribute('aria-busy');
  if (!deployments.length) {
    replace(deps, h('p', { class: 'empty muted' }, `Nothing has been deployed to ${envName(env)} yet. Use Deploy All on the Assets tab.`));
  } else {
    let liveShown = false;
    const rows = deployments.map((d, i) => {
      const b = bySid.get(d.build_sid);
      const isLive = d.build_sid === live && !liveShown;
      if (isLive) liveShown = true;
      const when = formatDate(d.date_created, true);
      let action;
      if (isLive) action = h('span', { class: 'badge badge-live' }, icon('check'), 'Live');
      else if (d.build_sid === live) action = h('span', { class: 'muted small' }, 'Same build as live');
      else {
        action = h('button', {
          type: 'button', class: 'btn btn-small rollback',
          'aria-label': `Roll back ${envName(env)} to build ${d.build_sid} deployed ${when}`,
          onclick: (ev) => rollback(d.build_sid, ev.currentTarget),
        }, 'Roll back');
      }
      return h('tr', { dataset: { build: d.build_sid, deployment: d.sid } },
        h('td', { class: 'nowrap' }, when),
        h('td', {}, h('code', { class: 'sid' }, d.build_sid)),
        h('td', { class: 'hide-sm' }, b ? `${b.asset_versions.length} asset${b.asset_versions.length === 1 ? '' : 's'}` : h('span', { class: 'muted' }, 'removed')),
        h('td', { class: 'changes' }, changes(b, deployments[i + 1] ? bySid.get(deployments[i + 1].build_sid) : null, !deployments[i + 1])),
        h('td', { class: 'actions' }, action));
    });
    replace(deps, h('table', { class: 'table table-stack', id: 'deployments' },
      h('caption', { class: 'visually-hidden' }, `Deployments to ${envName(env)}, newest first`),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Deployed'), h('th', { scope: 'col' }, 'Build'),
        h('th', { scope: 'col', class: 'hide-sm' }, 'Assets'), h('th', { scope: 'col' }, 'Changes'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Action')))),
      h('tbody', {}, rows)));
  }

  builds.removeAttribute('aria-busy');
  if (!buildList.length) {
    replace(builds, h('p', { class: 'empty muted' }, 'No builds yet.'));
    return;
  }
  const items = [...buildList].reverse().map((b) => {
    const isLive = b.sid === live;
    const paths = [...b.asset_versions].sort((x, y) => x.path.localeCompare(y.path));
    return h('li', { class: 'build-item', dataset: { build: b.sid } },
      h('details', {},
        h('summary', {},
          h('code', { class: 'sid' }, b.sid), ' ',
          h('span', { class: 'muted small' }, `${formatDate(b.date_created, true)} · ${b.asset_versions.length} asset${b.asset_versions.length === 1 ? '' : 's'} · ${b.status}`)),
        h('ul', { class: 'build-paths' }, paths.map((v) => h('li', {},
          h('span', { class: `badge vis-${v.visibility}` }, visIcon(v.visibility), v.visibility), ' ', h('code', {}, v.path))))),
      isLive
        ? h('span', { class: 'badge badge-live' }, icon('check'), `Live in ${envName(env)}`)
        : h('button', {
          type: 'button', class: 'btn btn-small',
          'aria-label': `Deploy build ${b.sid} to ${envName(env)}`,
          disabled: b.status !== 'completed',
          onclick: (ev) => rollback(b.sid, ev.currentTarget),
        }, `Deploy to ${envName(env)}`));
  });
  replace(builds, h('ul', { class: 'build-list', id: 'builds' }, items));
}

/**
 * What a deployment changed against the one before it: counts, expandable to the paths
 * (a path whose version differs is changed). `first`: the environment's first deployment.
 */
function changes(build, before, first) {
  if (!build) return h('span', { class: 'muted' }, 'build removed');
  const now = new Map(build.asset_versions.map((v) => [v.path, v.sid]));
  if (first) return h('span', { class: 'muted small' }, `first deployment: ${now.size} file${now.size === 1 ? '' : 's'}`);
  if (!before) return h('span', { class: 'muted' }, 'previous build removed');
  const old = new Map(before.asset_versions.map((v) => [v.path, v.sid]));
  const added = [...now.keys()].filter((p) => !old.has(p)).sort();
  const changed = [...now.keys()].filter((p) => old.has(p) && old.get(p) !== now.get(p)).sort();
  const removed = [...old.keys()].filter((p) => !now.has(p)).sort();
  if (!added.length && !changed.length && !removed.length) return h('span', { class: 'muted small' }, 'no change');
  const list = (label, paths) => (paths.length
    ? h('li', {}, `${label}: `, paths.map((p, j) => [j ? ', ' : '', h('code', {}, p)]))
    : null);
  return h('details', { class: 'changes-detail' },
    h('summary', {}, `${added.length} added, ${changed.length} changed, ${removed.length} removed`),
    h('ul', { class: 'change-paths' }, list('added', added), list('changed', changed), list('removed', removed)));
}
