// The management API client: Twilio Serverless v1 shapes, HTTP Basic on every request,
// form-encoded bodies, list paging, multipart uploads with progress.

/** Largest public or protected asset, and largest private one (1 MB = 2^20 bytes). */
export const MB = 1024 * 1024;
export const LIMITS = { public: 25 * MB, protected: 25 * MB, private: 10 * MB };

/**
 * `size` next to a limit of `max` bytes: in MB with one decimal, or in bytes when that would
 * read as the limit itself (25 MB + 1 byte is not "25.0 MB").
 */
export function sizeText(size, max) {
  const mb = (size / MB).toFixed(1);
  if (Number(mb) * MB > max) return `${mb} MB`;
  return `${size.toLocaleString('en-US')} bytes`;
}

/** The limit `max` as people read it: `25 MB`, plus the bytes when `exact`. */
export function limitText(max, exact = false) {
  return exact ? `${max / MB} MB (${max.toLocaleString('en-US')} bytes)` : `${max / MB} MB`;
}

/** Null when `size` fits `visibility`'s limit, else a message naming the file and the limit. */
export function sizeProblem(name, size, visibility) {
  const max = LIMITS[visibility];
  if (size <= max) return null;
  const text = sizeText(size, max);
  return `${name} is ${text}; ${visibility} assets are limited to ${limitText(max, text.endsWith('bytes'))}`;
}

/** An API failure: `status` (0 when the server was not reached) and Twilio's `message`. */
export class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const AUTH_FAILED = 'Sign-in failed: this Account SID (or API key SID) and auth token (or secret) do not match. "assetd serve" printed the main account\'s credentials on its first start; "assetd account" prints them again while the server is stopped.';

function basic(user, secret) {
  const bytes = new TextEncoder().encode(`${user}:${secret}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** Reads an error answer: Twilio's JSON `message`, or a plain description. */
async function errorFrom(res) {
  let message = '';
  try {
    const text = await res.text();
    try {
      const j = JSON.parse(text);
      message = j.message || text;
      if (res.status === 401) return new ApiError(401, j.code === 20003 && /is (suspended|closed|not active)/.test(message) ? message : AUTH_FAILED, j.code);
      return new ApiError(res.status, message, j.code ?? null);
    } catch (_) {
      message = text.trim();
    }
  } catch (_) {
    // No body.
  }
  if (res.status === 401) return new ApiError(401, AUTH_FAILED);
  return new ApiError(res.status, message || `${res.status} ${res.statusText || 'error'}`);
}

/** `/v1/…` path from an absolute `next_page_url`, so paging stays on this origin. */
function localPath(url) {
  const u = new URL(url, location.href);
  return u.pathname + u.search;
}

/** One signed-in session's API client. */
export class Api {
  constructor(user, secret) {
    this.user = user;
    this.secret = secret;
    this.authorization = basic(user, secret);
    /** Called with the error when the credentials stop working mid-session. */
    this.onUnauthorized = null;
    /** Set at the first 401: later requests fail at once instead of reaching the server. */
    this.revoked = null;
  }

  /**
   * Records a 401. Pending work (an upload of many files) must not go on sending the dead
   * credentials: ten failures lock the whole client address out of the API for a minute,
   * including the sign-in with the new token.
   */
  unauthorized(err) {
    const first = !this.revoked;
    this.revoked = err;
    if (first && this.onUnauthorized) this.onUnauthorized(err);
  }

  /** True when the session uses the account's auth token (and so can sign asset URLs). */
  get hasAuthToken() {
    return this.user.startsWith('AC');
  }

  async fetch(method, path, { params = null, headers = {} } = {}) {
    if (this.revoked) throw this.revoked;
    const init = {
      method,
      credentials: 'omit', // never cookies; and no browser auth prompt on 401
      cache: 'no-store',
      headers: { Authorization: this.authorization, Accept: 'application/json', ...headers },
    };
    if (params) {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) {
        if (Array.isArray(v)) for (const x of v) body.append(k, x);
        else if (v !== undefined && v !== null) body.append(k, v);
      }
      init.body = body;
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `Cannot reach the assetd server (${e.message}). Is it running?`);
    }
    if (!res.ok) {
      const err = await errorFrom(res);
      if (err.status === 401) this.unauthorized(err);
      throw err;
    }
    return res;
  }

  async json(method, path, params = null) {
    const res = await this.fetch(method, path, { params });
    if (res.status === 204) return null;
    return res.json();
  }

  get(path) { return this.json('GET', path); }
  post(path, params) { return this.json('POST', path, params || {}); }
  del(path) { return this.json('DELETE', path); }

  /** Every item of a list, following `meta.next_page_url`. */
  async list(path, key) {
    const items = [];
    let next = `${path}${path.includes('?') ? '&' : '?'}PageSize=1000`;
    while (next) {
      const page = await this.get(next);
      items.push(...(page[key] || []));
      next = page.meta && page.meta.next_page_url ? localPath(page.meta.next_page_url) : null;
    }
    return items;
  }

  // ---- Resources ------------------------------------------------------------------------------

  services() { return this.list('/v1/Services', 'services'); }
  service(s) { return this.get(`/v1/Services/${enc(s)}`); }
  createService(uniqueName, friendlyName) {
    return this.post('/v1/Services', { UniqueName: uniqueName, FriendlyName: friendlyName || uniqueName });
  }
  deleteService(s) { return this.del(`/v1/Services/${enc(s)}`); }

  environments(s) { return this.list(`/v1/Services/${enc(s)}/Environments`, 'environments'); }
  environment(s, e) { return this.get(`/v1/Services/${enc(s)}/Environments/${enc(e)}`); }
  createEnvironment(s, suffix) {
    const uniqueName = suffix ? `${suffix}-environment` : 'production';
    return this.post(`/v1/Services/${enc(s)}/Environments`, { UniqueName: uniqueName, DomainSuffix: suffix || undefined });
  }
  deleteEnvironment(s, e) { return this.del(`/v1/Services/${enc(s)}/Environments/${enc(e)}`); }
  deployments(s, e) { return this.list(`/v1/Services/${enc(s)}/Environments/${enc(e)}/Deployments`, 'deployments'); }
  deploy(s, e, buildSid) {
    return this.post(`/v1/Services/${enc(s)}/Environments/${enc(e)}/Deployments`, { BuildSid: buildSid });
  }

  assets(s) { return this.list(`/v1/Services/${enc(s)}/Assets`, 'assets'); }
  createAsset(s, path) { return this.post(`/v1/Services/${enc(s)}/Assets`, { FriendlyName: path }); }
  renameAsset(s, a, path) { return this.post(`/v1/Services/${enc(s)}/Assets/${enc(a)}`, { FriendlyName: path }); }
  deleteAsset(s, a) { return this.del(`/v1/Services/${enc(s)}/Assets/${enc(a)}`); }
  versions(s, a) { return this.list(`/v1/Services/${enc(s)}/Assets/${enc(a)}/Versions`, 'asset_versions'); }
  contentPath(s, a, v) { return `/v1/Services/${enc(s)}/Assets/${enc(a)}/Versions/${enc(v)}/Content`; }

  /** Size and content type of a version's bytes (HEAD of the owner-only content). */
  async contentInfo(s, a, v) {
    const res = await this.fetch('HEAD', this.contentPath(s, a, v));
    const len = res.headers.get('content-length');
    return { size: len === null ? null : Number(len), type: res.headers.get('content-type') || '' };
  }

  /** A version's bytes as a Blob (typed as stored). */
  async content(s, a, v) {
    const res = await this.fetch('GET', this.contentPath(s, a, v));
    return res.blob();
  }

  builds(s) { return this.list(`/v1/Services/${enc(s)}/Builds`, 'builds'); }
  build(s, b) { return this.get(`/v1/Services/${enc(s)}/Builds/${enc(b)}`); }
  buildStatus(s, b) { return this.get(`/v1/Services/${enc(s)}/Builds/${enc(b)}/Status`); }
  /** A share link to the asset at `url` (protected or public), valid for `ttl` seconds. */
  shareLink(url, ttl) { return this.post('/v1/ShareLinks', { Url: url, Ttl: String(ttl) }); }
  createBuild(s, versionSids) { return this.post(`/v1/Services/${enc(s)}/Builds`, { AssetVersions: versionSids }); }

  /**
   * Creates a build and waits until its build step is done (polling Status from 50 ms,
   * doubling to 1 s, for at most 5 minutes, as `assetd deploy`). Resolves with the completed
   * build; rejects when it failed or took too long.
   */
  async createCompletedBuild(s, versionSids) {
    const build = await this.createBuild(s, versionSids);
    const started = Date.now();
    let pause = 50;
    while (build.status === 'building' && Date.now() - started < 300000) {
      await new Promise((r) => { setTimeout(r, pause); });
      pause = Math.min(pause * 2, 1000);
      try {
        build.status = (await this.buildStatus(s, build.sid)).status;
      } catch (e) {
        // 503: the server is reopening its database file; keep polling.
        if (e.status !== 503) throw e;
      }
    }
    if (build.status !== 'completed') {
      throw new ApiError(0, `Build ${build.sid} ${build.status === 'building' ? 'did not finish within 5 minutes' : 'failed'}.`);
    }
    return build;
  }

  /**
   * Creates an Asset Version: multipart `Path`, `Visibility`, `Content` (the blob, with its
   * type and file name). `onProgress(loaded, total)` follows the upload; `signal` aborts it.
   */
  uploadVersion(s, a, { path, visibility, blob, filename }, { onProgress = null, signal = null } = {}) {
    if (this.revoked) return Promise.reject(this.revoked);
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append('Path', path);
      form.append('Visibility', visibility);
      form.append('Content', blob, filename || path.split('/').pop() || 'asset');
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `/v1/Services/${enc(s)}/Assets/${enc(a)}/Versions`);
      xhr.setRequestHeader('Authorization', this.authorization);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.responseType = 'text';
      if (onProgress) {
        xhr.upload.addEventListener('progress', (e) => {
          if (e.lengthComputable) onProgress(e.loaded, e.total);
        });
      }
      xhr.addEventListener('load', () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try { resolve(JSON.parse(xhr.responseText)); } catch (e) { reject(new ApiError(xhr.status, `Unreadable answer: ${e.message}`)); }
          return;
        }
        let msg = `${xhr.status} ${xhr.statusText}`;
        let code = null;
        try { const j = JSON.parse(xhr.responseText); msg = j.message || msg; code = j.code ?? null; } catch (_) { /* plain text */ }
        if (xhr.status === 401) msg = AUTH_FAILED;
        const err = new ApiError(xhr.status, msg, code);
        if (xhr.status === 401) this.unauthorized(err);
        reject(err);
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'The upload failed: the connection to the server was lost.')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'The upload was cancelled.')));
      if (signal) signal.addEventListener('abort', () => xhr.abort());
      xhr.send(form);
    });
  }
}

function enc(s) {
  return encodeURIComponent(s);
}

/** Checks credentials by listing one service. Resolves with an Api, or throws ApiError. */
export async function signIn(user, secret) {
  const api = new Api(user, secret);
  await api.get('/v1/Services?PageSize=1');
  return api;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in order. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next;
      next += 1;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
