//! The failed-login limiter: a bounded table of recent authentication failures per client
//! address.
//!
//! Policy (the README's "Failed logins" section says the same):
//! - only wrong credentials count (a request without credentials is answered 401 and counts
//!   for nothing);
//! - failures are counted per client address: IPv4 per address, IPv6 per /64; the address is
//!   the forwarded one when the peer is a trusted proxy;
//! - [`MAX_FAILURES`] failures within [`WINDOW`] lock the address out for [`WINDOW`] (429 with
//!   `Retry-After`), even for correct credentials, except that the main account's own
//!   credentials are locked out only by failures against the main account itself;
//! - the table holds at most [`MAX_TRACKED`] entries; a full table first forgets expired
//!   entries, then the oldest entries that are not locked out, and when every entry is a lockout
//!   it counts new failures under a coarser prefix (IPv4 /24, /16, /8; IPv6 /48, /32, /16),
//!   whose lockouts then cover the whole prefix. A lockout in force is never forgotten.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Failed attempts allowed per client address within [`WINDOW`] before 429.
pub const MAX_FAILURES: u32 = 10;
/// The window over which failures are counted, and how long a lockout lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most entries the table holds at its finest level (single IPv4 addresses, IPv6 /64s).
pub const MAX_TRACKED: usize = 10_000;
/// Most entries per level; the coarsest level is always admitted (at most 256 IPv4 /8s and
/// 65,536 IPv6 /16s exist, a few MB at worst), so the table is bounded in every case.
const CAPS: [usize; LEVELS] = [MAX_TRACKED, MAX_TRACKED / 4, MAX_TRACKED / 10, usize::MAX];
const LEVELS: usize = 4;

/// Prefix lengths an address is counted under, finest first: the first is the normal key,
/// the others are used only when the table is full of lockouts.
const V4_LEVELS: [u8; LEVELS] = [32, 24, 16, 8];
const V6_LEVELS: [u8; LEVELS] = [64, 48, 32, 16];

/// Failures in one window.
#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    /// When counting started, or when the lockout started once the limit was reached.
    since: Instant,
}

impl Counter {
    fn new(now: Instant) -> Counter {
        Counter {
            count: 0,
            since: now,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= WINDOW
    }

    /// Seconds left of the lockout, when locked out at `now`.
    fn locked(&self, now: Instant) -> Option<u64> {
        let age = now.saturating_duration_since(self.since);
        (self.count >= MAX_FAILURES && age < WINDOW)
            .then(|| (WINDOW - age).as_secs_f64().ceil().max(1.0) as u64)
    }

    fn add(&mut self, now: Instant) {
        if self.expired(now) {
            *self = Counter::new(now);
        }
        self.count = self.count.saturating_add(1);
        if self.count == MAX_FAILURES {
            // The lockout lasts a full window from the failure that triggered it.
            self.since = now;
        }
    }
}

/// The failures of one key: all of them, and those against the main account.
#[derive(Debug, Clone, Copy)]
struct Entry {
    all: Counter,
    main: Counter,
    /// The latest failure (eviction order).
    last: Instant,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            all: Counter::new(now),
            main: Counter::new(now),
            last: now,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.all.expired(now) && self.main.expired(now)
    }

    /// When neither counter is locked out any more.
    fn unlocks_at(&self) -> Instant {
        self.all.since.max(self.main.since) + WINDOW
    }

    fn locked_any(&self, now: Instant) -> bool {
        self.all.locked(now).is_some() || self.main.locked(now).is_some()
    }
}

/// Which credentials a request presents, for the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The main account's SID.
    Main,
    /// Any other account SID or API key.
    Other,
}

/// `ip` masked to its first `len` bits (IPv4-mapped IPv6 addresses count as IPv4).
fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The keys `ip` is counted under, finest first: (level, masked address).
fn keys(ip: IpAddr) -> impl Iterator<Item = (usize, IpAddr)> {
    // SECURITY: one IPv6 host usually controls a whole /64, so counting single addresses
    // would let it rotate through 2^64 of them; the /64 is the finest IPv6 key.
    let levels: &[u8] = match canonical(ip) {
        IpAddr::V4(_) => &V4_LEVELS,
        IpAddr::V6(_) => &V6_LEVELS,
    };
    levels
        .iter()
        .enumerate()
        .map(move |(level, &len)| (level, masked(ip, len)))
}

/// Counts failed authentications per client address; see the module documentation.
#[derive(Debug, Default)]
pub struct Table {
    /// One map per level of [`V4_LEVELS`] / [`V6_LEVELS`], finest first.
    levels: [HashMap<IpAddr, Entry>; LEVELS],
    /// Per level: it is full of lockouts until then (no need to look again before).
    full_until: [Option<Instant>; LEVELS],
}

impl Table {
    /// The seconds left of a lockout that applies to `target` from `ip` at `now`, if any.
    pub fn locked(&self, ip: IpAddr, target: Target, now: Instant) -> Option<u64> {
        keys(ip)
            .filter_map(|(level, k)| self.levels[level].get(&k))
            .filter_map(|e| match target {
                // SECURITY: failures against subaccounts or API keys never lock out the main
                // account's own credentials; guesses at the main account's token still do.
                Target::Main => e.main.locked(now),
                Target::Other => e.all.locked(now).or(e.main.locked(now)),
            })
            .max()
    }

    /// Counts one failed authentication against `target` from `ip` at `now`.
    pub fn fail(&mut self, ip: IpAddr, target: Target, now: Instant) {
        let (level, key) = self.slot(ip, now);
        let e = self.levels[level]
            .entry(key)
            .or_insert_with(|| Entry::new(now));
        let was_locked = e.locked_any(now);
        e.all.add(now);
        if target == Target::Main {
            e.main.add(now);
        }
        e.last = now;
        if !was_locked && e.locked_any(now) {
            crate::metrics::get()
                .lockouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The key the next failure of `ip` is counted under, making room for it when needed.
    fn slot(&mut self, ip: IpAddr, now: Instant) -> (usize, IpAddr) {
        let mut coarsest = None;
        for (level, key) in keys(ip) {
            if self.levels[level].contains_key(&key) || self.make_room(level, now) {
                return (level, key);
            }
            coarsest = Some((level, key));
        }
        coarsest.expect("every address has at least one level")
    }

    /// True when `level` has room for one more entry, after forgetting expired entries and,
    /// if need be, the oldest quarter of those that are not locked out.
    fn make_room(&mut self, level: usize, now: Instant) -> bool {
        if self.levels[level].len() < CAPS[level] {
            return true;
        }
        if self.full_until[level].is_some_and(|t| now < t) {
            return false;
        }
        let map = &mut self.levels[level];
        map.retain(|_, e| !e.expired(now));
        if map.len() < CAPS[level] {
            return true;
        }
        // SECURITY: only entries that are not locked out are evicted, so a flood of new
        // addresses never lifts a lockout in force.
        let mut unlocked: Vec<(Instant, IpAddr)> = map
            .iter()
            .filter(|(_, e)| !e.locked_any(now))
            .map(|(k, e)| (e.last, *k))
            .collect();
        if unlocked.is_empty() {
            // Every entry is a lockout: none can go before the first of them ends.
            self.full_until[level] = map.values().map(Entry::unlocks_at).min();
            return false;
        }
        unlocked.sort_unstable_by_key(|(last, _)| *last);
        let drop = unlocked.len().div_ceil(4);
        for (_, k) in &unlocked[..drop] {
            map.remove(k);
        }
        true
    }

    /// How many entries are tracked, at every level.
    pub fn len(&self) -> usize {
        self.levels.iter().map(HashMap::len).sum()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn lock(t: &mut Table, a: IpAddr, target: Target, now: Instant) {
        for _ in 0..MAX_FAILURES {
            t.fail(a, target, now);
        }
    }

    #[test]
    fn locks_out_one_address_only() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..MAX_FAILURES - 1 {
            t.fail(a, Target::Other, t0);
        }
        assert_eq!(t.locked(a, Target::Other, t0), None, "below the limit");
        t.fail(a, Target::Other, t0);
        assert_eq!(t.locked(a, Target::Other, t0), Some(WINDOW.as_secs()));
        // Another address is unaffected, and so is the first one once the window has passed.
        assert_eq!(t.locked(b, Target::Other, t0), None);
        assert!(t.locked(a, Target::Other, t0 + WINDOW / 2).is_some());
        assert_eq!(t.locked(a, Target::Other, t0 + WINDOW), None);
        // After expiry, counting starts again from zero.
        t.fail(a, Target::Other, t0 + WINDOW);
        assert_eq!(t.locked(a, Target::Other, t0 + WINDOW), None);
    }

    #[test]
    fn lockout_lasts_a_window_from_the_last_failure() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        t.fail(a, Target::Other, t0);
        let late = t0 + WINDOW - Duration::from_secs(1);
        for _ in 1..MAX_FAILURES {
            t.fail(a, Target::Other, late);
        }
        assert!(
            t.locked(a, Target::Other, late + Duration::from_secs(30))
                .is_some()
        );
        assert_eq!(t.locked(a, Target::Other, late + WINDOW), None);
    }

    #[test]
    fn ipv6_counted_per_64_and_mapped_v4_as_v4() {
        let mut t = Table::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            t.fail(ip(&format!("2001:db8:1:2::{i:x}")), Target::Other, t0);
        }
        assert!(
            t.locked(ip("2001:db8:1:2:ffff::1"), Target::Other, t0)
                .is_some()
        );
        assert_eq!(t.locked(ip("2001:db8:1:3::1"), Target::Other, t0), None);
        lock(&mut t, ip("::ffff:203.0.113.9"), Target::Other, t0);
        assert!(t.locked(ip("203.0.113.9"), Target::Other, t0).is_some());
        assert_eq!(t.locked(ip("203.0.113.10"), Target::Other, t0), None);
    }

    /// Regression (black-box test): failures against a subaccount or key from a shared
    /// address locked the main account out too.
    #[test]
    fn failures_on_other_accounts_never_lock_out_the_main_account() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.50");
        lock(&mut t, a, Target::Other, t0);
        assert!(t.locked(a, Target::Other, t0).is_some());
        assert_eq!(t.locked(a, Target::Main, t0), None);
        // Guessing at the main account's token does lock it, and everything else with it.
        let b = ip("192.0.2.51");
        lock(&mut t, b, Target::Main, t0);
        assert!(t.locked(b, Target::Main, t0).is_some());
        assert!(t.locked(b, Target::Other, t0).is_some());
    }

    /// Regression (black-box test): at 10,000 tracked addresses the limiter cleared its whole
    /// table, lifting every lockout in force.
    #[test]
    fn a_flood_of_failures_from_20000_addresses_leaves_an_earlier_lockout_in_force() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let victim = ip("203.0.113.77");
        lock(&mut t, victim, Target::Other, t0);
        let v6_victim = ip("2001:db8:ffff:1::1");
        lock(&mut t, v6_victim, Target::Main, t0);
        for i in 0..20_000u32 {
            let a = IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | (u128::from(i) << 64),
            ));
            t.fail(
                a,
                Target::Other,
                t0 + Duration::from_millis(u64::from(i) / 1000),
            );
        }
        let later = t0 + Duration::from_secs(20);
        assert!(t.locked(victim, Target::Other, later).is_some());
        assert!(t.locked(v6_victim, Target::Main, later).is_some());
        assert!(t.len() <= MAX_TRACKED, "{} entries", t.len());
    }

    #[test]
    fn a_flood_of_lockouts_is_aggregated_to_a_coarser_prefix() {
        let mut t = Table::default();
        let t0 = Instant::now();
        let victim = ip("198.51.100.1");
        lock(&mut t, victim, Target::Other, t0);
        // Every address of 10.0.0.0/8 below the 10,000th gets locked out on its own ...
        for i in 0..(MAX_TRACKED as u32 + 3_000) {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));
            lock(&mut t, a, Target::Other, t0);
        }
        assert!(t.locked(victim, Target::Other, t0).is_some());
        assert!(t.locked(ip("10.0.0.1"), Target::Other, t0).is_some());
        // ... and later ones are counted under their /24, whose lockout covers the prefix.
        let late = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (MAX_TRACKED as u32 + 2_999)));
        assert!(t.locked(late, Target::Other, t0).is_some());
        assert!(t.locked(ip("10.0.47.250"), Target::Other, t0).is_some());
        assert_eq!(t.locked(ip("10.200.0.1"), Target::Other, t0), None);
        assert!(t.len() <= MAX_TRACKED + 100, "{} entries", t.len());
        // Once the window has passed, the table makes room again.
        let after = t0 + WINDOW;
        t.fail(ip("192.0.2.9"), Target::Other, after);
        assert!(t.len() < 100, "{} entries", t.len());
    }
}
