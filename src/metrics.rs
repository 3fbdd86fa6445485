//! Process-wide counters behind `GET /metrics` ([`crate::http::metrics`] writes them out).
//!
//! Every series is fixed when the binary is built: labels come from small closed sets (request
//! kind, status class, reason), never from user input (no paths, hosts or SIDs), so a scrape
//! has a bounded size. Counting is a relaxed atomic add on the request path: no lock, no
//! allocation. The per-request counters are striped (each thread adds to its own
//! cache-line-aligned [`Stripe`], the scrape sums them), so the network threads never contend
//! for one cache line.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What a request was for: the label `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Asset = 0,
    Api = 1,
    /// The management host outside the API: console files, `/healthz`, `/metrics`.
    Console = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Asset, Kind::Api, Kind::Console];

    pub fn name(self) -> &'static str {
        ["asset", "api", "console"][self as usize]
    }
}

/// Status classes `1xx` … `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds (seconds) of the request-duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// Upper bounds (seconds) of the build-duration histogram's buckets.
pub const BUILD_BUCKETS: [f64; 8] = [0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// Why a protected asset was refused: the label `reason`.
#[derive(Debug, Clone, Copy)]
pub enum SignatureFailure {
    /// No or a wrong `X-Twilio-Signature`.
    Twilio = 0,
    /// A share link that is malformed, tampered with, made with another token or for another URL.
    ShareInvalid = 1,
    /// A valid share link past its expiry.
    ShareExpired = 2,
}

pub const SIGNATURE_REASONS: [&str; 3] = ["twilio", "share_invalid", "share_expired"];

/// A histogram of `N` bucket bounds: per-bucket counts (cumulated when written out; their
/// total is the count) and a sum in microseconds.
pub struct Histogram<const N: usize> {
    /// `buckets[i]` counts observations in (bound[i-1], bound[i]]; `buckets[N]` the rest
    /// (the array is sized for up to 16 bounds).
    pub buckets: [AtomicU64; 17],
    pub sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new() -> Self {
        assert!(N < 17);
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 17],
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, bounds: &[f64; N], d: Duration) {
        let secs = d.as_secs_f64();
        let i = bounds.iter().position(|b| secs <= *b).unwrap_or(N);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

/// Stripes of the per-request counters.
pub const STRIPES: usize = 8;

/// One thread's share of the per-request counters, on cache lines of its own.
#[repr(align(128))]
pub struct Stripe {
    /// Requests by kind and status class.
    pub requests: [[AtomicU64; 5]; 3],
    /// Response body bytes by kind (the length of each reply's body; HEAD counts 0).
    pub response_bytes: [AtomicU64; 3],
    /// Time to answer, by kind: from the request head's arrival at the router until the
    /// reply's head is ready (the body's transfer is not included: it depends on the client).
    pub durations: [Histogram<{ DURATION_BUCKETS.len() }>; 3],
}

/// Every counter of the process.
pub struct Metrics {
    pub stripes: [Stripe; STRIPES],
    pub signature_failures: [AtomicU64; 3],
    /// Protected-asset requests let in by a valid share link.
    pub share_links_used: AtomicU64,
    /// Builds whose build step finished, completed (0) or failed (1).
    pub builds_finished: [AtomicU64; 2],
    pub build_durations: Histogram<{ BUILD_BUCKETS.len() }>,
    /// Builds waiting for the build step.
    pub build_queue: AtomicU64,
    pub retention_passes: AtomicU64,
    pub retention_bytes_reclaimed: AtomicU64,
    /// Addresses (or prefixes) locked out by the failed-login limiter.
    pub lockouts: AtomicU64,
    /// Access-log lines written, and dropped because the writer fell behind.
    pub access_log_lines: AtomicU64,
    pub access_log_dropped: AtomicU64,
}

static METRICS: Metrics = Metrics {
    stripes: [const {
        Stripe {
            requests: [const { [const { AtomicU64::new(0) }; 5] }; 3],
            response_bytes: [const { AtomicU64::new(0) }; 3],
            durations: [const { Histogram::new() }; 3],
        }
    }; STRIPES],
    signature_failures: [const { AtomicU64::new(0) }; 3],
    share_links_used: AtomicU64::new(0),
    builds_finished: [const { AtomicU64::new(0) }; 2],
    build_durations: Histogram::new(),
    build_queue: AtomicU64::new(0),
    retention_passes: AtomicU64::new(0),
    retention_bytes_reclaimed: AtomicU64::new(0),
    lockouts: AtomicU64::new(0),
    access_log_lines: AtomicU64::new(0),
    access_log_dropped: AtomicU64::new(0),
};

static STARTED: OnceLock<Instant> = OnceLock::new();

static NEXT_STRIPE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's stripe, given out round-robin.
    static STRIPE: usize = (NEXT_STRIPE.fetch_add(1, Relaxed) as usize) % STRIPES;
}

/// The process's counters.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Marks the process start (for the uptime); later calls change nothing.
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// Seconds since [`mark_start`].
pub fn uptime() -> f64 {
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64()
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, kind: Kind, status: u16, bytes: u64, took: Duration) {
        let k = kind as usize;
        let class = ((status / 100).clamp(1, 5) - 1) as usize;
        let stripe = &self.stripes[STRIPE.with(|s| *s)];
        stripe.requests[k][class].fetch_add(1, Relaxed);
        stripe.response_bytes[k].fetch_add(bytes, Relaxed);
        stripe.durations[k].observe(&DURATION_BUCKETS, took);
    }

    pub fn signature_failure(&self, why: SignatureFailure) {
        self.signature_failures[why as usize].fetch_add(1, Relaxed);
    }

    /// Counts one finished build step.
    pub fn build_finished(&self, completed: bool, took: Duration) {
        self.builds_finished[usize::from(!completed)].fetch_add(1, Relaxed);
        self.build_durations.observe(&BUILD_BUCKETS, took);
    }

    /// Counts one retention pass.
    pub fn retention(&self, bytes_reclaimed: u64) {
        self.retention_passes.fetch_add(1, Relaxed);
        self.retention_bytes_reclaimed
            .fetch_add(bytes_reclaimed, Relaxed);
    }
}

/// The process's resident set size in bytes (Linux `/proc/self/statm`), 0 when unknown.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
