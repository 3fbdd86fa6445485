// The services list: create, open, delete (with confirmation).

import { h, replace, field, errorBox, openDialog, confirmDialog, toast, formatDate, icon } from './dom.js';

/** Renders the services page into `main`. */
export async function renderServices(main, ctx) {
  document.title = 'Services · assetd';
  const body = h('div', { class: 'card', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading services…'));
  const create = h('button', { type: 'button', class: 'btn btn-primary', id: 'create-service', onclick: () => createServiceDialog(ctx) },
    icon('plus'), 'Create service');
  replace(main, h('section', { class: 'page' },
    h('div', { class: 'page-header' },
      h('div', {}, h('h1', {}, 'Services'), h('p', { class: 'muted' }, 'Each service has its own assets, builds and environments.')),
      create),
    body));
  let services;
  try {
    services = await ctx.api.services();
  } catch (e) {
    if (!ctx.alive()) return;
    const err = errorBox();
    err.show(`Cannot load the services: ${e.message}`);
    replace(body, err);
    body.removeAttribute('aria-busy');
    return;
  }
  if (!ctx.alive()) return;
  body.removeAttribute('aria-busy');
  if (!services.length) {
    replace(body, h('div', { class: 'empty' },
      h('h2', {}, 'No services yet'),
      h('p', { class: 'muted' }, 'Create a service to upload assets and deploy them to an environment.'),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => createServiceDialog(ctx) }, 'Create your first service')));
    return;
  }
  const rows = services.map((s) => h('tr', {},
    h('td', {},
      h('a', { href: `#/services/${encodeURIComponent(s.sid)}`, class: 'strong-link' }, s.friendly_name),
      // The unique name only when it adds something (the CLI makes both names the same).
      s.unique_name !== s.friendly_name ? h('div', { class: 'muted small unique-name' }, s.unique_name) : null),
    h('td', { class: 'hide-sm' }, h('code', {}, s.domain_base)),
    h('td', { class: 'hide-sm' }, h('code', { class: 'sid' }, s.sid)),
    h('td', { class: 'hide-sm nowrap' }, formatDate(s.date_created)),
    h('td', { class: 'actions' },
      h('button', {
        type: 'button', class: 'btn btn-small btn-danger-ghost',
        'aria-label': `Delete service ${s.unique_name}`,
        onclick: () => deleteService(ctx, s),
      }, 'Delete'))));
  replace(body, h('table', { class: 'table' },
    h('caption', { class: 'visually-hidden' }, 'Services'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Service'),
      h('th', { scope: 'col', class: 'hide-sm' }, 'Domain base'),
      h('th', { scope: 'col', class: 'hide-sm' }, 'SID'),
      h('th', { scope: 'col', class: 'hide-sm' }, 'Created'),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, rows)));
}

function createServiceDialog(ctx) {
  const unique = h('input', { name: 'unique_name', required: true, maxlength: '50', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', placeholder: 'my-service', autofocus: true });
  const friendly = h('input', { name: 'friendly_name', maxlength: '255', autocomplete: 'off', placeholder: 'My service' });
  const withDev = h('input', { type: 'checkbox', id: 'with-dev', name: 'with_dev', checked: true });
  const err = errorBox();
  let closeFn;
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', form: 'create-service-form' }, 'Create');
  const cancel = h('button', { type: 'button', class: 'btn', onclick: () => closeFn() }, 'Cancel');
  return openDialog({
    title: 'Create a service',
    actions: [cancel, submit],
    build: (_d, close) => {
      closeFn = close;
      const form = h('form', { id: 'create-service-form', novalidate: true },
        field('Unique name', unique, 'Letters, digits and single dashes, up to 50 characters. It becomes part of the asset domain.'),
        field('Friendly name', friendly, 'Optional; defaults to the unique name.'),
        h('div', { class: 'check' }, withDev, h('label', { for: 'with-dev' }, 'Also create a ', h('code', {}, 'dev'), ' environment')),
        err);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const name = unique.value.trim();
        if (!/^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$/.test(name) || name.length > 50) {
          err.show('The unique name may contain only letters, digits and single dashes (1 to 50 characters), and may not start or end with a dash.');
          unique.focus();
          return;
        }
        submit.disabled = true;
        err.show(null);
        try {
          const svc = await ctx.api.createService(name, friendly.value.trim() || name);
          if (withDev.checked) {
            try {
              await ctx.api.createEnvironment(svc.sid, 'dev');
            } catch (ex) {
              toast(`The service was created, but not its dev environment: ${ex.message}`, 'error');
            }
          }
          close(svc);
          toast(`Created service ${svc.unique_name}.`, 'success');
          ctx.navigate(`#/services/${encodeURIComponent(svc.sid)}`);
        } catch (ex) {
          err.show(ex.message);
          submit.disabled = false;
        }
      });
      return form;
    },
  });
}

/** Asks for confirmation, deletes service `s` and returns to the list. */
export async function deleteService(ctx, s) {
  const ok = await confirmDialog({
    title: 'Delete service?',
    message: [
      h('p', {}, 'Delete ', h('strong', {}, s.friendly_name), s.unique_name !== s.friendly_name ? [' (', h('code', {}, s.unique_name), ')'] : null, '?'),
      h('p', {}, 'Its environments, assets, builds and deployments are deleted too, and its asset URLs stop working. This cannot be undone.'),
    ],
    confirm: 'Delete service',
    danger: true,
  });
  if (!ok) return;
  try {
    await ctx.api.deleteService(s.sid);
    toast(`Deleted service ${s.unique_name}.`, 'success');
    ctx.navigate('#/');
  } catch (e) {
    toast(`Cannot delete ${s.unique_name}: ${e.message}`, 'error', { timeout: 10000 });
  }
}
