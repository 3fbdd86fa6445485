// Asset URLs as clients will fetch them.

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Whether `hostname` names this machine (so `*.localhost` domains reach the same server). */
function isLocal(hostname) {
  return LOOPBACK.has(hostname) || hostname.endsWith('.localhost') || /^127\./.test(hostname);
}

/** An asset path as it appears in a URL: each character that needs it percent-encoded. */
export function encodePath(path) {
  const p = path.startsWith('/') ? path : `/${path}`;
  return encodeURI(p);
}

/**
 * The URL of `path` in environment `env`: `{scheme}://{domain_name}[:{page port}]{path}`, the
 * way Twilio's `https://example-1234.twil.io/path` looks. When the environment's domain is a
 * `*.localhost` name but the console was reached from another machine (by IP or name),
 * `*.localhost` would point at the visitor's own machine, so the path-style form
 * `{page origin}/e/{label}{path}` is used instead.
 */
export function assetUrl(env, path, loc = window.location) {
  const domain = env.domain_name;
  const label = domain.split('.')[0];
  const encoded = encodePath(path);
  if (domain.endsWith('.localhost') && !isLocal(loc.hostname)) {
    return `${loc.origin}/e/${label}${encoded}`;
  }
  const port = loc.port ? `:${loc.port}` : '';
  return `${loc.protocol}//${domain}${port}${encoded}`;
}

const FORBIDDEN = ['#', ';', ',', '?', ':', '@', '+', '&', '$', '(', ')', "'", '"', ' ', '\\'];

/** `path` with its leading `/` (as the API adds it). */
export function normalizePath(path) {
  const p = path.trim();
  return p.startsWith('/') ? p : `/${p}`;
}

/**
 * Why `path` is not a valid asset path, or null. The same rules as the server's: at most 255
 * characters, no control characters, none of `# ; , ? : @ + & $ ( ) ' " \` or space, and no
 * empty, `.` or `..` segment (except the root path `/`).
 */
export function pathProblem(path) {
  const p = normalizePath(path);
  if ([...p].length > 255) return `The path is ${[...p].length} characters long; the limit is 255.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(p)) return 'The path contains a control character.';
  const bad = FORBIDDEN.find((c) => p.includes(c));
  if (bad) return `The path contains ${bad === ' ' ? 'a space' : `"${bad}"`}, which asset paths may not contain (forbidden: # ; , ? : @ + & $ ( ) ' " \\ and space).`;
  if (p !== '/') {
    for (const seg of p.slice(1).split('/')) {
      if (seg === '') return 'The path has an empty segment (a doubled or trailing "/").';
      if (seg === '.' || seg === '..') return 'The path may not contain "." or ".." segments.';
    }
  }
  return null;
}
