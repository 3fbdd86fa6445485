// X-Twilio-Signature for an asset URL: base64(HMAC-SHA1(auth token, URL)). A GET carries no
// form parameters, so the URL alone is signed.
//
// WebCrypto does the HMAC where the page is a secure context (https, http://127.0.0.1,
// http://localhost); elsewhere (the console reached over plain http by IP or name) a small
// pure-JS SHA-1/HMAC below does. Both are checked against the same vectors by the browser
// test (tests/console), and the pure one also under Node.

/** SHA-1 of `bytes` (Uint8Array) as a 20-byte Uint8Array (FIPS 180-4). */
export function sha1(bytes) {
  const ml = bytes.length;
  // Message + 0x80 + zero padding + 64-bit big-endian bit length, to a multiple of 64 bytes.
  const total = ((ml + 9 + 63) >> 6) << 6;
  const buf = new Uint8Array(total);
  buf.set(bytes);
  buf[ml] = 0x80;
  const dv = new DataView(buf.buffer);
  const bits = ml * 8;
  dv.setUint32(total - 8, Math.floor(bits / 0x100000000));
  dv.setUint32(total - 4, bits >>> 0);
  let h0 = 0x67452301;
  let h1 = 0xefcdab89;
  let h2 = 0x98badcfe;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0;
  const w = new Uint32Array(80);
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i += 1) w[i] = dv.getUint32(off + i * 4);
    for (let i = 16; i < 80; i += 1) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let i = 0; i < 80; i += 1) {
      let f;
      let k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5a827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ed9eba1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdc; }
      else { f = b ^ c ^ d; k = 0xca62c1d6; }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) >>> 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
    h4 = (h4 + e) >>> 0;
  }
  const out = new Uint8Array(20);
  const odv = new DataView(out.buffer);
  [h0, h1, h2, h3, h4].forEach((v, i) => odv.setUint32(i * 4, v));
  return out;
}

/** HMAC-SHA1 (RFC 2104) of `message` keyed with `key`, both Uint8Array. */
export function hmacSha1(key, message) {
  const block = 64;
  let k = key.length > block ? sha1(key) : key;
  const padded = new Uint8Array(block);
  padded.set(k);
  k = padded;
  const inner = new Uint8Array(block + message.length);
  const outer = new Uint8Array(block + 20);
  for (let i = 0; i < block; i += 1) {
    inner[i] = k[i] ^ 0x36;
    outer[i] = k[i] ^ 0x5c;
  }
  inner.set(message, block);
  outer.set(sha1(inner), block);
  return sha1(outer);
}

/** Standard base64 with padding. */
export function base64(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Lower-case hex. */
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const utf8 = (s) => new TextEncoder().encode(s);

/** Whether WebCrypto's HMAC is available here (secure contexts only). */
export function hasWebCrypto() {
  return typeof globalThis.crypto !== 'undefined' && !!globalThis.crypto.subtle && globalThis.isSecureContext !== false;
}

/**
 * The X-Twilio-Signature of a GET of `url`, keyed with `token`: WebCrypto when available,
 * else the pure-JS HMAC. `force` = 'webcrypto' | 'js' picks one (for tests).
 */
export async function signUrl(token, url, force = null) {
  const useWebCrypto = force ? force === 'webcrypto' : hasWebCrypto();
  if (useWebCrypto) {
    const key = await crypto.subtle.importKey('raw', utf8(token), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
    const mac = await crypto.subtle.sign('HMAC', key, utf8(url));
    return base64(new Uint8Array(mac));
  }
  return base64(hmacSha1(utf8(token), utf8(url)));
}

/** The data Twilio's algorithm signs for a POST: URL + sorted `name value` pairs (for tests). */
export function signedData(url, params) {
  const names = [...new Set(params.map(([k]) => k))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let s = url;
  for (const n of names) {
    const values = [...new Set(params.filter(([k]) => k === n).map(([, v]) => v))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const v of values) s += n + v;
  }
  return s;
}

/** A shell-safe single-quoted string. */
export function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** `curl -H 'X-Twilio-Signature: …' 'URL'`. */
export function curlCommand(url, signature) {
  return `curl -H ${shellQuote(`X-Twilio-Signature: ${signature}`)} ${shellQuote(url)}`;
}
