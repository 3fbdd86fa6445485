//! The hot path's memory: asset URLs already resolved and blob records already read, kept
//! while no write has committed since. Opening redb tables and decoding their records was a
//! third of an asset request's CPU; with this, a repeated request opens only the chunk table.
//!
//! Validity: writers count themselves in ([`Hot::writing`]) before their transaction and
//! count a commit on the way out. A snapshot may use the cache only when no writer was in
//! progress and no commit counted between just before and just after the snapshot began,
//! so the cached records are exactly what the snapshot itself would read.

use super::ops::Hit;
use super::records::Account;
use super::tables::BlobMeta;
use crate::model::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Entries kept per map; past it the map starts over (an attacker spraying unique URLs only
/// makes requests as slow as without the cache).
const MAX_ENTRIES: usize = 4096;

/// Blobs (or gzip variants) up to this size are kept in memory once read ([`Hot::body`]).
pub(crate) const BODY_MAX: u64 = 128 * 1024;
/// The most bytes of blob bodies kept; past it the body cache starts over.
const BODIES_BUDGET: usize = 16 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct Hot {
    writers: AtomicU64,
    commits: AtomicU64,
    maps: Mutex<Maps>,
    bodies: Mutex<Bodies>,
}

/// Small blob bodies by blob id. Unlike the maps above they need no generation: a committed
/// blob id is never reused (ids only grow, and an aborted writer's id was never visible), and
/// a blob's bytes never change, so an entry is right for as long as anything can name it.
#[derive(Default)]
struct Bodies {
    map: HashMap<u64, Arc<[u8]>>,
    bytes: usize,
}

#[derive(Default)]
struct Maps {
    /// The commit count the entries were read at.
    generation: u64,
    /// Keyed by `label \0 candidate paths`.
    routes: HashMap<String, Option<Arc<Hit>>>,
    blobs: HashMap<[u8; 32], Option<BlobMeta>>,
    /// Accounts by SID (the protected-asset check reads the owner's token each time).
    accounts: HashMap<String, Option<Account>>,
}

/// Held for the length of a write transaction; counts a commit when dropped.
pub(crate) struct Writing<'a>(&'a Hot);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.commits.fetch_add(1, SeqCst);
        self.0.writers.fetch_sub(1, SeqCst);
    }
}

impl Hot {
    pub(crate) fn writing(&self) -> Writing<'_> {
        self.writers.fetch_add(1, SeqCst);
        Writing(self)
    }

    /// Call just before a snapshot begins; pass the result to [`Hot::after_snapshot`].
    pub(crate) fn before_snapshot(&self) -> Option<u64> {
        let commits = self.commits.load(SeqCst);
        (self.writers.load(SeqCst) == 0).then_some(commits)
    }

    /// The generation the new snapshot may use the cache at, if any.
    pub(crate) fn after_snapshot(&self, before: Option<u64>) -> Option<u64> {
        let g = before?;
        (self.writers.load(SeqCst) == 0 && self.commits.load(SeqCst) == g).then_some(g)
    }

    fn with<T>(&self, generation: u64, f: impl FnOnce(&mut Maps) -> T) -> Option<T> {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if maps.generation != generation {
            if maps.generation > generation {
                return None; // an older snapshot: never mix its reads in
            }
            maps.routes.clear();
            maps.blobs.clear();
            maps.accounts.clear();
            maps.generation = generation;
        }
        Some(f(&mut maps))
    }

    pub(crate) fn route(&self, g: u64, key: &str) -> Option<Option<Arc<Hit>>> {
        self.with(g, |m| m.routes.get(key).cloned()).flatten()
    }

    pub(crate) fn put_route(&self, g: u64, key: String, hit: Option<Arc<Hit>>) {
        self.with(g, |m| {
            if m.routes.len() >= MAX_ENTRIES {
                m.routes.clear();
            }
            m.routes.insert(key, hit);
        });
    }

    pub(crate) fn blob(&self, g: u64, digest: &Digest) -> Option<Option<BlobMeta>> {
        self.with(g, |m| m.blobs.get(&digest.0).cloned()).flatten()
    }

    pub(crate) fn put_blob(&self, g: u64, digest: &Digest, meta: Option<BlobMeta>) {
        self.with(g, |m| {
            if m.blobs.len() >= MAX_ENTRIES {
                m.blobs.clear();
            }
            m.blobs.insert(digest.0, meta);
        });
    }

    pub(crate) fn account(&self, g: u64, sid: &str) -> Option<Option<Account>> {
        self.with(g, |m| m.accounts.get(sid).cloned()).flatten()
    }

    pub(crate) fn put_account(&self, g: u64, sid: &str, account: Option<Account>) {
        self.with(g, |m| {
            if m.accounts.len() >= MAX_ENTRIES {
                m.accounts.clear();
            }
            m.accounts.insert(sid.to_string(), account);
        });
    }

    /// The body of blob `id`, when kept.
    pub(crate) fn body(&self, id: u64) -> Option<Arc<[u8]>> {
        let b = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        b.map.get(&id).cloned()
    }

    /// Keeps the body of blob `id` (at most [`BODY_MAX`] bytes).
    pub(crate) fn put_body(&self, id: u64, body: Arc<[u8]>) {
        let mut b = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        if b.bytes + body.len() > BODIES_BUDGET {
            b.map.clear();
            b.bytes = 0;
        }
        b.bytes += body.len();
        if let Some(old) = b.map.insert(id, body) {
            b.bytes -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_bodies_stay_within_their_budget() {
        let hot = Hot::default();
        let body: Arc<[u8]> = vec![7u8; BODY_MAX as usize].into();
        let fit = BODIES_BUDGET / BODY_MAX as usize;
        for id in 0..fit as u64 {
            hot.put_body(id, body.clone());
        }
        assert!(hot.body(0).is_some() && hot.body(fit as u64 - 1).is_some());
        // One more starts the cache over: never more than the budget held.
        hot.put_body(fit as u64, body.clone());
        assert!(hot.body(0).is_none());
        assert_eq!(hot.body(fit as u64).as_deref(), Some(&body[..]));
        let b = hot.bodies.lock().unwrap();
        assert!(b.bytes <= BODIES_BUDGET && b.bytes == b.map.len() * BODY_MAX as usize);
    }
}
