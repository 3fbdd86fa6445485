//! The README's tour, run as written (issue 11): its shell blocks from "## Five-minute tour" up to
//! the next `## ` section, in a fresh directory, with this build's `assetd` first on PATH. Two
//! things differ from a reader's run, both for a test that must not use fixed ports: `assetd
//! serve` gets `--listen 127.0.0.1:{free port}` and `ASSETD_URL` points there. Every sample
//! output line (`#   …`) must appear in the output, `…` and the random digits standing for
//! anything, so the samples cannot go stale.

use crate::harness::BIN;
use std::path::Path;

fn tour() -> (String, Vec<String>) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Five-minute tour").expect("a tour section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut script = String::new();
    let mut samples = Vec::new();
    let mut inside = false;
    for line in rest[..end].lines() {
        if line.starts_with("```") {
            inside = !inside && line == "```sh";
            continue;
        }
        if inside {
            script.push_str(line);
            script.push('\n');
            if let Some(sample) = line.strip_prefix("#   ") {
                samples.push(sample.trim().to_string());
            }
        }
    }
    (script, samples)
}

/// `pattern` with `…` for any text and `4821` for any digits, found within one line of `text`.
fn matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.replace("4821", "…");
    let parts: Vec<&str> = pattern.split('…').collect();
    text.lines().any(|line| {
        let mut at = 0;
        parts.iter().all(|part| match line[at..].find(part) {
            Some(pos) => {
                at += pos + part.len();
                true
            }
            None => false,
        })
    })
}

#[test]
fn the_readme_tour_runs_as_written() {
    let (script, samples) = tour();
    assert!(script.contains("assetd serve"), "{script}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = script.replace(
        "assetd serve ",
        &format!("assetd serve --listen 127.0.0.1:{port} "),
    );
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let wrapped =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let mut cmd = std::process::Command::new("timeout");
    cmd.args(["120", "bash", "-c", &wrapped])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ASSETD_URL", format!("http://127.0.0.1:{port}"));
    for v in [
        "ASSETD_DATA",
        "ASSETD_ACCOUNT_SID",
        "ASSETD_AUTH_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
    ] {
        cmd.env_remove(v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README tour failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for want in [
        "Ahoy!\n",
        "403\n",
        "for Twilio only\n",
        "Ahoy, v2!\n",
        "ASSETD_AUTH_TOKEN=",
    ] {
        assert!(stdout.contains(want), "{want:?} missing in:\n{stdout}");
    }
    for sample in samples {
        let sample = sample.replace("8080", &port.to_string());
        assert!(
            matches(&sample, &stdout),
            "the README's sample output line\n  {sample}\nis not in what the tour printed:\n{stdout}"
        );
    }
}
