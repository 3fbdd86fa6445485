//! One order for one name: new order, the challenge response (TLS-ALPN-01 certificate or
//! HTTP-01 token), finalize with a fresh key, download the chain.

use super::{Challenge, Shared, chain};
use crate::http::server::Tls;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// One order for one name.
pub(super) struct Order {
    pub(super) account: Arc<Account>,
    pub(super) tls: Tls,
    pub(super) shared: Arc<Shared>,
    pub(super) challenge: Challenge,
    pub(super) name: String,
}

/// The challenge responses an order put up, taken down when it ends (also when it is cut
/// by its timeout).
struct Posted<'a> {
    order: &'a Order,
    tokens: Vec<String>,
    alpn: bool,
}

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        let mut tokens = self
            .order
            .shared
            .tokens
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for t in &self.tokens {
            tokens.remove(t);
        }
        if self.alpn {
            let _ = self.order.tls.set_challenge(&self.order.name, None);
        }
    }
}

fn acme_err(e: instant_acme::Error) -> String {
    chain(&e)
}

impl Order {
    /// Orders, proves and downloads: the chain and key, PEM.
    pub(super) async fn run(&self) -> Result<(String, String), String> {
        let ids = [Identifier::Dns(self.name.clone())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(acme_err)?;
        let mut posted = Posted {
            order: self,
            tokens: Vec::new(),
            alpn: false,
        };
        let kind = match self.challenge {
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(acme_err)?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("the CA's authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| format!("the CA offers no {} challenge", self.challenge))?;
            let key_auth = challenge.key_authorization();
            match self.challenge {
                Challenge::TlsAlpn01 => {
                    let cert = alpn_certificate(&self.name, key_auth.digest().as_ref())?;
                    self.tls.set_challenge(&self.name, Some(cert))?;
                    posted.alpn = true;
                }
                Challenge::Http01 => {
                    let token = challenge.token.clone();
                    let mut tokens = self
                        .shared
                        .tokens
                        .write()
                        .unwrap_or_else(|p| p.into_inner());
                    tokens.insert(token.clone(), key_auth.as_str().to_string());
                    posted.tokens.push(token);
                }
            }
            challenge.set_ready().await.map_err(acme_err)?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(Duration::from_secs(120));
        let status = order.poll_ready(&retry).await.map_err(acme_err)?;
        if status != OrderStatus::Ready {
            return Err(self.why_invalid(&mut order, status).await);
        }
        drop(posted);
        let key = order.finalize().await.map_err(acme_err)?;
        let chain = order.poll_certificate(&retry).await.map_err(acme_err)?;
        Ok((chain, key))
    }

    /// The CA's reason for an order that did not become ready.
    async fn why_invalid(&self, order: &mut instant_acme::Order, status: OrderStatus) -> String {
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for c in &authz.challenges {
                if let Some(p) = &c.error {
                    return format!(
                        "{} validation failed: {}",
                        self.challenge,
                        p.detail.clone().unwrap_or_else(|| p.to_string())
                    );
                }
            }
        }
        format!("the order is {status:?}")
    }
}

/// The TLS-ALPN-01 certificate for `name`: self-signed, with the critical acmeIdentifier
/// extension holding the key authorization's SHA-256 (RFC 8737). DER and PKCS#8 key.
pub(super) fn alpn_certificate(name: &str, digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let fail = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate: {e}");
    if digest.len() != 32 {
        return Err("the key authorization digest is not SHA-256".into());
    }
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}
