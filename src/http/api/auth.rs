//! HTTP Basic authentication and the failed-attempt limiter.

use super::Caller;
use super::error::{ApiError, ApiResult};
use crate::http::server::Request;
use crate::model::{Sid, SidKind};
use crate::store::{Store, secret_hash};
use base64::Engine;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts allowed per client address within [`WINDOW`] before 429.
pub const MAX_FAILURES: u32 = 10;
/// The window over which failures are counted, and how long a lockout lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most client addresses tracked at once (expired entries are dropped first).
const MAX_TRACKED: usize = 10_000;

/// Slows down repeated failed authentication from one client address: after
/// [`MAX_FAILURES`] failures within [`WINDOW`], every request from that address answers 429
/// (code 20429, with `Retry-After`) for [`WINDOW`], even with correct credentials. Other
/// addresses are not affected.
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, Entry>>,
}

/// Failures of one client address.
#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    /// When counting started, or when the lockout started once the limit was reached.
    since: Instant,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

/// The key a client address is counted under.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            // SECURITY: one IPv6 host usually controls a whole /64, so counting single
            // addresses would let it rotate through 2^64 of them; count the /64 instead.
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(seg))
            }
        },
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter {
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the request, or answers 401 (bad or missing credentials, or a
    /// suspended/closed account) or 429 (too many recent failures from this address).
    pub fn authenticate(&self, store: &Store, req: &Request<'_>) -> ApiResult<Caller> {
        let ip = req.remote.map(|r| r.ip());
        // SECURITY: the lockout is checked before the credentials, so that a locked-out
        // address learns nothing from further guesses (a correct one is refused too).
        if let Some(ip) = ip {
            self.check(ip, Instant::now())?;
        }
        match authenticate(store, req) {
            Ok(c) => Ok(c),
            Err(e) => {
                if e.status == 401
                    && let Some(ip) = ip
                {
                    self.fail(ip, Instant::now());
                }
                Err(e)
            }
        }
    }

    /// 429 with `Retry-After` when `ip` is locked out at `now`.
    fn check(&self, ip: IpAddr, now: Instant) -> ApiResult<()> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get(&client_key(ip)) {
            let age = now.saturating_duration_since(e.since);
            if e.count >= MAX_FAILURES && age < WINDOW {
                let retry = (WINDOW - age).as_secs_f64().ceil().max(1.0) as u64;
                let mut err = ApiError::new(
                    429,
                    20429,
                    format!(
                        "Too many requests: {MAX_FAILURES} failed authentications from this address; retry in {retry} s"
                    ),
                );
                err.headers.push(("retry-after".into(), retry.to_string()));
                return Err(err);
            }
        }
        Ok(())
    }

    /// Counts one failed authentication from `ip` at `now`.
    fn fail(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, e| now.saturating_duration_since(e.since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                // SECURITY: memory stays bounded under a flood of addresses; forgetting
                // counts only ever lets a client retry sooner, it never locks anyone out.
                map.clear();
            }
        }
        let e = map.entry(client_key(ip)).or_insert(Entry {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(e.since) >= WINDOW {
            *e = Entry {
                count: 0,
                since: now,
            };
        }
        e.count += 1;
        if e.count == MAX_FAILURES {
            // The lockout lasts a full window from the failure that triggered it.
            e.since = now;
        }
    }
}

/// Constant-time equality of two byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authenticate(store: &Store, req: &Request<'_>) -> ApiResult<Caller> {
    let header = req
        .header("authorization")
        .ok_or_else(ApiError::unauthorized)?;
    let (scheme, creds) = header
        .trim()
        .split_once(' ')
        .ok_or_else(ApiError::unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::unauthorized());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .map_err(|_| ApiError::unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
    let (user, password) = decoded.split_once(':').ok_or_else(ApiError::unauthorized)?;
    let lookup = store.read()?;
    let mut api_key = None;
    let account = if let Some(sid) = Sid::parse(SidKind::Account, user) {
        let acct = lookup
            .account(sid.as_str())?
            .ok_or_else(ApiError::unauthorized)?;
        // SECURITY: only the primary token authenticates; a secondary token works once
        // promoted, and the old primary stops working then.
        if !ct_eq(acct.auth_token.as_bytes(), password.as_bytes()) {
            return Err(ApiError::unauthorized());
        }
        acct
    } else if let Some(sid) = Sid::parse(SidKind::ApiKey, user) {
        let key = lookup
            .api_key(sid.as_str())?
            .ok_or_else(ApiError::unauthorized)?;
        // SECURITY: key secrets are stored as digests and compared in constant time.
        if !ct_eq(key.secret_hash.as_bytes(), secret_hash(password).as_bytes()) {
            return Err(ApiError::unauthorized());
        }
        api_key = Some(key.sid.clone());
        lookup
            .account(&key.account_sid)?
            .ok_or_else(ApiError::unauthorized)?
    } else {
        return Err(ApiError::unauthorized());
    };
    if account.status != "active" {
        return Err(ApiError::new(
            401,
            20003,
            format!("Account {} is {}", account.sid, account.status),
        ));
    }
    // A suspended or closed owner suspends its subaccounts too.
    if let Some(owner) = &account.owner_sid
        && lookup.account(owner)?.is_none_or(|o| o.status != "active")
    {
        return Err(ApiError::new(
            401,
            20003,
            format!("Account {} is not active", account.sid),
        ));
    }
    Ok(Caller { account, api_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_out_one_address_only() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..MAX_FAILURES - 1 {
            l.fail(a, t0);
        }
        assert!(l.check(a, t0).is_ok(), "below the limit");
        l.fail(a, t0);
        let e = l.check(a, t0).unwrap_err();
        assert_eq!((e.status, e.code), (429, 20429));
        let retry = e.headers.iter().find(|(k, _)| k == "retry-after").unwrap();
        assert_eq!(retry.1, WINDOW.as_secs().to_string());
        // Another address is unaffected, and so is the first one once the window has passed.
        assert!(l.check(b, t0).is_ok());
        assert!(l.check(a, t0 + WINDOW / 2).is_err());
        assert!(l.check(a, t0 + WINDOW).is_ok());
        // After expiry, counting starts again from zero.
        l.fail(a, t0 + WINDOW);
        assert!(l.check(a, t0 + WINDOW).is_ok());
    }

    #[test]
    fn lockout_lasts_a_window_from_the_last_failure() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        l.fail(a, t0);
        let late = t0 + WINDOW - Duration::from_secs(1);
        for _ in 1..MAX_FAILURES {
            l.fail(a, late);
        }
        assert!(l.check(a, late + Duration::from_secs(30)).is_err());
        assert!(l.check(a, late + WINDOW).is_ok());
    }

    #[test]
    fn ipv6_counted_per_64_and_mapped_v4_as_v4() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            l.fail(ip(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(l.check(ip("2001:db8:1:2:ffff::1"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
        for _ in 0..MAX_FAILURES {
            l.fail(ip("::ffff:203.0.113.9"), t0);
        }
        assert!(l.check(ip("203.0.113.9"), t0).is_err());
        assert!(l.check(ip("203.0.113.10"), t0).is_ok());
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
