//! The build step, in the background: a build created through the API is `building` until the
//! gzip variants of its compressible public and protected content are computed, then
//! `completed`, or `failed` when content it needs is missing or damaged.
//!
//! One thread works through the queue, one build at a time. Each step is its own transaction
//! and safe to repeat, so a crash at any moment leaves the build `building`; the builds still
//! `building` when the server starts are queued again. A passing store error (I/O, a full
//! disk) does not fail a build: it is tried again later (after 5 s, doubling up to 5 min).

use crate::model::Digest;
use crate::store::{Store, StoreError};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Gzip work done per write transaction: at most this many input bytes (other writers wait
/// for a transaction, and each commit is a durable sync)…
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// …and at most this many blobs.
const BATCH_BLOBS: usize = 256;
/// After a passing store error, the builder waits this long before the next attempt, doubling
/// while errors go on (a full disk: each failed write makes the store reopen its file)…
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// …up to this.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(300);

/// The queue of builds to build and the thread that builds them.
pub struct Builder {
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
}

/// What one attempt at a build came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The build is now `completed` or `failed` (the status).
    Finished(String),
    /// Nothing to do: the build is gone or no longer `building`.
    Nothing,
    /// A passing store error: try again later.
    Retry,
}

impl Builder {
    /// Starts the build thread on `store` and queues every build left `building`; fails only
    /// when the thread cannot be started.
    pub fn start(store: Arc<Store>) -> std::io::Result<Arc<Builder>> {
        let builder = Arc::new(Builder {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
        });
        match store.read().and_then(|l| l.unfinished_builds()) {
            Ok(sids) => sids.into_iter().for_each(|s| builder.enqueue(s)),
            Err(e) => eprintln!("assetd: cannot list unfinished builds: {e}"),
        }
        let me = builder.clone();
        std::thread::Builder::new()
            .name("assetd-builder".into())
            .spawn(move || {
                let mut pause = RETRY_PAUSE;
                loop {
                    let sid = me.next();
                    let started = std::time::Instant::now();
                    // A bug in one build must not stop the builder: it fails that build.
                    let outcome = catch_unwind(AssertUnwindSafe(|| run(&store, &sid)))
                        .unwrap_or_else(|_| {
                            eprintln!("assetd: build {sid} failed: the build step panicked");
                            record(&store, &sid, false)
                        });
                    if let Outcome::Finished(status) = &outcome {
                        crate::metrics::get()
                            .build_finished(status == "completed", started.elapsed());
                    }
                    if outcome == Outcome::Retry {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                        me.enqueue(sid);
                    } else {
                        pause = RETRY_PAUSE;
                    }
                }
            })?;
        Ok(builder)
    }

    /// Queues a build; returns at once.
    pub fn enqueue(&self, build_sid: String) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if !q.contains(&build_sid) {
            q.push_back(build_sid);
        }
        set_queue_gauge(q.len());
        self.wake.notify_one();
    }

    fn next(&self) -> String {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(sid) = q.pop_front() {
                set_queue_gauge(q.len());
                return sid;
            }
            q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn set_queue_gauge(len: usize) {
    crate::metrics::get()
        .build_queue
        .store(len as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Runs the build step of one build once.
pub fn run(store: &Store, build_sid: &str) -> Outcome {
    match work(store, build_sid) {
        Ok(false) => Outcome::Nothing,
        Ok(true) => record(store, build_sid, true),
        // Missing or damaged content: this build can never complete.
        Err(e @ (StoreError::NotFound(_) | StoreError::Corrupt(_) | StoreError::Invalid(_))) => {
            eprintln!("assetd: build {build_sid} failed: {e}");
            record(store, build_sid, false)
        }
        Err(e) => {
            store.note_error(&e);
            eprintln!("assetd: build {build_sid} will be tried again: {e}");
            Outcome::Retry
        }
    }
}

/// Records the end of a build step.
fn record(store: &Store, build_sid: &str, ok: bool) -> Outcome {
    match store.write(|tx| tx.finish_build(build_sid, ok)) {
        Ok(Some(status)) => Outcome::Finished(status),
        Ok(None) => Outcome::Nothing,
        Err(e) => {
            eprintln!("assetd: cannot record the end of build {build_sid}: {e}");
            Outcome::Retry
        }
    }
}

/// The gzip work of one build, in batches of write transactions after one short read (no
/// snapshot is held while compressing). False when there is nothing to build (gone, or no longer `building`).
fn work(store: &Store, build_sid: &str) -> Result<bool, StoreError> {
    let Some(todo) = store.read()?.build_work(build_sid)? else {
        return Ok(false);
    };
    let mut batch: Vec<Digest> = Vec::new();
    let mut bytes = 0u64;
    for (digest, size) in todo {
        bytes += size;
        batch.push(digest);
        if bytes >= BATCH_BYTES || batch.len() >= BATCH_BLOBS {
            store.write(|tx| tx.compress(&batch))?;
            batch.clear();
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        store.write(|tx| tx.compress(&batch))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AssetPath, Visibility};
    use crate::store::{Build, Service};
    use std::time::{Duration, Instant};

    /// A store with one service, an environment and a `building` build of a compressible
    /// public file and a private one.
    fn setup() -> (tempfile::TempDir, Arc<Store>, Service, Build, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let text = "ahoy ahoy ahoy ahoy ".repeat(500);
        let (svc, build, digest) = store
            .write(|tx| {
                let (acct, _) = tx.ensure_main_account()?;
                let svc = tx.create_service(&acct.sid, "b", "b")?;
                tx.create_environment(&svc, "dev", Some("dev"))?;
                let mut sids = Vec::new();
                let mut digest = None;
                for (path, vis) in [
                    ("/a.txt", Visibility::Public),
                    ("/p.txt", Visibility::Private),
                ] {
                    let put = tx.put_blob(&mut format!("{path}{text}").as_bytes(), None, None)?;
                    let asset = tx.asset_named(&svc, path)?;
                    let p = AssetPath::parse(path)?;
                    sids.push(
                        tx.create_version(&asset, &p, vis, "text/plain", &put.digest)?
                            .sid,
                    );
                    digest.get_or_insert(put.digest);
                }
                let b = tx.create_build(&svc, &sids, serde_json::json!([]), None)?;
                Ok((svc, b, digest.unwrap()))
            })
            .unwrap();
        (dir, store, svc, build, digest)
    }

    fn status(store: &Store, sid: &str) -> String {
        store.read().unwrap().build(sid).unwrap().unwrap().status
    }

    #[test]
    fn a_build_is_building_until_its_step_completes_it() {
        let (_d, store, svc, build, digest) = setup();
        assert_eq!(build.status, "building");
        let env = store
            .read()
            .unwrap()
            .environments(&svc.sid)
            .unwrap()
            .remove(0);
        let err = store.write(|tx| tx.deploy(&env, &build.sid)).unwrap_err();
        assert!(err.to_string().contains("is still building"), "{err}");
        assert_eq!(store.read().unwrap().gzip_len(&digest).unwrap(), None);

        assert_eq!(
            run(&store, &build.sid),
            Outcome::Finished("completed".into())
        );
        assert!(store.read().unwrap().gzip_len(&digest).unwrap().is_some());
        store.write(|tx| tx.deploy(&env, &build.sid)).unwrap();
        // Done once: a second run has nothing to do and changes nothing.
        assert_eq!(run(&store, &build.sid), Outcome::Nothing);
        assert_eq!(status(&store, &build.sid), "completed");
    }

    #[test]
    fn a_build_whose_content_is_gone_fails_and_cannot_be_deployed() {
        let (_d, store, svc, build, digest) = setup();
        crate::store::tests::lose_blob(&store, &digest);
        assert_eq!(run(&store, &build.sid), Outcome::Finished("failed".into()));
        let env = store
            .read()
            .unwrap()
            .environments(&svc.sid)
            .unwrap()
            .remove(0);
        let err = store.write(|tx| tx.deploy(&env, &build.sid)).unwrap_err();
        assert!(
            err.to_string().contains("is failed: only completed"),
            "{err}"
        );
    }

    /// Regression (review): retention deleted builds still building, under a polling client.
    #[test]
    fn retention_keeps_a_build_that_is_still_building() {
        let (_d, store, _svc, build, _digest) = setup();
        let r = store.write(|tx| tx.retention(0)).unwrap();
        assert_eq!(r.builds_deleted, 0);
        assert_eq!(status(&store, &build.sid), "building");
        assert_eq!(
            run(&store, &build.sid),
            Outcome::Finished("completed".into())
        );
        // Completed and never deployed: now it is an old unused build like any other.
        let r = store.write(|tx| tx.retention(0)).unwrap();
        assert_eq!(r.builds_deleted, 1);
    }

    #[test]
    fn builds_left_building_by_a_restart_are_finished_by_the_next_start() {
        let (_d, store, _svc, build, _digest) = setup();
        // As after a crash: the build is `building` and no thread has it queued.
        Builder::start(store.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(&store, &build.sid) == "building" {
            assert!(Instant::now() < deadline, "the build was never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(status(&store, &build.sid), "completed");
    }

    #[test]
    fn queued_builds_are_built_in_the_background() {
        let (_d, store, svc, _build, _digest) = setup();
        let builder = Builder::start(store.clone()).unwrap();
        let sids = store.read().unwrap().builds(&svc.sid).unwrap()[0]
            .asset_versions
            .clone();
        let b = store
            .write(|tx| tx.create_build(&svc, &sids, serde_json::json!([]), None))
            .unwrap();
        builder.enqueue(b.sid.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(&store, &b.sid) == "building" {
            assert!(
                Instant::now() < deadline,
                "the queued build was never finished"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(status(&store, &b.sid), "completed");
    }
}
