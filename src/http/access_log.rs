//! The access log (`serve --access-log FILE|-`): one line per request, in the combined format
//! or as JSON, written by a thread of its own.
//!
//! Off the hot path: a request's line is formatted and handed to a bounded channel; when the
//! writer has fallen that far behind (a stalled disk), the line is dropped and counted
//! (`assetd_access_log_dropped_total`), never waited for. The file is reopened on
//! [`Reopen::request`] (SIGHUP), so logrotate's `mv` + `kill -HUP` works.
//!
//! SECURITY: a line holds the path without its query (a share link's `Signature` is in the
//! query, and so may be anything else a client put there), no header but `User-Agent` and the
//! `Referer`'s query-less form, never credentials or signatures. Every field that comes from
//! the client is escaped, so a request cannot forge a line.

use crate::model::time;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines that may wait for the writer; past that they are dropped.
const QUEUE: usize = 16 * 1024;
/// How often the writer looks at the reopen flag when no line arrives.
const TICK: Duration = Duration::from_millis(100);

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache/nginx combined, plus `host=… rt=… env=… vis=…`.
    Combined,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "combined" => Ok(Format::Combined),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "--access-log-format {s:?} must be combined or json"
            )),
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// One request, as logged.
pub struct Entry<'a> {
    pub unix_secs: u64,
    pub client: Option<IpAddr>,
    pub host: &'a str,
    pub method: &'a str,
    /// The request target; its query is cut off here.
    pub target: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration: Duration,
    /// For asset requests: the environment label and the asset's visibility (when found).
    pub environment: Option<&'a str>,
    pub visibility: Option<&'static str>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The sending side, held by the router.
pub struct AccessLog {
    tx: SyncSender<String>,
    format: Format,
}

/// Asks the writer to reopen its file (from the SIGHUP thread).
#[derive(Clone)]
pub struct Reopen(Arc<AtomicBool>);

impl Reopen {
    pub fn request(&self) {
        self.0.store(true, Relaxed);
    }
}

impl AccessLog {
    /// Opens the target (for appending; created with mode 0640) and starts the writer thread.
    pub fn start(target: Target, format: Format) -> io::Result<(AccessLog, Reopen)> {
        let out = open(&target)?;
        let (tx, rx) = sync_channel(QUEUE);
        let reopen = Reopen(Arc::new(AtomicBool::new(false)));
        let flag = reopen.clone();
        std::thread::Builder::new()
            .name("assetd-access-log".into())
            .spawn(move || writer(target, out, rx, flag))?;
        Ok((AccessLog { tx, format }, reopen))
    }

    /// Queues the line for `e`; drops it (and counts the drop) when the queue is full.
    pub fn log(&self, e: &Entry<'_>) {
        let line = match self.format {
            Format::Combined => combined(e),
            Format::Json => json(e),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            crate::metrics::get()
                .access_log_dropped
                .fetch_add(1, Relaxed);
        }
    }
}

fn open(target: &Target) -> io::Result<Box<dyn Write + Send>> {
    match target {
        Target::Stdout => Ok(Box::new(io::stdout())),
        Target::File(path) => {
            let mut o = OpenOptions::new();
            o.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o640);
            let f: File = o.open(path)?;
            Ok(Box::new(f))
        }
    }
}

fn writer(target: Target, out: Box<dyn Write + Send>, rx: Receiver<String>, reopen: Reopen) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    loop {
        match rx.recv_timeout(TICK) {
            Ok(line) => {
                let mut n = 1u64;
                let _ = out.write_all(line.as_bytes());
                // Whatever else is queued goes in the same write.
                while let Ok(line) = rx.try_recv() {
                    let _ = out.write_all(line.as_bytes());
                    n += 1;
                }
                if let Err(e) = out.flush() {
                    eprintln!("assetd: cannot write the access log: {e}");
                }
                crate::metrics::get().access_log_lines.fetch_add(n, Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
        if reopen.0.swap(false, Relaxed) {
            let _ = out.flush();
            match open(&target) {
                Ok(f) => out = BufWriter::with_capacity(64 * 1024, f),
                Err(e) => {
                    eprintln!("assetd: cannot reopen the access log: {e}; keeping the old file")
                }
            }
        }
    }
}

/// The target without its query or fragment.
fn path_only(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

/// Client text for a quoted field: `"`, `\`, and anything not printable ASCII escaped as
/// `\xHH`, so no value can end the field or the line.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

fn combined(e: &Entry<'_>) -> String {
    let client = e
        .client
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let bytes = if e.bytes == 0 {
        "-".to_string()
    } else {
        e.bytes.to_string()
    };
    let quoted = |v: Option<&str>| v.map_or_else(|| "-".to_string(), escape);
    format!(
        "{client} - - [{}] \"{} {} HTTP/1.1\" {} {bytes} \"{}\" \"{}\" host=\"{}\" rt={:.6} env={} vis={}\n",
        time::clf_date(e.unix_secs),
        escape(e.method),
        escape(path_only(e.target)),
        e.status,
        quoted(e.referer.map(path_only)),
        quoted(e.user_agent),
        escape(e.host),
        e.duration.as_secs_f64(),
        e.environment.map_or_else(|| "-".to_string(), escape),
        e.visibility.unwrap_or("-"),
    )
}

fn json(e: &Entry<'_>) -> String {
    let mut line = serde_json::json!({
        "time": time::iso8601(e.unix_secs),
        "client": e.client.map(|ip| ip.to_string()),
        "host": e.host,
        "method": e.method,
        "path": path_only(e.target),
        "status": e.status,
        "bytes": e.bytes,
        "duration": e.duration.as_secs_f64(),
        "environment": e.environment,
        "visibility": e.visibility,
        "referer": e.referer.map(path_only),
        "user_agent": e.user_agent,
    })
    .to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(target: &'a str, ua: &'a str) -> Entry<'a> {
        Entry {
            unix_secs: 971_186_136,
            client: Some("10.0.0.7".parse().unwrap()),
            host: "svc-1234-dev.localhost:8080",
            method: "GET",
            target,
            status: 200,
            bytes: 2326,
            duration: Duration::from_micros(120),
            environment: Some("svc-1234-dev"),
            visibility: Some("protected"),
            referer: Some("http://x/y?Signature=abc"),
            user_agent: Some(ua),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, rx) = sync_channel(1);
        let log = AccessLog {
            tx,
            format: Format::Json,
        };
        let dropped = || crate::metrics::get().access_log_dropped.load(Relaxed);
        let before = dropped();
        let e = entry("/a", "ua");
        log.log(&e); // queued
        log.log(&e); // the writer is stalled (nobody reads): dropped at once
        log.log(&e);
        assert!(dropped() >= before + 2);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn lines_hold_no_query_and_no_forged_fields() {
        let e = entry("/secret.mp3?Expires=1&Signature=SECRET", "curl\" \"evil\n");
        let c = combined(&e);
        assert_eq!(
            c,
            "10.0.0.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /secret.mp3 HTTP/1.1\" 200 2326 \"http://x/y\" \"curl\\\" \\\"evil\\x0a\" host=\"svc-1234-dev.localhost:8080\" rt=0.000120 env=svc-1234-dev vis=protected\n"
        );
        let j = json(&e);
        assert!(!j.contains("SECRET") && !j.contains("abc"), "{j}");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["path"], "/secret.mp3");
        assert_eq!(v["visibility"], "protected");
        assert_eq!(j.matches('\n').count(), 1);
    }
}
