//! `GET /metrics`: the process's counters ([`crate::metrics`]), the engine's
//! ([`EngineStats`]) and the store's figures in the Prometheus text format, version 0.0.4.
//!
//! Written by hand rather than with `prometheus-client`: every series here is fixed at build
//! time and lives in a plain atomic, so the exposition is a few `writeln!`s, checked by the
//! real Python parser in the tests; the crate's registry and label families would add a
//! dependency tree and a lock per labelled increment for no gain.

use crate::http::server::EngineStats;
use crate::metrics::{self, BUILD_BUCKETS, CLASSES, DURATION_BUCKETS, Histogram, Kind};
use crate::store::Store;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn load(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes the sum of the histograms `hs` (the stripes of one series).
fn histogram<'h, const N: usize>(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64; N],
    hs: impl Iterator<Item = &'h Histogram<N>> + Clone,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    let bucket = |i: usize| hs.clone().map(|h| load(&h.buckets[i])).sum::<u64>();
    let mut cumulative = 0;
    for (i, b) in bounds.iter().enumerate() {
        cumulative += bucket(i);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
    }
    cumulative += bucket(N);
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
    );
    let sum = hs.clone().map(|h| load(&h.sum_micros)).sum::<u64>() as f64 / 1e6;
    let braces = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{{{s}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    // The count is the bucket total, so the two always agree within one scrape.
    let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
}

/// The whole exposition. `store` figures that cannot be read (a disk error) are left out.
pub fn render(store: &Store, engine: &EngineStats) -> String {
    let m = metrics::get();
    let mut out = String::with_capacity(8 * 1024);

    head(
        &mut out,
        "assetd_http_requests_total",
        "counter",
        "HTTP requests answered, by kind (asset, api, console) and status class.",
    );
    for kind in Kind::ALL {
        for (c, class) in CLASSES.iter().enumerate() {
            let n: u64 = m
                .stripes
                .iter()
                .map(|s| load(&s.requests[kind as usize][c]))
                .sum();
            let _ = writeln!(
                out,
                "assetd_http_requests_total{{kind=\"{}\",status=\"{class}\"}} {n}",
                kind.name()
            );
        }
    }
    head(
        &mut out,
        "assetd_http_response_bytes_total",
        "counter",
        "Response body bytes, by kind (HEAD requests count none).",
    );
    for kind in Kind::ALL {
        let n: u64 = m
            .stripes
            .iter()
            .map(|s| load(&s.response_bytes[kind as usize]))
            .sum();
        let _ = writeln!(
            out,
            "assetd_http_response_bytes_total{{kind=\"{}\"}} {n}",
            kind.name()
        );
    }
    head(
        &mut out,
        "assetd_http_request_duration_seconds",
        "histogram",
        "Time to answer a request, until its reply head is ready (the body transfer is not included).",
    );
    for kind in Kind::ALL {
        let labels = format!("kind=\"{}\"", kind.name());
        histogram(
            &mut out,
            "assetd_http_request_duration_seconds",
            &labels,
            &DURATION_BUCKETS,
            m.stripes.iter().map(|s| &s.durations[kind as usize]),
        );
    }

    let gauge = |out: &mut String, name: &str, help: &str, v: String| {
        head(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    };
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        head(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    };

    gauge(
        &mut out,
        "assetd_http_open_connections",
        "Connections open now.",
        load(&engine.open).to_string(),
    );
    counter(
        &mut out,
        "assetd_http_connections_accepted_total",
        "Connections accepted.",
        load(&engine.accepted),
    );
    head(
        &mut out,
        "assetd_http_connections_limited_total",
        "counter",
        "Connections or requests refused or cut by a limit: head_timeout (TLS handshake or first request head too slow), idle (keep-alive wait or later head too slow), body_stall (request body made no progress, 408), write_stall (peer stopped reading), body_too_large (413), cap (an accept waited for the connection cap), accept_error (out of descriptors or memory).",
    );
    for (limit, v) in [
        ("head_timeout", &engine.head_timeouts),
        ("idle", &engine.idle_timeouts),
        ("body_stall", &engine.body_stalls),
        ("write_stall", &engine.write_stalls),
        ("body_too_large", &engine.body_too_large),
        ("cap", &engine.cap_waits),
        ("accept_error", &engine.accept_errors),
    ] {
        let _ = writeln!(
            out,
            "assetd_http_connections_limited_total{{limit=\"{limit}\"}} {}",
            load(v)
        );
    }

    head(
        &mut out,
        "assetd_signature_failures_total",
        "counter",
        "Protected-asset requests refused (403), by reason: twilio (no or a wrong X-Twilio-Signature), share_invalid, share_expired.",
    );
    for (i, reason) in metrics::SIGNATURE_REASONS.iter().enumerate() {
        let _ = writeln!(
            out,
            "assetd_signature_failures_total{{reason=\"{reason}\"}} {}",
            load(&m.signature_failures[i])
        );
    }
    counter(
        &mut out,
        "assetd_share_links_used_total",
        "Protected-asset requests let in by a valid share link.",
        load(&m.share_links_used),
    );

    let file_size = std::fs::metadata(store.dir().join("assetd.redb")).map_or(0, |m| m.len());
    gauge(
        &mut out,
        "assetd_store_file_bytes",
        "Size of the store file (DATADIR/assetd.redb).",
        file_size.to_string(),
    );
    if let Ok(st) = store.read().and_then(|l| l.stats()) {
        gauge(
            &mut out,
            "assetd_store_blobs",
            "Blobs stored.",
            st.blobs.to_string(),
        );
        gauge(
            &mut out,
            "assetd_store_blob_bytes",
            "Bytes in blobs, gzip variants included.",
            st.blob_bytes.to_string(),
        );
        head(&mut out, "assetd_builds", "gauge", "Builds by status.");
        for (status, n) in [
            ("building", st.builds_building),
            ("completed", st.builds_completed),
            ("failed", st.builds_failed),
        ] {
            let _ = writeln!(out, "assetd_builds{{status=\"{status}\"}} {n}");
        }
    }
    gauge(
        &mut out,
        "assetd_build_queue_length",
        "Builds waiting for their build step.",
        load(&m.build_queue).to_string(),
    );
    head(
        &mut out,
        "assetd_build_steps_total",
        "counter",
        "Build steps finished since the start, by result.",
    );
    for (i, result) in ["completed", "failed"].iter().enumerate() {
        let _ = writeln!(
            out,
            "assetd_build_steps_total{{result=\"{result}\"}} {}",
            load(&m.builds_finished[i])
        );
    }
    head(
        &mut out,
        "assetd_build_duration_seconds",
        "histogram",
        "Duration of build steps (gzip variants of a build's content).",
    );
    histogram(
        &mut out,
        "assetd_build_duration_seconds",
        "",
        &BUILD_BUCKETS,
        std::iter::once(&m.build_durations),
    );
    counter(
        &mut out,
        "assetd_retention_passes_total",
        "Retention passes run (hourly, and POST /v1/Retention).",
        load(&m.retention_passes),
    );
    counter(
        &mut out,
        "assetd_retention_reclaimed_bytes_total",
        "Blob bytes reclaimed by retention passes.",
        load(&m.retention_bytes_reclaimed),
    );
    counter(
        &mut out,
        "assetd_login_lockouts_total",
        "Addresses (or prefixes) locked out by the failed-login limiter.",
        load(&m.lockouts),
    );
    counter(
        &mut out,
        "assetd_access_log_lines_total",
        "Access-log lines written.",
        load(&m.access_log_lines),
    );
    counter(
        &mut out,
        "assetd_access_log_dropped_total",
        "Access-log lines dropped because the writer fell behind.",
        load(&m.access_log_dropped),
    );
    gauge(
        &mut out,
        "assetd_process_resident_memory_bytes",
        "Resident set size.",
        metrics::rss_bytes().to_string(),
    );
    gauge(
        &mut out,
        "assetd_process_uptime_seconds",
        "Seconds since the server started.",
        format!("{:.3}", metrics::uptime()),
    );
    out
}
