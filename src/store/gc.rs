//! Retention and space reclaim. Runs in one write transaction, so it is serialised with every
//! deploy: nothing referenced by a live (or past) deployment is ever deleted.

use super::blob::{blob_meta, delete_chunks};
use super::ops::Tx;
use super::records::{AssetVersion, Build, Deployment, Environment, Manifest};
use super::tables::*;
use super::{Result, decode_json};
use crate::model::Digest;
use redb::ReadableTable;
use std::collections::HashSet;

/// Twilio's retention for versions in no build and builds never deployed.
pub const DEFAULT_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GcReport {
    pub builds_deleted: usize,
    pub versions_deleted: usize,
    pub assets_deleted: usize,
    pub manifests_expired: usize,
    pub blobs_reclaimed: usize,
    pub bytes_reclaimed: u64,
}

fn all<T: serde::de::DeserializeOwned>(
    txn: &redb::WriteTransaction,
    def: redb::TableDefinition<&'static str, &'static [u8]>,
) -> Result<Vec<T>> {
    let table = txn.open_table(def)?;
    let mut out = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(decode_json(v.value())?);
    }
    Ok(out)
}

impl Tx<'_> {
    /// Deletes builds never deployed and versions in no build that are older than
    /// `max_age_secs`, assets left without versions (same age), expired manifests, then
    /// reclaims the blobs that nothing references any more and that are older than the cutoff.
    pub fn retention(&mut self, max_age_secs: u64) -> Result<GcReport> {
        let now = self.now();
        let cutoff = now.saturating_sub(max_age_secs);
        let txn = self.txn();
        let mut report = GcReport::default();

        // Builds: keep every build that is or was deployed, every young one, and every one
        // still building (a client is polling its Status).
        let mut deployed: HashSet<String> = all::<Deployment>(txn, DEPLOYMENTS)?
            .into_iter()
            .map(|d| d.build_sid)
            .collect();
        deployed.extend(
            all::<Environment>(txn, ENVIRONMENTS)?
                .into_iter()
                .filter_map(|e| e.build_sid),
        );
        let mut kept_versions: HashSet<String> = HashSet::new();
        for b in all::<Build>(txn, BUILDS)? {
            if deployed.contains(&b.sid)
                || b.date_created > cutoff
                || b.status == super::ops::BUILDING
            {
                kept_versions.extend(b.asset_versions);
                continue;
            }
            self.delete_build_rows(&b)?;
            report.builds_deleted += 1;
        }

        // Versions in no remaining build.
        let mut live_digests: HashSet<String> = HashSet::new();
        let mut assets_with_versions: HashSet<String> = HashSet::new();
        for v in all::<AssetVersion>(txn, VERSIONS)? {
            if kept_versions.contains(&v.sid) || v.date_created > cutoff {
                live_digests.insert(v.digest);
                assets_with_versions.insert(v.asset_sid);
                continue;
            }
            txn.open_table(VERSIONS)?.remove(v.sid.as_str())?;
            txn.open_table(CHILDREN)?
                .remove((v.asset_sid.as_str(), v.sid.as_str()))?;
            report.versions_deleted += 1;
        }

        // Assets left without any version.
        for a in all::<super::records::Asset>(txn, ASSETS)? {
            if assets_with_versions.contains(&a.sid) || a.date_updated > cutoff {
                continue;
            }
            txn.open_table(ASSETS)?.remove(a.sid.as_str())?;
            txn.open_table(ASSET_NAMES)?
                .remove((a.service_sid.as_str(), a.friendly_name.as_str()))?;
            txn.open_table(CHILDREN)?
                .remove((a.service_sid.as_str(), a.sid.as_str()))?;
            report.assets_deleted += 1;
        }

        // Manifests: expired ones go; live ones protect the blobs they name.
        for m in all::<Manifest>(txn, MANIFESTS)? {
            if m.date_created + super::sync::MANIFEST_TTL_SECS < now {
                txn.open_table(MANIFESTS)?.remove(m.sid.as_str())?;
                report.manifests_expired += 1;
            } else {
                live_digests.extend(m.entries.into_iter().map(|e| e.digest));
            }
        }

        let (n, bytes) = self.reclaim(&live_digests, Some(cutoff), None)?;
        report.blobs_reclaimed = n;
        report.bytes_reclaimed = bytes;
        Ok(report)
    }

    /// Reclaims, among `candidates`, the blobs that no version and no live manifest references
    /// (used right after rows were deleted, e.g. a service). Returns (blobs, bytes).
    pub fn reclaim_unreferenced_blobs(&mut self, candidates: &[Digest]) -> Result<(usize, u64)> {
        let txn = self.txn();
        let mut live: HashSet<String> = all::<AssetVersion>(txn, VERSIONS)?
            .into_iter()
            .map(|v| v.digest)
            .collect();
        for m in all::<Manifest>(txn, MANIFESTS)? {
            live.extend(m.entries.into_iter().map(|e| e.digest));
        }
        self.reclaim(&live, None, Some(candidates))
    }

    fn reclaim(
        &mut self,
        live: &HashSet<String>,
        cutoff: Option<u64>,
        only: Option<&[Digest]>,
    ) -> Result<(usize, u64)> {
        let txn = self.txn();
        let mut doomed = Vec::new();
        {
            let blobs = txn.open_table(BLOBS)?;
            let consider: Vec<Digest> = match only {
                Some(c) => c.to_vec(),
                None => {
                    let mut v = Vec::new();
                    for item in blobs.iter()? {
                        let (k, _) = item?;
                        v.push(Digest(*k.value()));
                    }
                    v
                }
            };
            for d in consider {
                if live.contains(&d.to_hex()) {
                    continue;
                }
                if let Some(meta) = blob_meta(&blobs, &d)?
                    && cutoff.is_none_or(|c| meta.created <= c)
                {
                    doomed.push((d, meta));
                }
            }
        }
        let mut bytes = 0;
        for (d, meta) in &doomed {
            delete_chunks(txn, meta.id, meta.size)?;
            if let GzipState::Some { id, size } = meta.gzip {
                delete_chunks(txn, id, size)?;
            }
            txn.open_table(BLOBS)?.remove(&d.0)?;
            let owners: Vec<String> = {
                let table = txn.open_table(BLOB_OWNERS)?;
                let mut v = Vec::new();
                for item in table.range((&d.0, "")..)? {
                    let (k, _) = item?;
                    let (digest, account) = k.value();
                    if digest != &d.0 {
                        break;
                    }
                    v.push(account.to_string());
                }
                v
            };
            let mut table = txn.open_table(BLOB_OWNERS)?;
            for a in owners {
                table.remove((&d.0, a.as_str()))?;
            }
            bytes += meta.size;
        }
        Ok((doomed.len(), bytes))
    }

    /// Removes a build's row, routes and link.
    pub(crate) fn delete_build_rows(&mut self, b: &Build) -> Result<()> {
        let txn = self.txn();
        let paths: Vec<String> = {
            let routes = txn.open_table(ROUTES)?;
            let mut v = Vec::new();
            for item in routes.range((b.sid.as_str(), "")..)? {
                let (k, _) = item?;
                let (build, path) = k.value();
                if build != b.sid {
                    break;
                }
                v.push(path.to_string());
            }
            v
        };
        let mut routes = txn.open_table(ROUTES)?;
        for p in paths {
            routes.remove((b.sid.as_str(), p.as_str()))?;
        }
        txn.open_table(BUILDS)?.remove(b.sid.as_str())?;
        txn.open_table(CHILDREN)?
            .remove((b.service_sid.as_str(), b.sid.as_str()))?;
        Ok(())
    }
}
