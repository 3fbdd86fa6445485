//! HTTP Basic authentication and the failed-attempt limiter.

use super::Caller;
use super::error::{ApiError, ApiResult};
use super::limiter::{Table, Target};
use crate::http::server::Request;
use crate::model::{Sid, SidKind};
use crate::store::{Store, StoreError, secret_hash};
use base64::Engine;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

pub use super::limiter::{MAX_FAILURES, WINDOW};

/// Slows down guessing of credentials: the failed-login policy of [`super::limiter`] (only
/// wrong credentials count, per client address, the main account's own credentials locked
/// out only by failures against it), answering 429 (code 20429, with `Retry-After`).
#[derive(Default)]
pub struct Limiter {
    table: Mutex<Table>,
}

/// The `user:password` of a Basic `Authorization` header; `None` when there is none or it is
/// not Basic credentials.
fn basic_credentials(req: &Request<'_>) -> Option<(String, String)> {
    let (scheme, creds) = req.header("authorization")?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter::default()
    }

    /// Authenticates the request from the client address `client` (see
    /// [`crate::http::client_ip`]), or answers 401 (bad or missing credentials, or a
    /// suspended/closed account) or 429 (too many recent failures from this address).
    pub fn authenticate(
        &self,
        store: &Store,
        req: &Request<'_>,
        client: Option<IpAddr>,
    ) -> ApiResult<Caller> {
        // SECURITY: a request without credentials guesses nothing: 401, and it counts for
        // nothing (an anonymous client behind a shared address must not lock others out).
        let Some((user, password)) = basic_credentials(req) else {
            return Err(ApiError::unauthorized());
        };
        let main = store.read()?.main_account()?;
        let target = if main.is_some_and(|m| m.sid == user) {
            Target::Main
        } else {
            Target::Other
        };
        // SECURITY: the lockout is checked before the credentials, so that a locked-out
        // address learns nothing from further guesses (a correct one is refused too).
        if let Some(ip) = client
            && let Some(retry) = self.lock().locked(ip, target, Instant::now())
        {
            let mut err = ApiError::new(
                429,
                20429,
                format!(
                    "Too many requests: {MAX_FAILURES} failed authentications from this address; retry in {retry} s"
                ),
            );
            err.headers
                .push(("retry-after".into(), retry.to_string().into()));
            return Err(err);
        }
        match authenticate(store, &user, &password) {
            Ok(caller) => Ok(caller),
            Err(Refusal::Wrong) => {
                if let Some(ip) = client {
                    self.lock().fail(ip, target, Instant::now());
                }
                Err(ApiError::unauthorized())
            }
            Err(Refusal::Other(e)) => Err(e),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Constant-time equality of two byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why credentials were not accepted.
enum Refusal {
    /// Unknown user or wrong secret: what the limiter counts.
    Wrong,
    /// Correct credentials that cannot be used (an inactive account), or a store error.
    Other(ApiError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Other(e.into())
    }
}

/// Checks `user:password`.
fn authenticate(store: &Store, user: &str, password: &str) -> Result<Caller, Refusal> {
    let lookup = store.read()?;
    let mut api_key = None;
    let account = if let Some(sid) = Sid::parse(SidKind::Account, user) {
        let acct = lookup.account(sid.as_str())?.ok_or(Refusal::Wrong)?;
        // SECURITY: only the primary token authenticates; a secondary token works once
        // promoted, and the old primary stops working then.
        if !ct_eq(acct.auth_token.as_bytes(), password.as_bytes()) {
            return Err(Refusal::Wrong);
        }
        acct
    } else if let Some(sid) = Sid::parse(SidKind::ApiKey, user) {
        let key = lookup.api_key(sid.as_str())?.ok_or(Refusal::Wrong)?;
        // SECURITY: key secrets are stored as digests and compared in constant time.
        if !ct_eq(key.secret_hash.as_bytes(), secret_hash(password).as_bytes()) {
            return Err(Refusal::Wrong);
        }
        api_key = Some(key.sid.clone());
        lookup.account(&key.account_sid)?.ok_or(Refusal::Wrong)?
    } else {
        return Err(Refusal::Wrong);
    };
    if account.status != "active" {
        return Err(Refusal::Other(ApiError::new(
            401,
            20003,
            format!("Account {} is {}", account.sid, account.status),
        )));
    }
    // A suspended or closed owner suspends its subaccounts too.
    if let Some(owner) = &account.owner_sid
        && lookup.account(owner)?.is_none_or(|o| o.status != "active")
    {
        return Err(Refusal::Other(ApiError::new(
            401,
            20003,
            format!("Account {} is not active", account.sid),
        )));
    }
    Ok(Caller { account, api_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
