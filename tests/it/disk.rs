//! A full disk: the server answers 507 with a clear message, stores nothing half-way, and
//! works again without a restart once there is room (redb refuses every operation on a handle
//! after a write failed; the store reopens the file).
//!
//! Needs a small filesystem: a 12 MiB tmpfs mounted for the test (root only). Where mounting
//! is not allowed, the test says so and does nothing.

use crate::harness::*;
use std::process::Command;

/// A tmpfs mounted on a temp directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn put_blob(srv: &Server, auth: &str, bytes: &[u8]) -> Response {
    let digest = assetd::model::Digest::of(bytes).to_hex();
    request(
        srv.addr,
        "PUT",
        "localhost",
        &format!("/v1/Blobs/{digest}"),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/octet-stream"),
        ],
        bytes,
    )
}

#[test]
fn a_full_disk_answers_507_and_the_server_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount("12m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = disk.dir.path().join("data");
    let p = project(&[("hello.txt", b"still served")]);
    let label = label_of(&import(p.path(), &data, "full", &[]));
    let (sid, token) = credentials(&data);
    let auth = basic(&sid, &token);
    let srv = Server::start(&data, &[]);
    let host = format!("{label}.localhost");

    // Fill the disk with 3 MB blobs until the server says it is full.
    let mut full = None;
    for i in 0..10u64 {
        let r = put_blob(&srv, &auth, &noise(3_000_000, 100 + i));
        if !(200..300).contains(&r.status) {
            full = Some(r);
            break;
        }
    }
    let r = full.expect("12 MiB never filled up");
    assert_eq!(r.status, 507, "{}", r.text());
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        e["message"].as_str().unwrap().contains("disk is full"),
        "{e}"
    );

    // Without a restart: what was deployed is still served, and a small write goes through.
    assert_eq!(srv.get(&host, "/hello.txt").body, b"still served");
    let small = put_blob(&srv, &auth, b"a small blob after the disk filled up");
    assert!((200..300).contains(&small.status), "{}", small.text());
    let services = request(
        srv.addr,
        "GET",
        "localhost",
        "/v1/Services",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(services.status, 200, "{}", services.text());
    drop(srv);

    // The store is consistent: verify passes offline (opening a store writes nothing).
    let (ok, out, err) = cli(&["verify", "--data", data.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    // An offline import that does not fit: one line, non-zero exit, nothing changed.
    let big = project(&[("big.bin", &noise(12_000_000, 7))]);
    let (ok, out, err) = cli(&[
        "import",
        big.path().to_str().unwrap(),
        "--service",
        "full",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("disk holding the database is full"), "{err}");

    // And the server still starts on the full disk and serves what is deployed.
    let srv = Server::start(&data, &[]);
    assert_eq!(srv.get(&host, "/hello.txt").body, b"still served");
}
