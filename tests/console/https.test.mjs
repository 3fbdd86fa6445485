// The web console over HTTPS (issue 8: "the console works over HTTPS unchanged"), driven
// through Debian's Chromium with playwright-core, against `assetd serve --tls-self-signed`.
//
// Chromium trusts the server by the SHA-256 of its certificate's public key
// (`--ignore-certificate-errors-spki-list`, computed here from the PEM): no blanket
// `ignoreHTTPSErrors`, so the page is a secure context exactly as behind a real certificate.
// Node's own requests verify the server against the PEM for each name.
//
// Started by tests/it/console.rs; by hand:
//   PORT=8443 ACCOUNT_SID=AC… AUTH_TOKEN=… CA=DATA/tls/self-signed.pem BASE_DOMAIN=assets.test \
//     node tests/console/https.test.mjs
// Env: PORT, ACCOUNT_SID, AUTH_TOKEN, CA, BASE_DOMAIN (required); SCREENSHOT_DIR (default
// target/console-screenshots); CHROMIUM (default /usr/bin/chromium).
//
// Exits 0 when every step passed; prints one line per step and a closing "N passed, N failed".

import { chromium } from 'playwright-core';
import { createHash, createHmac, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const { PORT, ACCOUNT_SID: SID, AUTH_TOKEN: TOKEN, CA, BASE_DOMAIN } = process.env;
const SHOTS = path.resolve(root, process.env.SCREENSHOT_DIR || 'target/console-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!PORT || !SID || !TOKEN || !CA || !BASE_DOMAIN) {
  console.error('console https test: PORT, ACCOUNT_SID, AUTH_TOKEN, CA and BASE_DOMAIN must be set');
  process.exit(2);
}
const BASE = `https://localhost:${PORT}`;
const CA_PEM = fs.readFileSync(CA);

let passed = 0;
let failed = 0;
const errors = [];
let allowed = [];
let currentPage = null;
let stepName = 'setup';

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

async function step(name, fn) {
  const t = Date.now();
  stepName = name;
  try {
    await fn();
    passed += 1;
    console.log(`ok - https: ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED - https: ${name}: ${e.stack || e}`);
    if (currentPage) {
      const file = path.join(SHOTS, 'https-failure.png');
      await currentPage.screenshot({ path: file, fullPage: true, caret: 'initial' }).catch(() => null);
      console.log(`screenshot of the failure: ${file}`);
    }
    throw e;
  }
}

/** GET `url` from Node over https, on 127.0.0.1, verifying the server as the URL's host. */
function fetchUrl(url, headers = {}) {
  return fetchRaw(url, headers).then((r) => ({ ...r, body: r.raw.toString('utf8') }));
}

/** [`fetchUrl`] with the body as bytes (`raw`). */
function fetchRaw(url, headers = {}) {
  const u = new URL(url);
  assert(u.protocol === 'https:', `an https URL: ${url}`);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: u.port || 443, path: u.pathname + u.search, method: 'GET',
      servername: u.hostname, ca: CA_PEM, headers: { Host: u.host, ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, raw: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sign = (token, url) => createHmac('sha1', token).update(url).digest('base64');

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's flag wants it. */
function spkiHash(pem) {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  fs.rmSync(path.join(SHOTS, 'https-failure.png'), { force: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'assetd-console-https-'));
  const files = {
    public: path.join(tmp, 'hello.txt'),
    protected: path.join(tmp, 'secret.json'),
    private: path.join(tmp, 'config.json'),
    // Over the spool threshold of the engine (256 KiB): an HTTP/2 request body of many frames.
    mid: path.join(tmp, 'medium.bin'),
  };
  fs.writeFileSync(files.public, 'Ahoy over TLS!\n');
  fs.writeFileSync(files.protected, '{"secret": "only with a signature"}\n');
  fs.writeFileSync(files.private, '{"api_key": "never over HTTP"}\n');
  const midBytes = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < midBytes.length; i += 1) midBytes[i] = (i * 7 + (i >> 10)) & 0xff;
  fs.writeFileSync(files.mid, midBytes);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'assetd-chromium-https-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // SECURITY (of the test): trust this one key, not every certificate.
      `--ignore-certificate-errors-spki-list=${spkiHash(CA_PEM)}`,
      `--host-resolver-rules=MAP *.${BASE_DOMAIN} 127.0.0.1`],
    viewport: { width: 1280, height: 860 },
  });
  try {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    currentPage = page;
    page.on('console', (m) => {
      const text = m.text();
      if (m.type() === 'error' && !allowed.some((a) => text.includes(a))) errors.push(`[${stepName}] console.error: ${text}`);
      if (m.type() === 'warning' && /Mixed Content|Content Security Policy|certificate/i.test(text)) errors.push(`[${stepName}] console.warning: ${text}`);
    });
    page.on('pageerror', (e) => errors.push(`[${stepName}] pageerror: ${e.message}`));
    page.on('requestfailed', (r) => {
      const why = r.failure() ? r.failure().errorText : '';
      if (!/^(blob|data):/.test(r.url()) && why !== 'net::ERR_ABORTED') errors.push(`[${stepName}] request failed: ${r.url()} ${why}`);
    });
    page.on('request', (r) => {
      if (/^http:/.test(r.url())) errors.push(`[${stepName}] plain-http request from an https page: ${r.url()}`);
    });
    const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, caret: 'initial' });
    const rows = () => page.locator('#asset-list .asset-row');
    const row = (p) => page.locator(`#asset-list .asset-row[data-path="${p}"]`);
    const clipboard = () => page.evaluate(() => navigator.clipboard.readText());
    const rowMenu = async (p, item) => {
      await row(p).getByRole('button', { name: `Actions for ${p}` }).click();
      await page.getByRole('menuitem', { name: item, exact: true }).click();
    };

    await step('the console loads over https as a secure context, trusted by its key', async () => {
      const res = await page.goto(`${BASE}/`);
      assert(res.status() === 200, `GET / is ${res.status()}`);
      assert(page.url().startsWith('https://'), `page URL ${page.url()}`);
      assert(await page.evaluate(() => window.isSecureContext) === true, 'a secure context');
      const security = await res.securityDetails();
      assert(security && /TLS 1\.[23]/.test(security.protocol), `TLS: ${JSON.stringify(security)}`);
      const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert(proto === 'h2', `the console is served over HTTP/2 (ALPN): ${proto}`);
    });

    await step('sign in', async () => {
      await page.getByLabel('Account SID or API key SID').fill(SID);
      await page.getByLabel('Auth token or API key secret').fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Services', level: 1 }).waitFor();
    });

    let domain;
    await step('create a service; its environment URL is https', async () => {
      await page.locator('#create-service').click();
      await page.getByLabel('Unique name').fill('secure-console');
      await page.getByLabel('Friendly name').fill('Secure console');
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await page.waitForURL(/#\/services\/ZS[0-9a-f]{32}/);
      await page.locator('#env-select, #new-environment').first().waitFor();
      if (!(await page.locator('#env-select').count())) {
        await page.locator('#new-environment').click();
        await page.getByLabel('Domain suffix').fill('dev');
        await page.getByRole('button', { name: 'Create environment' }).click();
      }
      await page.locator('#env-select').waitFor();
      domain = await page.locator('#env-domain').innerText();
      const re = new RegExp(`^secure-console-\\d{4}-dev\\.${BASE_DOMAIN.replace(/\./g, '\\.')}$`);
      assert(re.test(domain), `domain ${domain}`);
      const url = await page.locator('#env-url').innerText();
      assert(url === `https://${domain}:${PORT}/`, `env URL ${url}`);
    });

    await step('the API\'s url fields are https', async () => {
      const meta = await page.evaluate(async ([sid, token]) => {
        const r = await fetch('/v1/Services', { headers: { Authorization: `Basic ${btoa(`${sid}:${token}`)}` } });
        return (await r.json()).meta;
      }, [SID, TOKEN]);
      assert(meta.url.startsWith(`${BASE}/v1/Services`), `meta.url ${meta.url}`);
      assert(meta.first_page_url.startsWith(`${BASE}/v1/Services`), `first_page_url ${meta.first_page_url}`);
    });

    await step('upload four files (one of 3 MB, over HTTP/2) with per-file visibility, then Deploy All', async () => {
      await rows().first().or(page.locator('#asset-list .empty')).waitFor();
      await page.locator('#add-button').click();
      await page.getByRole('menuitem', { name: 'Upload File(s)…' }).click();
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#upload-input').setInputFiles([files.public, files.protected, files.private, files.mid]);
      await dlg.getByLabel('Visibility for hello.txt').selectOption('public');
      await dlg.getByLabel('Visibility for medium.bin').selectOption('public');
      await dlg.getByLabel('Visibility for secret.json').selectOption('protected');
      await dlg.getByLabel('Visibility for config.json').selectOption('private');
      await dlg.getByRole('button', { name: 'Upload 4 files' }).click();
      await page.locator('dialog[open]').waitFor({ state: 'detached' });
      await page.waitForFunction(() => document.querySelectorAll('#asset-list .asset-row').length === 4);
      const uploads = await page.evaluate(() => performance.getEntriesByType('resource')
        .filter((e) => /\/Versions$/.test(e.name)).map((e) => e.nextHopProtocol));
      assert(uploads.length === 4 && uploads.every((p) => p === 'h2'), `uploads over HTTP/2: ${uploads}`);
      assert((await row('/config.json').innerText()).includes('Private'), 'visibility shown');
      assert((await row('/secret.json').innerText()).includes('Protected'), 'visibility shown');
      await page.locator('#deploy-all').click();
      await page.locator('#deploy-status .alert-success').waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('#asset-list .asset-row')].every((r) => r.dataset.status === 'deployed'));
      await shot('https-1280-assets-deployed');
    });

    let protectedUrl;
    await step('Copy URL of the public asset: an https URL that answers 200 (in Node and in the browser)', async () => {
      await rowMenu('/hello.txt', 'Copy URL');
      await page.locator('.toast-success').first().waitFor();
      const url = await clipboard();
      assert(url === `https://${domain}:${PORT}/hello.txt`, `URL ${url}`);
      const res = await fetchUrl(url);
      assert(res.status === 200 && res.body === 'Ahoy over TLS!\n', `public GET ${res.status}`);
      const mid = await fetchRaw(url.replace(/hello\.txt$/, 'medium.bin'));
      assert(mid.status === 200 && mid.raw.equals(midBytes), `the 3 MB upload is byte-exact (${mid.status}, ${mid.raw.length} bytes)`);
      const other = await context.newPage();
      try {
        const r = await other.goto(url);
        assert(r.status() === 200 && (await r.text()) === 'Ahoy over TLS!\n', `browser GET ${r.status()}`);
      } finally {
        await other.close();
      }
    });

    await step('the protected asset: https URL, 403 unsigned, 200 with the signed curl command (WebCrypto)', async () => {
      await rowMenu('/secret.json', 'Copy URL');
      await page.waitForFunction(async () => (await navigator.clipboard.readText()).endsWith('/secret.json'));
      protectedUrl = await clipboard();
      assert(protectedUrl === `https://${domain}:${PORT}/secret.json`, `URL ${protectedUrl}`);
      assert((await fetchUrl(protectedUrl)).status === 403, 'unsigned is 403');
      await row('/secret.json').locator('.asset-path').click();
      const dlg = page.locator('dialog[open]');
      await page.waitForFunction(() => document.querySelector('#signed-curl')?.value.startsWith('curl '));
      assert((await dlg.innerText()).includes('(WebCrypto)'), 'WebCrypto signed it (a secure context)');
      const cmd = await dlg.locator('#signed-curl').inputValue();
      const m = cmd.match(/^curl -H 'X-Twilio-Signature: ([A-Za-z0-9+/=]+)' '([^']+)'$/);
      assert(m && m[2] === protectedUrl, `command ${cmd}`);
      assert(m[1] === sign(TOKEN, protectedUrl), 'the signature covers the https URL');
      const res = await fetchUrl(m[2], { 'X-Twilio-Signature': m[1] });
      assert(res.status === 200 && res.body.includes('only with a signature'), `signed GET ${res.status}`);
      const overHttp = sign(TOKEN, protectedUrl.replace(/^https:/, 'http:'));
      assert((await fetchUrl(m[2], { 'X-Twilio-Signature': overHttp })).status === 403, 'an http:// signature is 403');
      await shot('https-1280-asset-protected');
      await dlg.getByRole('button', { name: 'Close', exact: true }).click();
    });

    await step('Share link of the protected asset: an https link that opens it', async () => {
      await rowMenu('/secret.json', 'Share link…');
      const dlg = page.locator('dialog[open]');
      await dlg.locator('#share-ttl').selectOption({ label: '1 hour' });
      await dlg.locator('#share-create').click();
      await page.waitForFunction(() => document.querySelector('#share-url').value.includes('Signature='));
      const link = await dlg.locator('#share-url').inputValue();
      const m = link.match(/^(.+)\?Expires=(\d+)&Signature=([A-Za-z0-9_-]+)$/);
      assert(m && m[1] === protectedUrl, `share link ${link}`);
      await dlg.locator('#share-copy').click();
      await page.waitForFunction(async () => (await navigator.clipboard.readText()).includes('Signature='));
      assert(await clipboard() === link, 'copied the link');
      const res = await fetchUrl(link);
      assert(res.status === 200 && res.body.includes('only with a signature'), `share link GET ${res.status}`);
      await shot('https-1280-share-link');
      await dlg.getByRole('button', { name: 'Close', exact: true }).click();
    });

    await step('the private asset has no Copy URL and answers 404', async () => {
      await row('/config.json').getByRole('button', { name: 'Actions for /config.json' }).click();
      assert(await page.getByRole('menuitem', { name: 'Copy URL' }).count() === 0, 'no Copy URL for private');
      await page.keyboard.press('Escape');
      assert((await fetchUrl(protectedUrl.replace(/\/secret\.json$/, '/config.json'))).status === 404, 'private is 404');
    });

    await step('no errors in the browser console', async () => {
      assert(!errors.length, `errors:\n  ${errors.join('\n  ')}`);
    });
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => {
  console.log(`console https: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}, (e) => {
  if (!failed) console.log(`FAILED - https setup: ${e.stack || e}`);
  if (errors.length) console.log(`browser errors:\n  ${errors.join('\n  ')}`);
  console.log(`console https: ${passed} passed, ${failed || 1} failed`);
  process.exit(1);
});
