//! Property tests (proptest, 10,000 cases each) for the parsers that see untrusted bytes:
//! multipart bodies, form bodies, percent-decoding of paths, asset path validation and the
//! signature's URL handling. The Range header's are in `http::assets` (its parser is private).

use crate::http::api::form::{Params, encode};
use crate::http::api::multipart::Multipart;
use crate::model::{AssetPath, text, urlencode};
use proptest::prelude::*;
use std::io::Read;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that matter to the parsers, mixed with arbitrary ones.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'a', 'z', '0', '+', ' ', '#', '?', ':',
            '\\', '\0', '\t', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{202e}', '\u{2066}',
            '\u{200b}', '\u{feff}', '\u{2024}', '\u{2025}', '\u{2026}', 'é', '日',
        ]),
        1 => any::<char>(),
    ]
}

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(String::from_iter)
}

/// Percent-encodes every byte of `s` but unreserved characters and `/`: how a client puts a
/// stored path into a URL.
fn encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reader handing out its bytes in the given chunk sizes (cycled), so that delimiters and
/// escapes fall across reads.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(config())]

    /// A path encoded once decodes back to itself, exactly once: the encoding of the encoding
    /// decodes to the encoding, not to the path.
    #[test]
    fn percent_decoding_happens_exactly_once(s in tricky_string(40)) {
        let once = encode_path(&s);
        prop_assert_eq!(urlencode::decode_path(&once), Some(s.clone()));
        let twice = encode_path(&once);
        prop_assert_eq!(urlencode::decode_path(&twice), Some(once));
    }

    /// Decoding never panics, and an escape survives it only when the request encoded a `%`
    /// (`%25`) or a slash (`%2F`): then it matches no stored path.
    #[test]
    fn decoded_paths_hold_an_escape_only_when_double_encoded(raw in tricky_string(40)) {
        let raw: String = raw.chars().filter(char::is_ascii).collect();
        if let Some(d) = urlencode::decode_path(&raw)
            && urlencode::has_escape(&d)
        {
            let lower = raw.to_ascii_lowercase();
            prop_assert!(lower.contains("%25") || lower.contains("%2f"), "{:?}", raw);
            prop_assert!(AssetPath::parse(&d).is_err());
        }
        if !raw.contains('%') {
            prop_assert_eq!(urlencode::decode_path(&raw), Some(raw.clone()));
        }
    }

    /// Whatever the input, a path that validates obeys every rule, validates again unchanged,
    /// and is reached by its one encoding.
    #[test]
    fn valid_asset_paths_obey_every_rule(raw in tricky_string(60)) {
        if let Ok(p) = AssetPath::parse(&raw) {
            let s = p.as_str();
            prop_assert!(s.starts_with('/'));
            prop_assert!(s.chars().count() <= crate::model::path::MAX_PATH_CHARS);
            prop_assert!(s.chars().all(|c| text::path_class(c).is_none()), "{:?}", s);
            prop_assert!(!urlencode::has_escape(s));
            if s != "/" {
                prop_assert!(s[1..].split('/').all(|seg| !matches!(seg, "" | "." | "..")));
            }
            prop_assert!(!s.contains(['#', '?', ' ', '\\', '"', '\'']));
            prop_assert_eq!(AssetPath::parse(s), Ok(p.clone()));
            prop_assert_eq!(urlencode::decode_path(&encode_path(s)), Some(s.to_string()));
        }
    }

    /// Form bodies: encoded pairs parse back to the same pairs, in order, repeats kept; any
    /// text parses or is refused without panicking.
    #[test]
    fn form_bodies_round_trip(
        pairs in prop::collection::vec((tricky_string(12), tricky_string(12)), 0..6),
        junk in tricky_string(60),
    ) {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| !k.is_empty()).collect();
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let parsed = Params::parse_form(&body).map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(parsed.0, pairs);
        let _ = Params::parse_form(&junk);
        let _ = Params::parse(&junk);
    }

    /// Multipart: parts built from arbitrary bytes read back exactly, however the body is cut
    /// into reads; arbitrary bodies are refused or read without panicking.
    #[test]
    fn multipart_parts_read_back_exactly(
        parts in prop::collection::vec(
            ("[a-zA-Z0-9]{1,8}", prop::collection::vec(any::<u8>(), 0..200)),
            1..4,
        ),
        sizes in prop::collection::vec(1usize..97, 1..5),
        junk in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let boundary = "----assetd-proptest-7d9f1c";
        let mut body = Vec::new();
        for (name, content) in &parts {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut src = Chunked { data: &body, sizes: sizes.clone(), next: 0 };
        let mut m = Multipart::new(&mut src, boundary);
        for (name, content) in &parts {
            let head = m.next_part().map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(head.map(|h| h.name), Some(name.clone()));
            let mut got = Vec::new();
            m.read_body(&mut |b| {
                got.extend_from_slice(b);
                Ok(())
            })
            .map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(&got, content);
        }
        prop_assert!(m.next_part().map_err(|e| TestCaseError::fail(e.message))?.is_none());
        let mut src = Chunked { data: &junk, sizes, next: 0 };
        let mut m = Multipart::new(&mut src, boundary);
        for _ in 0..8 {
            match m.next_part() {
                Ok(Some(_)) => {
                    let _ = m.read_body(&mut |_| Ok(()));
                }
                _ => break,
            }
        }
    }

    /// Signatures: a URL signed as the client sent it verifies, so does one signed with its
    /// port dropped (or the default port added when it had none); another token never does.
    #[test]
    fn signature_url_forms_verify(
        https in any::<bool>(),
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{1,5}){0,2}",
        port in prop::option::of(1u16..),
        path in tricky_string(20),
        query in prop::option::of("[a-zA-Z0-9=&%]{0,16}"),
        token in "[0-9a-f]{32}",
        junk in tricky_string(40),
    ) {
        let scheme = if https { "https" } else { "http" };
        let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
        let query_part = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{scheme}://{host}{port_part}{}{query_part}", encode_path(&format!("/{path}")));
        let sig = crate::sign::compute(&token, &url, &[]);
        prop_assert!(crate::sign::verify(&token, &url, &[], Some(b""), &sig), "{}", url);
        let bare = crate::sign::without_port(&url).expect("a well-formed URL");
        prop_assert_eq!(crate::sign::without_port(&bare), Some(bare.clone()));
        let bare_sig = crate::sign::compute(&token, &bare, &[]);
        prop_assert!(crate::sign::verify(&token, &url, &[], Some(b""), &bare_sig), "{}", url);
        if port.is_none() {
            let full = crate::sign::with_default_port(&url).expect("a well-formed URL");
            let full_sig = crate::sign::compute(&token, &full, &[]);
            prop_assert!(crate::sign::verify(&token, &url, &[], Some(b""), &full_sig), "{}", url);
        }
        let other = format!("{}0", &token[..31]);
        if other != token {
            prop_assert!(!crate::sign::verify(&other, &url, &[], Some(b""), &sig));
        }
        let _ = crate::sign::without_port(&junk);
        let _ = crate::sign::with_default_port(&junk);
        let _ = crate::sign::verify(&token, &junk, &[], None, &sig);
    }
}
