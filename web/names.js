// How the console names things: asset rows, environments, visibilities.

import { icon } from './dom.js';

/** The display path of an asset row: the latest version's path, else the asset's name. */
export function pathOf(row) {
  return row.latest ? row.latest.path : row.asset.friendly_name;
}

/** `dev` for `dev-environment`; the unique name of an environment without a suffix. */
export function envName(e) {
  return e.domain_suffix || e.unique_name;
}

/** The icon of a visibility: a globe, a lock, a crossed eye. */
export function visIcon(vis) {
  return icon(vis === 'public' ? 'globe' : vis === 'protected' ? 'lock' : 'eyeoff');
}
