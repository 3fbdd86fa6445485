// Browser test of the assetd web console, driven through Debian's Chromium with playwright-core.
//
// Started by tests/it/console.rs against a real `assetd serve`; by hand:
//   PORT=8080 ACCOUNT_SID=AC… AUTH_TOKEN=… node tests/console/console.test.mjs
// Env: PORT, ACCOUNT_SID, AUTH_TOKEN (required); SCREENSHOT_DIR (default
// target/console-screenshots); CHROMIUM (default /usr/bin/chromium).
//
// Exits 0 when every step passed; prints one line per step and a closing "N passed, N failed".

import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const PORT = process.env.PORT;
const SID = process.env.ACCOUNT_SID;
const TOKEN = process.env.AUTH_TOKEN;
const SHOTS = path.resolve(root, process.env.SCREENSHOT_DIR || 'target/console-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!PORT || !SID || !TOKEN) {
  console.error('console test: PORT, ACCOUNT_SID and AUTH_TOKEN must be set');
  process.exit(2);
}
const BASE = `http://127.0.0.1:${PORT}`;
const MB = 1024 * 1024;
/** Resolved to 127.0.0.1 by Chromium only (see --host-resolver-rules below). */
const OTHER_HOST = 'assetd-console.test';

let passed = 0;
let failed = 0;
const errors = [];
/** Console messages the current step expects (the browser logs a 401 it was meant to get). */
let allowed = [];
/** The page, for a screenshot when a step fails. */
let currentPage = null;

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

let stepName = 'setup';

async function step(name, fn) {
  const t = Date.now();
  stepName = name;
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED - ${name}: ${e.stack || e}`);
    if (currentPage) {
      const file = path.join(SHOTS, 'failure.png');
      await currentPage.screenshot({ path: file, fullPage: true, caret: 'initial' }).catch(() => null);
      console.log(`screenshot of the failure: ${file}`);
      const toasts = await currentPage.evaluate(() => window.__toasts).catch(() => []);
      console.log(`toasts so far:\n  ${(toasts || []).join('\n  ')}`);
    }
    throw e;
  }
}

/** GET `url` from Node; `*.localhost` hosts are reached on 127.0.0.1 with their Host header. */
function fetchUrl(url, headers = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: u.port || 80, path: u.pathname + u.search, method: 'GET',
      headers: { Host: u.host, ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** POST a multipart body (text parts, then `Content`) to the API; resolves with the JSON. */
function postMultipart(pathname, parts, content, user, secret) {
  const boundary = '----consoleTestBoundary';
  const chunks = [];
  for (const [k, v] of Object.entries(parts)) {
    chunks.push(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  }
  chunks.push(`--${boundary}\r\nContent-Disposition: form-data; name="Content"; filename="f"\r\nContent-Type: text/plain\r\n\r\n${content}\r\n--${boundary}--\r\n`);
  const body = Buffer.from(chunks.join(''));
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: PORT, path: pathname, method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`,
        'Content-Type': `multipart/form-data; boundary=${boundary}`,
        'Content-Length': body.length,
      },
    }, (res) => {
      const out = [];
      res.on('data', (c) => out.push(c));
      res.on('end', () => {
        const text = Buffer.concat(out).toString('utf8');
        if (res.statusCode >= 300) reject(new Error(`POST ${pathname}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** POST a form to the API on 127.0.0.1 with Basic auth; resolves with the parsed JSON. */
function postForm(pathname, form, user, secret) {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: PORT, path: pathname, method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`,
        'Content-Type': 'application/x-www-form-urlencoded',
        'Content-Length': Buffer.byteLength(body),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode >= 300) reject(new Error(`POST ${pathname}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sign = (token, url) => createHmac('sha1', token).update(url).digest('base64');

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  fs.rmSync(path.join(SHOTS, 'failure.png'), { force: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'assetd-console-'));
  const files = {
    public: path.join(tmp, 'hello.txt'),
    protected: path.join(tmp, 'secret.json'),
    private: path.join(tmp, 'config.json'),
    big: path.join(tmp, 'huge.bin'),
    mid: path.join(tmp, 'medium.bin'),
  };
  fs.writeFileSync(files.public, 'Ahoy, world!\n');
  fs.writeFileSync(files.protected, '{"secret": "only with a signature"}\n');
  fs.writeFileSync(files.private, '{"api_key": "never over HTTP"}\n');
  fs.writeFileSync(files.big, Buffer.alloc(25 * MB + 1, 1));
  fs.writeFileSync(files.mid, Buffer.alloc(12 * MB, 2));

  // The pure-JS SHA-1/HMAC against twilio-python's vectors, here in Node.
  await step('pure-JS HMAC-SHA1 matches the signature vectors (Node)', async () => {
    const { sha1, hmacSha1, base64, hex, signedData } = await import(path.join(root, 'web', 'sign.js'));
    const enc = (s) => new TextEncoder().encode(s);
    assert(hex(sha1(enc('abc'))) === 'a9993e364706816aba3e25717850c26c9cd0d89d', 'sha1(abc)');
    assert(hex(sha1(enc(''))) === 'da39a3ee5e6b4b0d3255bfef95601890afd80709', 'sha1("")');
    assert(hex(sha1(enc('a'.repeat(1000)))) === '291e9a6c66994949b57ba5e650361e98fc36b1ba', 'sha1(a*1000)');
    assert(hex(hmacSha1(enc('key'), enc('The quick brown fox jumps over the lazy dog'))) === 'de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9', 'RFC 2104 example');
    assert(hex(hmacSha1(enc('k'.repeat(100)), enc('long key'))) === createHmac('sha1', 'k'.repeat(100)).update('long key').digest('hex'), 'long key');
    const vectors = JSON.parse(fs.readFileSync(path.join(root, 'tests', 'data', 'signature-vectors.json'), 'utf8')).vectors;
    let n = 0;
    for (const v of vectors.filter((x) => x.valid)) {
      const got = base64(hmacSha1(enc(v.auth_token), enc(signedData(v.url, v.params))));
      assert(got === v.signature, `vector ${v.url}: ${got} != ${v.signature}`);
      n += 1;
    }
    assert(n > 10, 'vectors were read');
  });

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'assetd-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // A name for this machine that is not a secure context (unlike 127.0.0.1): the console
      // reached "from another machine", over plain http.
      `--host-resolver-rules=MAP ${OTHER_HOST} 127.0.0.1`],
    viewport: { width: 1280, height: 860 },
    acceptDownloads: true,
  });
  try {
    // Record every toast, so that a failing step can say what the console told the user.
    await context.addInitScript(() => {
      window.__toasts = [];
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) {
            if (n.classList && n.classList.contains('toast')) window.__toasts.push(n.innerText);
          }
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    currentPage = page;
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warning') return;
      const text = m.text();
      if (m.type() === 'error' && !allowed.some((a) => text.includes(a))) errors.push(`[${stepName}] console.${m.type()}: ${text}`);
      if (m.type() === 'warning' && /Content Security Policy|deprecated|preload/i.test(text)) errors.push(`[${stepName}] console.warning: ${text}`);
    });
    page.on('pageerror', (e) => errors.push(`[${stepName}] pageerror: ${e.message}`));
    page.on('requestfailed', (r) => {
      const why = r.failure() ? r.failure().errorText : '';
      // ERR_ABORTED: a navigation (reload) cancelled the request, as browsers do.
      if (!/^(blob|data):/.test(r.url()) && why !== 'net::ERR_ABORTED') errors.push(`[${stepName}] request failed: ${r.url()} ${why}`);
    });
    const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, caret: 'initial' });
    const rows = () => page.locator('#asset-list .asset-row');
    const row = (p) => page.locator(`#asset-list .asset-row[data-path="${p}"]`);
    const noOverflow = async (what) => {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `no horizontal scrolling of ${what} at ${page.viewportSize().width} px (${overflow} px too wide)`);
    };
    const clipboard = () => page.evaluate(() => navigator.clipboard.readText());
    const rowMenu = async (p, item) => {
      await row(p).getByRole('button', { name: `Actions for ${p}` }).click();
      await page.getByRole('menuitem', { name: item, exact: true }).click();
    };

    await step('the page is served with cache-busting and a strict CSP', async () => {
      const res = await fetchUrl(`${BASE}/`);
      assert(res.status === 200, `GET / is ${res.status}`);
      assert(res.headers['cache-control'] === 'no-cache', `index cache-control ${res.headers['cache-control']}`);
      assert(/script-src 'self'/.test(res.headers['content-security-policy'] || ''), 'CSP');
      const m = res.body.match(/src="(\/ui\/[0-9a-f]{16}\/app\.js)"/);
      assert(m, 'index.html links a versioned app.js');
      const js = await fetchUrl(`${BASE}${m[1]}`);
      assert(js.status === 200 && /immutable/.test(js.headers['cache-control']), 'app.js is immutable');
      assert((await fetchUrl(`${BASE}/nope`)).status === 404, 'unknown path is 404');
      assert((await fetchUrl(`${BASE}/healthz`)).status === 200, 'healthz');
    });

    await step('a wrong token shows a clear message', async () => {
      await page.goto(`${BASE}/`);
      await page.getByLabel('Account SID or API key SID').fill(SID);
      await page.getByLabel('Auth token or API key secret').fill(`${TOKEN.slice(0, -1)}${TOKEN.endsWith('0') ? '1' : '0'}`);
      allowed = ['status of 401'];
      await page.getByRole('button', { name: 'Sign in' }).click();
      const alert = page.locator('.signin-form [role=alert]');
      await alert.waitFor();
      const text = await alert.innerText();
      assert(/Sign-in failed/.test(text) && /auth token/.test(text), `message: ${text}`);
      allowed = [];
      assert(await page.evaluate(() => sessionStorage.length) === 0, 'nothing stored after a failed sign-in');
      await shot('1280-signin-error');
    });

    await step('sign in keeps the credentials in sessionStorage only', async () => {
      await page.getByLabel('Auth token or API key secret').fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Services', level: 1 }).waitFor();
      const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('assetd.session')));
      assert(stored.user === SID && stored.secret === TOKEN, 'session storage holds the credentials');
      assert((await context.cookies()).length === 0, 'no cookies');
      assert(!page.url().includes(TOKEN), 'token not in the URL');
      assert(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
    });

    let serviceSid;
    await step('create a service (with a dev environment)', async () => {
      await page.locator('#create-service').click();
      await page.getByLabel('Unique name').fill('console-test');
      await page.getByLabel('Friendly name').fill('Console test');
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await page.waitForURL(/#\/services\/ZS[0-9a-f]{32}/);
      serviceSid = page.url().match(/ZS[0-9a-f]{32}/)[0];
      await page.getByRole('heading', { name: 'Console test', level: 1 }).waitFor();
    });

    await step('the dev environment exists (created if needed)', async () => {
      await page.locator('#env-select, #new-environment').first().waitFor();
      if (!(await page.locator('#env-select').count())) {
        await page.locator('#new-environment').click();
        await page.getByLabel('Domain suffix').fill('dev');
        await page.getByRole('button', { name: 'Create environment' }).click();
      }
      await page.locator('#env-select').waitFor();
      const domain = await page.locator('#env-domain').innerText();
      assert(/^console-test-\d{4}-dev\.localhost$/.test(domain), `domain ${domain}`);
      const url = await page.locator('#env-url').innerText();
      assert(url === `http://${domain}:${PORT}/`, `env URL ${url}`);
    });

    await step('upload three files with per-file visibility', async () => {
      await rows().first().or(page.locator('#asset-list .empty')).waitFor();
      await page.locator('#add-button').click();
      await page.getByRole('menuitem', { name: 'Upload File(s)…' }).click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#upload-input').setInputFiles([files.public, files.protected, files.private, files.mid]);
      // Removal before upload.
      await dlg.getByRole('button', { name: 'Remove medium.bin' }).click();
      assert(await dlg.locator('.upload-row').count() === 3, 'three files listed after removing one');
      // Regression (issue 11): the Protected default was unexplained and a first file answered 403.
      const hint = await dlg.locator('#upload-visibility-hint').innerText();
      assert(/Protected/.test(hint) && /403/.test(hint) && /Public/.test(hint), `visibility hint: ${hint}`);
      await dlg.getByLabel('Visibility for hello.txt').selectOption('public');
      await dlg.getByLabel('Visibility for secret.json').selectOption('protected');
      await dlg.getByLabel('Visibility for config.json').selectOption('private');
      await shot('1280-upload-dialog');
      const progressSeen = page.evaluate(() => new Promise((resolve) => {
        const d = document.querySelector('dialog[open]');
        const check = () => [...d.querySelectorAll('progress')].some((p) => !p.hidden);
        if (check()) { resolve(true); return; }
        const mo = new MutationObserver(() => { if (check()) { mo.disconnect(); resolve(true); } });
        mo.observe(d, { attributes: true, subtree: true, childList: true });
        setTimeout(() => resolve(false), 10000);
      }));
      await dlg.getByRole('button', { name: 'Upload 3 files' }).click();
      assert(await progressSeen, 'a progress bar was shown');
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      await page.waitForFunction(() => document.querySelectorAll('#asset-list .asset-row').length === 3);
      for (const p of ['/hello.txt', '/secret.json', '/config.json']) {
        assert(await row(p).getAttribute('data-status') === 'changed', `${p} is gray before deploy`);
      }
      assert((await row('/config.json').innerText()).includes('Private'), 'visibility shown');
      assert((await row('/hello.txt').innerText()).includes('13 B'), 'size shown');
    });

    await step('Deploy All turns every status green', async () => {
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('#asset-list .asset-row')].every((r) => r.dataset.status === 'deployed'));
      assert(await page.locator('#asset-list .asset-row .st-deployed').count() === 3, 'three green checks');
      assert(/^ZB[0-9a-f]{32}$/.test(await page.locator('#env-build').innerText()), 'active build shown');
      await shot('1280-assets-deployed');
      // Regression (issue 11): the upload's "Deploy All to make them live" toast stayed beside
      // the "Deployed" banner.
      const stale = await page.locator('.toast', { hasText: 'Deploy All to' }).count();
      assert(stale === 0, `${stale} superseded "Deploy All to …" toast(s) still shown`);
    });

    for (const width of [1280, 390]) {
      await step(`Deploy All with the server unreachable shows no success (regression, ${width} px)`, async () => {
        // Regression (issue 11): a green "already serves the latest version" was drawn from the
        // stale list above the red "Cannot reach the server".
        await page.setViewportSize({ width, height: width === 1280 ? 860 : 780 });
        allowed = ['ERR_ABORTED', 'Failed to fetch', 'Failed to load resource'];
        await page.route('**/v1/Services/**', (r) => r.abort('aborted'));
        await page.locator('#deploy-all').click();
        await page.locator('#deploy-status .alert-error').waitFor();
        assert(await page.locator('#deploy-status .alert-success').count() === 0, 'no success beside the error');
        await page.unroute('**/v1/Services/**');
        allowed = [];
        await page.locator('#deploy-all').click();
        await page.locator('#deploy-status .alert-success').waitFor();
        await page.setViewportSize({ width: 1280, height: 860 });
      });
    }

    let publicUrl;
    let protectedUrl;
    await step('Copy URL of the public asset; it answers 200', async () => {
      await rowMenu('/hello.txt', 'Copy URL');
      await page.locator('.toast-success').first().waitFor();
      publicUrl = await clipboard();
      assert(/^http:\/\/console-test-\d{4}-dev\.localhost:\d+\/hello\.txt$/.test(publicUrl), `URL ${publicUrl}`);
      const res = await fetchUrl(publicUrl);
      assert(res.status === 200 && res.body === 'Ahoy, world!\n', `public GET ${res.status}`);
    });

    await step('the protected asset: 403 unsigned, 200 with the signed curl command', async () => {
      await rowMenu('/secret.json', 'Copy URL');
      await page.waitForFunction(async () => (await navigator.clipboard.readText()).endsWith('/secret.json'));
      protectedUrl = await clipboard();
      assert((await fetchUrl(protectedUrl)).status === 403, 'unsigned is 403');
      await row('/secret.json').locator('.asset-path').click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#signed-curl').waitFor();
      await page.waitForFunction(() => document.querySelector('#signed-curl').value.startsWith('curl '));
      const cmd = await dlg.locator('#signed-curl').inputValue();
      const m = cmd.match(/^curl -H 'X-Twilio-Signature: ([A-Za-z0-9+/=]+)' '([^']+)'$/);
      assert(m, `command ${cmd}`);
      assert(m[2] === protectedUrl, 'the command signs the asset URL');
      assert(m[1] === sign(TOKEN, protectedUrl), 'browser signature equals Node\'s HMAC-SHA1');
      const res = await fetchUrl(m[2], { 'X-Twilio-Signature': m[1] });
      assert(res.status === 200 && res.body.includes('only with a signature'), `signed GET ${res.status}`);
      await dlg.locator('#copy-curl').click();
      await page.waitForFunction(async () => (await navigator.clipboard.readText()).startsWith('curl -H'));
      assert(await clipboard() === cmd, 'copied command');
      await shot('1280-asset-protected');
      await dlg.getByRole('button', { name: 'Close', exact: true }).click();
    });

    await step('Share link of the protected asset: pick a lifetime, create, copy; the link opens it', async () => {
      await rowMenu('/secret.json', 'Share link…');
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#share-ttl').waitFor();
      await dlg.locator('#share-ttl').selectOption({ label: '1 hour' });
      assert(await dlg.locator('#share-copy').isDisabled(), 'nothing to copy before a link is made');
      const before = Math.floor(Date.now() / 1000);
      await dlg.locator('#share-create').click();
      await page.waitForFunction(() => document.querySelector('#share-url').value.includes('Signature='));
      const link = await dlg.locator('#share-url').inputValue();
      const m = link.match(/^(.+)\?Expires=(\d+)&Signature=([A-Za-z0-9_-]+)$/);
      assert(m && m[1] === protectedUrl, `share link ${link}`);
      const expires = Number(m[2]);
      assert(expires >= before + 3600 - 5 && expires <= before + 3600 + 60, `expires in about an hour: ${expires - before} s`);
      assert((await dlg.locator('#share-expires').innerText()).includes('until'), 'says until when');
      await dlg.locator('#share-copy').click();
      await page.waitForFunction(async () => (await navigator.clipboard.readText()).includes('Signature='));
      assert(await clipboard() === link, 'copied the link');
      const res = await fetchUrl(link);
      assert(res.status === 200 && res.body.includes('only with a signature'), `share link GET ${res.status}`);
      const tampered = link.replace(`Expires=${expires}`, `Expires=${expires + 1}`);
      assert((await fetchUrl(tampered)).status === 403, 'a tampered link is 403');
      await shot('1280-share-link');
      await dlg.getByRole('button', { name: 'Close', exact: true }).click();
    });

    await step('the private asset has no Copy URL and answers 404', async () => {
      await row('/config.json').getByRole('button', { name: 'Actions for /config.json' }).click();
      assert(await page.getByRole('menuitem', { name: 'Copy URL' }).count() === 0, 'no Copy URL for private');
      assert(await page.getByRole('menuitem', { name: 'Share link…' }).count() === 0, 'no Share link for private');
      await page.keyboard.press('Escape');
      const url = protectedUrl.replace(/\/secret\.json$/, '/config.json');
      assert((await fetchUrl(url)).status === 404, 'private is 404');
    });

    await step('WebCrypto and pure-JS signatures agree in the browser', async () => {
      const v = await page.evaluate(async () => {
        const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'sign.js');
        const m = await import(src);
        const url = 'http://example-1234-dev.localhost:8080/caf%C3%A9/a.mp3';
        return [await m.signUrl('tok', url, 'webcrypto'), await m.signUrl('tok', url, 'js')];
      });
      assert(v[0] === v[1] && v[0] === sign('tok', 'http://example-1234-dev.localhost:8080/caf%C3%A9/a.mp3'), `signatures ${v}`);
    });

    await step('stored names are shown with control and bidi characters escaped (regression)', async () => {
      // Names stored before the text policy may hold an ANSI escape or a right-to-left override.
      const v = await page.evaluate(async () => {
        const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'dom.js');
        const { h } = await import(src);
        return [h('span', { text: '/\u202egnp.exe' }).textContent, h('td', {}, 'a\u001b[31m\ufeffb\u200b').textContent, h('p', {}, 'line\ttab\nnext').textContent];
      });
      assert(v[0] === '/\\u{202e}gnp.exe', `bidi: ${v[0]}`);
      assert(v[1] === 'a\\u{001b}[31m\\u{feff}b\\u{200b}', `controls: ${v[1]}`);
      assert(v[2] === 'line\ttab\nnext', `tab and newline kept: ${v[2]}`);
    });

    await step('after a 401 the console stops sending the dead credentials (regression)', async () => {
      // A token rotated mid-upload: the pending uploads used to go on with the old token, and
      // ten 401s locked the whole address out of the API (429), even for the new token.
      allowed = ['status of 401'];
      const r = await page.evaluate(async ([sid]) => {
        const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'api.js');
        const { Api } = await import(src);
        const api = new Api(sid, '0'.repeat(32));
        let signedOut = 0;
        api.onUnauthorized = () => { signedOut += 1; };
        const sent = [];
        const orig = window.fetch;
        window.fetch = (...a) => { sent.push(a[0]); return orig(...a); };
        const statuses = [];
        for (let i = 0; i < 12; i += 1) {
          try { await api.get('/v1/Services'); statuses.push(200); } catch (e) { statuses.push(e.status); }
        }
        window.fetch = orig;
        return { sent: sent.length, statuses, signedOut };
      }, [SID]);
      allowed = [];
      assert(r.sent === 1, `one request reached the server, not ${r.sent}`);
      assert(r.statuses.every((x) => x === 401), `every call failed with 401: ${r.statuses}`);
      assert(r.signedOut === 1, `signed out once, not ${r.signedOut}`);
      // The address is not locked out: the real credentials still work.
      const ok = await postForm('/v1/Services', { UniqueName: 'not-locked-out', FriendlyName: 'x' }, SID, TOKEN);
      assert(ok.sid.startsWith('ZS'), 'the API still answers this address');
    });

    await step('editing an asset turns it gray until the next Deploy All', async () => {
      await row('/hello.txt').locator('.asset-path').click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#asset-editor').waitFor();
      assert(await dlg.locator('#asset-editor').inputValue() === 'Ahoy, world!\n', 'editor shows the content');
      await dlg.locator('#asset-editor').fill('Ahoy again!\n');
      await dlg.locator('#save-version').click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-path="/hello.txt"]').dataset.status === 'changed');
      assert(await row('/secret.json').getAttribute('data-status') === 'deployed', 'others stay green');
      assert((await fetchUrl(publicUrl)).body === 'Ahoy, world!\n', 'the live content is unchanged before deploy');
      await shot('1280-assets-changed');
      await page.locator('#deploy-all').click();
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-path="/hello.txt"]').dataset.status === 'deployed');
      assert((await fetchUrl(publicUrl)).body === 'Ahoy again!\n', 'the new content is live after deploy');
    });

    await step('re-uploading an existing public file keeps it public (regression)', async () => {
      await page.locator('#add-button').click();
      await page.getByRole('menuitem', { name: 'Upload File(s)…' }).click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#upload-input').setInputFiles([files.public]);
      assert(await dlg.getByLabel('Visibility for hello.txt').inputValue() === 'public', 'the existing asset\'s visibility is preselected');
      assert((await dlg.locator('.upload-row .row-msg').innerText()).includes('Replaces the content'), 'the replacement is announced');
      await dlg.locator('#upload-cancel').click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
    });

    await step('New Asset: a TwiML document from the editor', async () => {
      await page.locator('#add-button').click();
      await page.getByRole('menuitem', { name: 'New Asset…' }).click();
      const dlg = page.locator('dialog[open]');
      await dlg.getByLabel('Type').selectOption('twiml');
      assert((await dlg.locator('#new-content').inputValue()).includes('<Response>'), 'TwiML template');
      await dlg.getByLabel('Path').fill('/voice.xml');
      await dlg.getByLabel('Visibility').selectOption('public');
      await dlg.locator('#new-content').fill('<Response><Say>broken');
      await dlg.locator('#new-save').click();
      await dlg.locator('[role=alert]').filter({ hasText: 'not well-formed XML' }).waitFor();
      await dlg.locator('#new-content').fill('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Say>Hi</Say></Response>\n');
      await dlg.locator('#new-save').click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      await row('/voice.xml').waitFor();
      assert(await row('/voice.xml').getAttribute('data-status') === 'changed', 'new asset is gray');
    });

    await step('History: roll back to the previous build', async () => {
      const before = await page.locator('#env-build').innerText();
      await page.getByRole('tab', { name: 'History' }).click();
      await page.locator('#deployments tbody tr').nth(1).waitFor();
      assert(await page.locator('#deployments tbody tr').count() === 2, 'two deployments');
      // Regression (issue 11): the builds list repeated the deployments table; it is folded.
      assert(!(await page.locator('#all-builds').evaluate((d) => d.open)), 'the list of all builds starts folded');
      assert(!(await page.locator('#builds').isVisible()), 'builds hidden until unfolded');
      assert((await page.locator('#deployments tbody tr').first().innerText()).includes('Live'), 'newest is live');
      await shot('1280-history');
      const older = await page.locator('#deployments tbody tr').nth(1).getAttribute('data-build');
      await page.locator('#deployments .rollback').first().click();
      await page.waitForFunction((b) => document.querySelector('#env-build').innerText === b, older);
      assert(older !== before, 'another build is live');
      assert((await fetchUrl(publicUrl)).body === 'Ahoy, world!\n', 'the old content is live again');
      assert(await page.locator('#deployments tbody tr').count() === 3, 'the rollback is a deployment');
      // Regression (issue 11): History showed SIDs only; each deployment now says what it
      // changed against the one before, expandable to the paths (at 1280 and 390 px).
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: width === 1280 ? 860 : 780 });
        const cell = page.locator('#deployments tbody tr').first().locator('td.changes');
        await cell.locator('summary').click();
        const text = await cell.innerText();
        assert(/\d+ added, [1-9]\d* changed, \d+ removed/.test(text) && text.includes('/hello.txt'), `changes of the rollback: ${text}`);
        assert((await page.locator('#deployments tbody tr').last().locator('td.changes').innerText()).startsWith('first deployment'), 'the first deployment says so');
        await noOverflow('history');
        await cell.locator('summary').click();
      }
      await page.setViewportSize({ width: 1280, height: 860 });
      await page.getByRole('tab', { name: 'Assets' }).click();
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-path="/hello.txt"]')?.dataset.status === 'changed');
      assert(await row('/secret.json').getAttribute('data-status') === 'deployed', 'unchanged assets stay green after rollback');
      // Regression (issue 11): Deploy All after a rollback made a duplicate of the build it
      // rolled away from instead of deploying that one again.
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      const latest = await page.locator('#env-build').innerText();
      await page.getByRole('tab', { name: 'History' }).click();
      await page.locator('#deployments .rollback').first().waitFor();
      await page.locator('#deployments .rollback').first().click();
      await page.waitForFunction((b) => document.querySelector('#env-build').innerText !== b, latest);
      await page.getByRole('tab', { name: 'Assets' }).click();
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-status="changed"]'));
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      const status = await page.locator('#deploy-status').innerText();
      assert(status.includes(latest) && status.includes('reused'), `Deploy All reuses ${latest}: ${status}`);
      assert(await page.locator('#env-build').innerText() === latest, 'the identical build is live again');
    });

    await step('Deploy All includes what another client added meanwhile (regression)', async () => {
      // Another client (a second tab, the CLI) adds an asset after this page loaded it all.
      const asset = await postForm('/v1/Services/console-test/Assets', { FriendlyName: '/elsewhere.txt' }, SID, TOKEN);
      await postMultipart(`/v1/Services/console-test/Assets/${asset.sid}/Versions`, { Path: '/elsewhere.txt', Visibility: 'public' }, 'added by another client\n', SID, TOKEN);
      assert(await row('/elsewhere.txt').count() === 0, 'this page has not seen it yet');
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      const res = await fetchUrl(publicUrl.replace('/hello.txt', '/elsewhere.txt'));
      assert(res.status === 200 && res.body === 'added by another client\n', `the other client's asset is live (${res.status})`);
      assert((await fetchUrl(publicUrl)).status === 200, 'and this page\'s assets too');
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-path="/elsewhere.txt"]')?.dataset.status === 'deployed');
    });

    await step('a file over 25 MB is refused before upload, naming the limit', async () => {
      let uploads = 0;
      const onReq = (r) => { if (r.method() === 'POST' && /\/Versions$/.test(r.url())) uploads += 1; };
      page.on('request', onReq);
      await page.locator('#add-button').click();
      await page.getByRole('menuitem', { name: 'Upload File(s)…' }).click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#upload-input').setInputFiles([files.big, files.mid]);
      const alert = dlg.locator('.upload > [role=alert]');
      await alert.waitFor();
      const text = await alert.innerText();
      assert(/huge\.bin/.test(text) && /limited to 25 MB/.test(text), `message: ${text}`);
      assert(await dlg.locator('.upload-row').count() === 1, 'the big file was not added');
      await dlg.getByLabel('Visibility for medium.bin').selectOption('private');
      const msg = await dlg.locator('.upload-row .row-msg.error').innerText();
      assert(/private assets are limited to 10 MB/.test(msg), `private limit: ${msg}`);
      assert(await dlg.locator('#upload-start').isDisabled(), 'upload disabled');
      await shot('1280-upload-refused');
      await dlg.getByRole('button', { name: 'Cancel' }).click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      page.off('request', onReq);
      assert(uploads === 0, 'nothing was sent');
    });

    await step('drag-and-drop an image: it uploads, previews and downloads', async () => {
      // A 2x2 PNG, dropped on the Assets pane as a browser would.
      const png = 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==';
      await page.evaluate((b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dot.png', { type: 'image/png' }));
        const pane = document.querySelector('.assets-pane');
        for (const type of ['dragenter', 'dragover', 'drop']) {
          pane.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
        }
      }, png);
      const dlg = page.locator('dialog[open]');
      await dlg.locator('.upload-row[data-name="dot.png"]').waitFor();
      await dlg.getByLabel('Visibility for dot.png').selectOption('public');
      await dlg.getByRole('button', { name: 'Upload', exact: true }).click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      await row('/dot.png').waitFor();
      await row('/dot.png').locator('.asset-path').click();
      const img = page.locator('dialog[open] img.preview-img');
      await img.waitFor();
      await page.waitForFunction(() => document.querySelector('dialog[open] img.preview-img').naturalWidth === 2);
      await page.locator('dialog[open]').getByRole('button', { name: 'Close', exact: true }).click();
      const download = page.waitForEvent('download');
      await rowMenu('/dot.png', 'Download');
      const file = await (await download).path();
      assert(fs.readFileSync(file).equals(Buffer.from(png, 'base64')), 'downloaded bytes match');
      assert((await download).suggestedFilename() === 'dot.png', 'download name');
      // Not needed later: delete it (never deployed, so no redeploy is needed).
      await rowMenu('/dot.png', 'Delete…');
      const confirm = page.locator('dialog[open]');
      assert(!(await confirm.innerText()).includes('live in'), 'not live anywhere');
      await confirm.getByRole('button', { name: 'Delete asset', exact: true }).click();
      await row('/dot.png').waitFor({ state: 'detached' });
    });

    await step('menus work from the keyboard', async () => {
      const btn = row('/secret.json').getByRole('button', { name: 'Actions for /secret.json' });
      await btn.focus();
      await page.keyboard.press('Enter');
      await page.locator('[role=menu]').waitFor();
      const first = await page.evaluate(() => document.activeElement.textContent);
      assert(first === 'Open', `focus on first item (${first})`);
      await page.keyboard.press('ArrowDown');
      assert(await page.evaluate(() => document.activeElement.getAttribute('role')) === 'menuitem', 'arrow moves within the menu');
      await page.keyboard.press('Escape');
      await page.locator('[role=menu]').waitFor({ state: 'detached' });
      assert(await page.evaluate(() => document.activeElement.getAttribute('aria-label')) === 'Actions for /secret.json', 'focus returns to the button');
    });

    await step('over plain http from another host: path-style URLs and the pure-JS signature', async () => {
      const other = await context.newPage();
      other.on('pageerror', (e) => errors.push(`[${stepName}] pageerror: ${e.message}`));
      other.on('console', (m) => { if (m.type() === 'error') errors.push(`[${stepName}] console.error: ${m.text()}`); });
      try {
        const origin = `http://${OTHER_HOST}:${PORT}`;
        await other.goto(`${origin}/`);
        assert(await other.evaluate(() => window.isSecureContext) === false, 'not a secure context');
        await other.getByLabel('Account SID or API key SID').fill(SID);
        await other.getByLabel('Auth token or API key secret').fill(TOKEN);
        await other.getByRole('button', { name: 'Sign in' }).click();
        await other.getByRole('link', { name: 'Console test' }).click();
        await other.locator('#asset-list .asset-row[data-path="/secret.json"] .asset-path').click();
        await other.waitForFunction(() => document.querySelector('#signed-curl')?.value.startsWith('curl '));
        const text = await other.locator('dialog[open]').innerText();
        assert(/built-in HMAC-SHA1/.test(text), 'the pure-JS HMAC was used');
        const cmd = await other.locator('#signed-curl').inputValue();
        const m = cmd.match(/^curl -H 'X-Twilio-Signature: ([A-Za-z0-9+/=]+)' '([^']+)'$/);
        assert(m && m[2].startsWith(`${origin}/e/console-test-`) && m[2].endsWith('-dev/secret.json'), `path-style URL: ${cmd}`);
        assert(m[1] === sign(TOKEN, m[2]), 'pure-JS signature equals Node\'s');
        assert((await fetchUrl(m[2])).status === 403, 'path-style unsigned is 403');
        const res = await fetchUrl(m[2], { 'X-Twilio-Signature': m[1] });
        assert(res.status === 200 && res.body.includes('only with a signature'), `path-style signed GET ${res.status}`);
        await other.screenshot({ path: path.join(SHOTS, '1280-asset-plain-http.png'), caret: 'initial' });
      } finally {
        await other.close();
      }
    });

    await step('signed in with an API key: signing explains what to run instead', async () => {
      const key = await postForm(`/2010-04-01/Accounts/${SID}/Keys.json`, { FriendlyName: 'console test' }, SID, TOKEN);
      assert(/^SK/.test(key.sid) && key.secret, 'API key created');
      const other = await context.newPage();
      other.on('pageerror', (e) => errors.push(`[${stepName}] pageerror: ${e.message}`));
      try {
        await other.goto(`${BASE}/`);
        await other.getByLabel('Account SID or API key SID').fill(key.sid);
        await other.getByLabel('Auth token or API key secret').fill(key.secret);
        await other.getByRole('button', { name: 'Sign in' }).click();
        await other.getByRole('link', { name: 'Console test' }).click();
        await other.locator('#asset-list .asset-row[data-path="/secret.json"] .asset-path').click();
        const dlg = other.locator('dialog[open]');
        await dlg.getByText('this session uses an API key').waitFor();
        assert((await dlg.locator('#signed-curl').inputValue()).startsWith("assetd sign 'http://"), 'the assetd sign command is offered');
      } finally {
        await other.close();
      }
    });

    await step('rename and change visibility from the context menu', async () => {
      await rowMenu('/voice.xml', 'Rename path…');
      const dlg = page.locator('dialog[open]');
      await dlg.getByLabel('New path').fill('/twiml/voice.xml');
      await dlg.getByRole('button', { name: 'Rename', exact: true }).click();
      await row('/twiml/voice.xml').waitFor();
      await rowMenu('/twiml/voice.xml', 'Make protected');
      await page.waitForFunction(() => document.querySelector('#asset-list .asset-row[data-path="/twiml/voice.xml"]')?.innerText.includes('Protected'));
    });

    await step('delete an asset (with confirmation), removing it from dev first', async () => {
      await rowMenu('/config.json', 'Delete…');
      const dlg = page.locator('dialog[open]');
      assert((await dlg.innerText()).includes('live in dev'), 'the dialog says it is live');
      assert((await dlg.innerText()).includes('rolling back to one of those serves it again'), 'the dialog says builds keep it');
      await dlg.getByRole('button', { name: 'Delete asset', exact: true }).click();
      await row('/config.json').waitFor({ state: 'detached' });
      // hello, secret, voice, and the asset another client added.
      assert(await rows().count() === 4, 'four assets left');
    });

    await step('Deploy All shows the API\'s error inline, naming the file', async () => {
      // Another client gives a second asset a version with the path /hello.txt: a build may
      // hold one version per path, so the API refuses it and says which path.
      const auth = { Authorization: `Basic ${Buffer.from(`${SID}:${TOKEN}`).toString('base64')}` };
      const svc = page.url().match(/ZS[0-9a-f]{32}/)[0];
      const asset = await postForm(`/v1/Services/${svc}/Assets`, { FriendlyName: '/copy-of-hello' }, SID, TOKEN);
      const form = new FormData();
      form.append('Path', '/hello.txt');
      form.append('Visibility', 'public');
      form.append('Content', new Blob(['copy\n'], { type: 'text/plain' }), 'hello.txt');
      const res = await fetch(`${BASE}/v1/Services/${svc}/Assets/${asset.sid}/Versions`, { method: 'POST', headers: auth, body: form });
      assert(res.status === 201, `version created: ${res.status}`);
      await page.reload();
      await page.waitForFunction(() => document.querySelectorAll('#asset-list .asset-row[data-path="/hello.txt"]').length === 2);
      allowed = ['status of 400'];
      await page.locator('#deploy-all').click();
      const alert = page.locator('#deploy-status .alert-error');
      await alert.waitFor();
      const text = await alert.innerText();
      assert(/Deploy failed/.test(text) && /\/hello\.txt/.test(text) && /twice/.test(text), `inline error: ${text}`);
      allowed = [];
      await shot('1280-deploy-error');
      const del = await fetch(`${BASE}/v1/Services/${svc}/Assets/${asset.sid}`, { method: 'DELETE', headers: auth });
      assert(del.status === 204, 'cleanup');
      await page.reload();
      await page.waitForFunction(() => document.querySelectorAll('#asset-list .asset-row[data-path="/hello.txt"]').length === 1);
    });

    await step('screenshots at 360 px', async () => {
      await page.setViewportSize({ width: 360, height: 780 });
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('#asset-list .asset-row')].every((r) => r.dataset.status === 'deployed'));
      await noOverflow('assets');
      await shot('360-assets');
      // Regression (issue 11): on a phone "Delete service" was the first control of the page.
      for (const width of [390, 1280]) {
        await page.setViewportSize({ width, height: 780 });
        const del = await page.locator('#delete-service').boundingBox();
        const deploy = await page.locator('#deploy-all').boundingBox();
        if (width === 390) assert(del.y > deploy.y, `Delete service (y ${del.y}) comes after Deploy All (y ${deploy.y}) at 390 px`);
        else assert(del.y < deploy.y, 'Delete service stays in the header at 1280 px');
      }
      await page.setViewportSize({ width: 360, height: 780 });
      await row('/secret.json').getByRole('button', { name: 'Actions for /secret.json' }).click();
      await page.screenshot({ path: path.join(SHOTS, '360-menu.png'), caret: 'initial' });
      await page.keyboard.press('Escape');
      await row('/hello.txt').locator('.asset-path').click();
      await page.locator('#asset-editor').waitFor();
      await page.screenshot({ path: path.join(SHOTS, '360-asset.png'), caret: 'initial' });
      await page.locator('dialog[open]').getByRole('button', { name: 'Close', exact: true }).click();
      await page.getByRole('tab', { name: 'History' }).click();
      await page.locator('#deployments').waitFor();
      await noOverflow('history');
      await shot('360-history');
      await page.getByRole('tab', { name: 'Assets' }).click();
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    await step('services list, and deleting a service with confirmation', async () => {
      await page.goto(`${BASE}/#/`);
      await page.locator('#create-service').click();
      await page.getByLabel('Unique name').fill('scratch');
      await page.locator('#with-dev').uncheck();
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await page.waitForURL(/#\/services\/ZS/);
      await page.locator('#new-environment').waitFor();
      // Regression (issue 11): a service whose two names are the same showed its name twice.
      const codes = await page.locator('.page-header code').allInnerTexts();
      assert(!codes.includes('scratch'), `the name is not repeated under the title: ${JSON.stringify(codes)}`);
      await page.getByRole('link', { name: 'Services', exact: true }).click();
      await page.getByRole('button', { name: 'Delete service scratch' }).waitFor();
      assert(await page.locator('.unique-name', { hasText: /^scratch$/ }).count() === 0, 'scratch is listed once');
      assert(await page.locator('.unique-name', { hasText: /^console-test$/ }).count() === 1, 'a different unique name is still shown');
      await shot('1280-services');
      await page.getByRole('button', { name: 'Delete service scratch' }).click();
      await page.getByRole('button', { name: 'Cancel' }).click();
      assert(await page.getByRole('button', { name: 'Delete service scratch' }).count() === 1, 'cancel keeps it');
      await page.getByRole('button', { name: 'Delete service scratch' }).click();
      await page.locator('dialog[open]').getByRole('button', { name: 'Delete service', exact: true }).click();
      await page.getByRole('button', { name: 'Delete service scratch' }).waitFor({ state: 'detached' });
      await page.getByRole('link', { name: 'Console test' }).waitFor();
      assert(await page.getByRole('button', { name: 'Delete service scratch' }).count() === 0, 'scratch is gone');
      await page.setViewportSize({ width: 360, height: 780 });
      await noOverflow('services');
      await shot('360-services');
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    await step('no two environments share a name (production and a "production" suffix, regression)', async () => {
      // Regression (issue 11): the suffix-less environment and one whose suffix is
      // "production" were both listed as "production".
      const svc = await postForm('/v1/Services', { UniqueName: 'twoprod', FriendlyName: 'Two prod' }, SID, TOKEN);
      await postForm(`/v1/Services/${svc.sid}/Environments`, { UniqueName: 'production' }, SID, TOKEN);
      await postForm(`/v1/Services/${svc.sid}/Environments`, { UniqueName: 'production-environment', DomainSuffix: 'production' }, SID, TOKEN);
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: width === 1280 ? 860 : 780 });
        await page.goto(`${BASE}/#/services/${svc.sid}`);
        await page.locator('#env-select').waitFor();
        const names = await page.locator('#env-select option').allInnerTexts();
        assert(names.length === 2 && new Set(names).size === 2, `environment names ${JSON.stringify(names)}`);
      }
      await page.setViewportSize({ width: 1280, height: 860 });
      const auth = { Authorization: `Basic ${Buffer.from(`${SID}:${TOKEN}`).toString('base64')}` };
      for (const e of (await (await fetch(`${BASE}/v1/Services/${svc.sid}/Environments`, { headers: auth })).json()).environments) {
        await fetch(`${BASE}/v1/Services/${svc.sid}/Environments/${e.sid}`, { method: 'DELETE', headers: auth });
      }
      await fetch(`${BASE}/v1/Services/${svc.sid}`, { method: 'DELETE', headers: auth });
      await page.goto(`${BASE}/#/`);
    });

    await step('sign out clears the session', async () => {
      await page.locator('#sign-out').click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert(await page.evaluate(() => sessionStorage.length) === 0, 'sessionStorage cleared');
      await page.reload();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      await page.setViewportSize({ width: 360, height: 780 });
      await shot('360-signin');
    });

    await step('no errors in the browser console', async () => {
      assert(!errors.length, `errors:\n  ${errors.join('\n  ')}`);
    });
    void serviceSid;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => {
  console.log(`console: ${passed} passed, ${failed} failed`);
  console.log(`screenshots: ${SHOTS}`);
  process.exit(failed ? 1 : 0);
}, (e) => {
  if (!failed) console.log(`FAILED - setup: ${e.stack || e}`);
  if (errors.length) console.log(`browser errors:\n  ${errors.join('\n  ')}`);
  console.log(`console: ${passed} passed, ${failed || 1} failed`);
  process.exit(1);
});
