//! The upload-only-what-is-missing extension: per-account blob ownership, manifests, and
//! one-transaction builds from a manifest.

use super::blob::blob_meta;
use super::ops::{Lookup, Tx, new_sid};
use super::records::{
    AssetVersion, Build, Deployment, Environment, Manifest, ManifestEntry, Service,
};
use super::tables::{BLOB_OWNERS, BLOBS, MANIFESTS, VERSIONS};
use super::{Result, StoreError, encode_json, get_json};
use crate::model::limits::{BuildEntry, validate_build};
use crate::model::{AssetPath, Digest, SidKind, Visibility, mime};
use redb::ReadableTable;

/// How long an unused manifest is kept.
pub const MANIFEST_TTL_SECS: u64 = 24 * 3600;

/// What a build from a manifest did.
#[derive(Debug, Clone)]
pub struct ManifestBuild {
    pub build: Build,
    pub deployment: Option<Deployment>,
    pub versions_created: usize,
    pub versions_reused: usize,
    /// True when the environment already ran exactly this set of versions (nothing changed).
    pub unchanged: bool,
}

/// Validates manifest entries: paths, visibilities, content types, sizes and build limits.
pub fn validate_entries(entries: &[ManifestEntry]) -> Result<()> {
    let mut parsed = Vec::with_capacity(entries.len());
    for e in entries {
        let path = AssetPath::parse(&e.path)?;
        let vis = Visibility::parse(&e.visibility)?;
        if Digest::from_hex(&e.digest).is_none() {
            return Err(StoreError::Invalid(format!(
                "{}: digest {:?} is not 64 hex digits (BLAKE3-256)",
                e.path, e.digest
            )));
        }
        mime::check_content_type(&e.content_type)
            .map_err(|err| StoreError::Invalid(format!("{}: {err}", e.path)))?;
        parsed.push((path, vis, e.size));
    }
    let build: Vec<BuildEntry<'_>> = parsed
        .iter()
        .map(|(p, v, s)| BuildEntry {
            path: p,
            visibility: *v,
            size: *s,
        })
        .collect();
    validate_build(&build)?;
    Ok(())
}

impl Tx<'_> {
    /// Records that `account_sid` holds the blob `digest` (after an upload).
    pub fn own_blob(&mut self, digest: &Digest, account_sid: &str) -> Result<()> {
        self.txn()
            .open_table(BLOB_OWNERS)?
            .insert((&digest.0, account_sid), ())?;
        Ok(())
    }

    /// Stores a validated manifest for `service`; returns it.
    pub fn save_manifest(
        &mut self,
        service: &Service,
        entries: Vec<ManifestEntry>,
    ) -> Result<Manifest> {
        validate_entries(&entries)?;
        let m = Manifest {
            sid: new_sid(SidKind::Manifest),
            account_sid: service.account_sid.clone(),
            service_sid: service.sid.clone(),
            entries,
            date_created: self.now(),
        };
        self.txn()
            .open_table(MANIFESTS)?
            .insert(m.sid.as_str(), encode_json(&m).as_slice())?;
        Ok(m)
    }

    /// Creates the versions (reusing an asset's identical latest version), the build and, when
    /// `env` is given, the deployment of a manifest, all in this transaction. Every blob must
    /// be stored and owned by the account. When `env` already runs exactly these versions,
    /// nothing is created and `unchanged` is true. A new build counts against
    /// `builds_per_hour` (see [`Tx::create_limited_build`]).
    pub fn build_manifest(
        &mut self,
        service: &Service,
        manifest_sid: &str,
        env: Option<&Environment>,
        builds_per_hour: u32,
    ) -> Result<ManifestBuild> {
        let manifest: Manifest = get_json(&self.txn().open_table(MANIFESTS)?, manifest_sid)?
            .filter(|m: &Manifest| m.service_sid == service.sid)
            .ok_or_else(|| {
                StoreError::NotFound(format!("Manifest {manifest_sid} was not found"))
            })?;
        let (mut created, mut reused) = (0, 0);
        let mut sids = Vec::with_capacity(manifest.entries.len());
        for e in &manifest.entries {
            let digest = Digest::from_hex(&e.digest)
                .ok_or_else(|| StoreError::Invalid(format!("{}: bad digest", e.path)))?;
            let owned = self
                .txn()
                .open_table(BLOB_OWNERS)?
                .get((&digest.0, service.account_sid.as_str()))?
                .is_some();
            let meta = blob_meta(&self.txn().open_table(BLOBS)?, &digest)?;
            match meta {
                Some(m) if owned => {
                    if m.size != e.size {
                        return Err(StoreError::Invalid(format!(
                            "{}: the manifest says {} bytes but its content has {}",
                            e.path, e.size, m.size
                        )));
                    }
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "{}: content {} has not been uploaded",
                        e.path, e.digest
                    )));
                }
            }
            let asset = self.asset_named(service, &e.path)?;
            if let Some(v) = self.identical_version(&asset.sid, e)? {
                reused += 1;
                sids.push(v.sid);
                continue;
            }
            let path = AssetPath::parse(&e.path)?;
            let vis = Visibility::parse(&e.visibility)?;
            let v = self.create_version(&asset, &path, vis, &e.content_type, &digest)?;
            created += 1;
            sids.push(v.sid);
        }
        self.txn().open_table(MANIFESTS)?.remove(manifest_sid)?;
        if let Some(env) = env
            && created == 0
            && let Some(active) = self.environment_build(&env.sid)?
        {
            let mut a = active.asset_versions.clone();
            let mut b = sids.clone();
            a.sort();
            b.sort();
            if a == b {
                return Ok(ManifestBuild {
                    build: active,
                    deployment: None,
                    versions_created: 0,
                    versions_reused: reused,
                    unchanged: true,
                });
            }
        }
        let mut build = self.create_limited_build(
            service,
            &sids,
            serde_json::json!([]),
            None,
            builds_per_hour,
        )?;
        self.build_now(&mut build)?;
        let deployment = match env {
            Some(env) => Some(self.deploy(env, &build.sid)?),
            None => None,
        };
        Ok(ManifestBuild {
            build,
            deployment,
            versions_created: created,
            versions_reused: reused,
            unchanged: false,
        })
    }

    /// The newest version of `asset_sid` when it matches the entry exactly.
    fn identical_version(
        &self,
        asset_sid: &str,
        e: &ManifestEntry,
    ) -> Result<Option<AssetVersion>> {
        let versions: Vec<AssetVersion> = self.children_of(asset_sid, "ZN", VERSIONS)?;
        // The latest by creation order (`date_created` alone ties within a second).
        Ok(versions
            .into_iter()
            .max_by(|a, b| a.order().cmp(&b.order()))
            .filter(|v| {
                v.path == e.path
                    && v.visibility.eq_ignore_ascii_case(&e.visibility)
                    && v.digest == e.digest
                    && v.content_type == e.content_type.trim()
            }))
    }

    fn environment_build(&self, env_sid: &str) -> Result<Option<Build>> {
        let env: Option<Environment> = get_json(
            &self.txn().open_table(super::tables::ENVIRONMENTS)?,
            env_sid,
        )?;
        match env.and_then(|e| e.build_sid) {
            Some(b) => get_json(&self.txn().open_table(super::tables::BUILDS)?, &b),
            None => Ok(None),
        }
    }
}

impl Lookup {
    /// The digests among `digests` that `account_sid` has not stored (dedup'd, in order).
    pub fn missing_for(&self, account_sid: &str, digests: &[Digest]) -> Result<Vec<Digest>> {
        let owners = self.txn().open_table(BLOB_OWNERS)?;
        let blobs = self.txn().open_table(BLOBS)?;
        let mut out: Vec<Digest> = Vec::new();
        for d in digests {
            if out.contains(d) {
                continue;
            }
            let have =
                owners.get((&d.0, account_sid))?.is_some() && blob_meta(&blobs, d)?.is_some();
            if !have {
                out.push(*d);
            }
        }
        Ok(out)
    }

    /// A manifest by SID.
    pub fn manifest(&self, sid: &str) -> Result<Option<Manifest>> {
        get_json(&self.txn().open_table(MANIFESTS)?, sid)
    }
}
