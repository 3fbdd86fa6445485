// How the console names things: asset rows, environments, visibilities.

import { icon } from './dom.js';

/** The display path of an asset row: the latest version's path, else the asset's name. */
export function pathOf(row) {
  return row.latest ? row.latest.path : row.asset.friendly_name;
}

/**
 * `dev` for `dev-environment`; `production` for the environment without a suffix (whatever
 * its unique name), as the CLI means it. An environment whose suffix is literally
 * `production` is shown with its dash, so that no two environments share a name.
 */
export function envName(e) {
  if (!e.domain_suffix) return 'production';
  return e.domain_suffix.toLowerCase() === 'production' ? `-${e.domain_suffix}` : e.domain_suffix;
}

/** The icon of a visibility: a globe, a lock, a crossed eye. */
export function visIcon(vis) {
  return icon(vis === 'public' ? 'globe' : vis === 'protected' ? 'lock' : 'eyeoff');
}
