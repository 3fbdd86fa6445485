//! The plain-HTTP listener beside an HTTPS one (`serve --http-listen`): every request gets a
//! 308 to the same host and target over https, except `/healthz` (answered, so a load
//! balancer or monitor can probe the box without TLS) and ACME's HTTP-01 challenges
//! (`/.well-known/acme-challenge/{token}`, answered while the challenge is open, else 404).

use super::server::acme::Acme;
use super::server::{Handler, Reply, Request};
use super::{healthz, strip_port, text};
use crate::model::domain;

/// The path prefix of HTTP-01 challenges (RFC 8555, 8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Redirects to `https://{host}[:{port}]{target}`.
pub struct Redirect {
    /// The HTTPS port clients use; 443 is left out of the URL.
    pub https_port: u16,
    /// Automatic certificates: their HTTP-01 answers and their `/healthz` lines.
    pub acme: Option<Acme>,
}

impl Redirect {
    /// Where a request for `host` and `target` is sent; `None` when the `Host` header is not
    /// a valid `host[:port]`.
    pub fn location(&self, host: &str, target: &str) -> Option<String> {
        // SECURITY: the host goes into a header and a URL: only a checked host[:port] does.
        if !domain::is_host_port(host) {
            return None;
        }
        let host = strip_port(host);
        let target = if target.starts_with('/') { target } else { "/" };
        Some(match self.https_port {
            443 => format!("https://{host}{target}"),
            port => format!("https://{host}:{port}{target}"),
        })
    }
}

impl Handler for Redirect {
    fn is_quick(&self, _req: &Request<'_>) -> bool {
        true
    }

    fn handle(&self, req: &mut Request<'_>) -> Reply {
        if req.path() == "/healthz" {
            return healthz(self.acme.as_ref());
        }
        if let Some(token) = req.path().strip_prefix(ACME_CHALLENGE_PREFIX) {
            // SECURITY: only a token of an open challenge is answered, with its key
            // authorization (public by design: it proves control of this listener).
            return match self.acme.as_ref().and_then(|a| a.http01(token)) {
                Some(key_authorization) => text(200, &key_authorization),
                None => text(404, "Not Found\n"),
            };
        }
        let host = req.header("host").unwrap_or("").trim();
        match self.location(host, req.target) {
            None => text(400, "Bad Request: missing or invalid Host header\n"),
            Some(url) => {
                let mut r = text(308, &format!("Permanent Redirect: {url}\n"));
                r.headers.push(("location".into(), url.into()));
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Redirect;

    #[test]
    fn locations() {
        let r = Redirect {
            https_port: 443,
            acme: None,
        };
        assert_eq!(
            r.location("a.example.org:80", "/x?y=1").unwrap(),
            "https://a.example.org/x?y=1"
        );
        let r = Redirect {
            https_port: 8443,
            acme: None,
        };
        assert_eq!(
            r.location("10.0.0.2", "/").unwrap(),
            "https://10.0.0.2:8443/"
        );
        assert_eq!(
            r.location("[::1]:80", "/a").unwrap(),
            "https://[::1]:8443/a"
        );
        assert!(r.location("bad host\r\nx", "/").is_none());
        assert!(r.location("", "/").is_none());
    }
}
