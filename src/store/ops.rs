//! Logical operations: writes inside one transaction ([`Tx`]) and reads from one snapshot
//! ([`Lookup`]).

use super::blob::{self, PutBlob, blob_meta};
use super::gzip::ensure_gzip;
use super::records::*;
use super::tables::*;
use super::{
    BlobReader, Result, StoreError, decode_json, decode_u64, encode_json, get_json, new_token, now,
    random_bytes,
};
use crate::model::limits::{BuildEntry, DEFAULT_RUNTIME, validate_build};
use crate::model::{AssetPath, Digest, Sid, SidKind, Visibility, domain, mime};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use std::io::Read;
use std::sync::Arc;

pub(crate) fn new_sid(kind: SidKind) -> String {
    Sid::from_bytes(kind, random_bytes::<16>()).to_string()
}

/// A write transaction's operations. Everything done through one `Tx` commits together.
pub struct Tx<'a> {
    txn: &'a WriteTransaction,
    now: u64,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(txn: &'a WriteTransaction) -> Tx<'a> {
        Tx { txn, now: now() }
    }

    pub(crate) fn txn(&self) -> &'a WriteTransaction {
        self.txn
    }

    /// The transaction's clock (seconds since the epoch), the same for every row it writes.
    pub fn now(&self) -> u64 {
        self.now
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        def: redb::TableDefinition<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        get_json(&self.txn.open_table(def)?, key)
    }

    fn put<T: serde::Serialize>(
        &self,
        def: redb::TableDefinition<&'static str, &'static [u8]>,
        key: &str,
        v: &T,
    ) -> Result<()> {
        self.txn
            .open_table(def)?
            .insert(key, encode_json(v).as_slice())?;
        Ok(())
    }

    fn link(&self, parent: &str, child: &str) -> Result<()> {
        self.txn.open_table(CHILDREN)?.insert((parent, child), ())?;
        Ok(())
    }

    fn next_seq(&self) -> Result<u64> {
        let mut meta = self.txn.open_table(META)?;
        let seq = match meta.get("next_seq")? {
            Some(v) => decode_u64(v.value())?,
            None => 1,
        };
        meta.insert("next_seq", (seq + 1).to_le_bytes().as_slice())?;
        Ok(seq)
    }

    /// Records a server setting (for example where `serve` last listened), kept in the store.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        let key = format!("setting:{key}");
        self.txn
            .open_table(META)?
            .insert(key.as_str(), value.as_bytes())?;
        Ok(())
    }

    /// The main account, created with a fresh auth token when there is none.
    /// The boolean is true when it was created now.
    pub fn ensure_main_account(&mut self) -> Result<(Account, bool)> {
        let existing = {
            let meta = self.txn.open_table(META)?;
            meta.get("main_account")?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned())
        };
        if let Some(sid) = existing {
            let acct = self
                .get(ACCOUNTS, &sid)?
                .ok_or_else(|| StoreError::Corrupt(format!("main account {sid} is missing")))?;
            return Ok((acct, false));
        }
        let acct = Account {
            sid: new_sid(SidKind::Account),
            friendly_name: "Main account".into(),
            auth_token: new_token(),
            secondary_token: None,
            status: "active".into(),
            owner_sid: None,
            date_created: self.now,
            date_updated: self.now,
        };
        self.put(ACCOUNTS, &acct.sid, &acct)?;
        self.txn
            .open_table(META)?
            .insert("main_account", acct.sid.as_bytes())?;
        Ok((acct, true))
    }

    /// Creates a service owned by `account_sid`. The unique name must follow the naming rule
    /// and be new for the account; the domain base gets 4 random digits, chosen so that no
    /// existing environment domain collides.
    pub fn create_service(
        &mut self,
        account_sid: &str,
        unique_name: &str,
        friendly_name: &str,
    ) -> Result<Service> {
        domain::check_service_name(unique_name)?;
        let lower = unique_name.to_ascii_lowercase();
        if self
            .txn
            .open_table(SERVICE_NAMES)?
            .get((account_sid, lower.as_str()))?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "Service with UniqueName {unique_name} already exists"
            )));
        }
        let hosts = self.txn.open_table(HOSTS)?;
        let mut base = None;
        for _ in 0..64 {
            let digits = u16::from_le_bytes(random_bytes::<2>()) % 10_000;
            let candidate = domain::domain_base(unique_name, digits);
            let prefix = format!("{candidate}-");
            let taken = hosts.get(candidate.as_str())?.is_some()
                || hosts
                    .range(prefix.as_str()..)?
                    .next()
                    .transpose()?
                    .is_some_and(|(k, _)| k.value().starts_with(&prefix));
            if !taken {
                base = Some(candidate);
                break;
            }
        }
        drop(hosts);
        let domain_base = base.ok_or_else(|| {
            StoreError::Conflict(format!("no free domain for service {unique_name}"))
        })?;
        let svc = Service {
            sid: new_sid(SidKind::Service),
            account_sid: account_sid.to_string(),
            unique_name: unique_name.to_string(),
            friendly_name: friendly_name.to_string(),
            domain_base,
            include_credentials: true,
            ui_editable: false,
            date_created: self.now,
            date_updated: self.now,
        };
        self.put(SERVICES, &svc.sid, &svc)?;
        self.txn
            .open_table(SERVICE_NAMES)?
            .insert((account_sid, lower.as_str()), svc.sid.as_str())?;
        self.link(account_sid, &svc.sid)?;
        Ok(svc)
    }

    /// A service of `account_sid` by SID or unique name.
    pub fn find_service(&self, account_sid: &str, sid_or_name: &str) -> Result<Option<Service>> {
        find_service(
            &self.txn.open_table(SERVICES)?,
            &self.txn.open_table(SERVICE_NAMES)?,
            account_sid,
            sid_or_name,
        )
    }

    /// Creates an environment with an optional domain suffix. Its label must be free.
    pub fn create_environment(
        &mut self,
        service: &Service,
        unique_name: &str,
        suffix: Option<&str>,
    ) -> Result<Environment> {
        if let Some(s) = suffix {
            domain::check_suffix(s)?;
        }
        crate::model::text::check_name("UniqueName", unique_name)?;
        if unique_name.is_empty() || unique_name.chars().count() > 100 {
            return Err(StoreError::Invalid(
                "environment UniqueName must be 1 to 100 characters".into(),
            ));
        }
        for env in self.environments(&service.sid)? {
            if env.unique_name == unique_name
                || env.domain_suffix.as_deref().map(str::to_ascii_lowercase)
                    == suffix.map(str::to_ascii_lowercase)
            {
                return Err(StoreError::Conflict(
                    "Environment with this UniqueName or DomainSuffix already exists.".into(),
                ));
            }
        }
        let label = domain::environment_label(&service.domain_base, suffix);
        if self.txn.open_table(HOSTS)?.get(label.as_str())?.is_some() {
            return Err(StoreError::Conflict(format!(
                "the domain {label} is already used by another environment"
            )));
        }
        let env = Environment {
            sid: new_sid(SidKind::Environment),
            account_sid: service.account_sid.clone(),
            service_sid: service.sid.clone(),
            unique_name: unique_name.to_string(),
            domain_suffix: suffix.map(str::to_string),
            label: label.clone(),
            build_sid: None,
            date_created: self.now,
            date_updated: self.now,
        };
        self.put(ENVIRONMENTS, &env.sid, &env)?;
        let host = HostEntry {
            environment_sid: env.sid.clone(),
            account_sid: env.account_sid.clone(),
            build_sid: None,
        };
        self.txn
            .open_table(HOSTS)?
            .insert(label.as_str(), host.encode().as_slice())?;
        self.link(&service.sid, &env.sid)?;
        Ok(env)
    }

    /// Rows of `table` linked as children of `parent` whose SIDs start with `prefix`.
    pub(crate) fn children_of<T: serde::de::DeserializeOwned>(
        &self,
        parent: &str,
        prefix: &str,
        table: redb::TableDefinition<&'static str, &'static [u8]>,
    ) -> Result<Vec<T>> {
        children(
            &self.txn.open_table(CHILDREN)?,
            &self.txn.open_table(table)?,
            parent,
            prefix,
        )
    }

    /// SIDs linked under `parent` whose SIDs start with `prefix`.
    pub(crate) fn child_sids(&self, parent: &str, prefix: &str) -> Result<Vec<String>> {
        child_sids(&self.txn.open_table(CHILDREN)?, parent, prefix)
    }

    /// The environments of a service.
    pub fn environments(&self, service_sid: &str) -> Result<Vec<Environment>> {
        children(
            &self.txn.open_table(CHILDREN)?,
            &self.txn.open_table(ENVIRONMENTS)?,
            service_sid,
            "ZE",
        )
    }

    /// The asset of `service` whose friendly name is `name`, created when missing.
    pub fn asset_named(&mut self, service: &Service, name: &str) -> Result<Asset> {
        let found = self
            .txn
            .open_table(ASSET_NAMES)?
            .get((service.sid.as_str(), name))?
            .map(|v| v.value().to_string());
        if let Some(sid) = found {
            return self
                .get(ASSETS, &sid)?
                .ok_or_else(|| StoreError::Corrupt(format!("asset {sid} is missing")));
        }
        let asset = Asset {
            sid: new_sid(SidKind::Asset),
            account_sid: service.account_sid.clone(),
            service_sid: service.sid.clone(),
            friendly_name: name.to_string(),
            date_created: self.now,
            date_updated: self.now,
        };
        self.put(ASSETS, &asset.sid, &asset)?;
        self.txn
            .open_table(ASSET_NAMES)?
            .insert((service.sid.as_str(), name), asset.sid.as_str())?;
        self.link(&service.sid, &asset.sid)?;
        Ok(asset)
    }

    /// True when the blob `digest` is stored.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(blob_meta(&self.txn.open_table(BLOBS)?, digest)?.is_some())
    }

    /// Stores bytes (see [`blob::put_blob`] for the contract).
    pub fn put_blob(
        &mut self,
        src: &mut dyn Read,
        expected: Option<Digest>,
        max: Option<(u64, &str)>,
    ) -> Result<PutBlob> {
        blob::put_blob(self.txn, src, expected, max)
    }

    /// Creates an immutable version of `asset` pointing at the stored blob `digest`, after
    /// checking the size limit of its visibility and the content type. Its gzip variant is
    /// computed when a build that holds it is built (see [`Tx::build_now`]).
    pub fn create_version(
        &mut self,
        asset: &Asset,
        path: &AssetPath,
        visibility: Visibility,
        content_type: &str,
        digest: &Digest,
    ) -> Result<AssetVersion> {
        mime::check_content_type(content_type)?;
        let meta = blob_meta(&self.txn.open_table(BLOBS)?, digest)?
            .ok_or_else(|| StoreError::NotFound(format!("content {digest} is not stored")))?;
        crate::model::limits::check_size(path, visibility, meta.size)?;
        let v = AssetVersion {
            sid: new_sid(SidKind::Version),
            account_sid: asset.account_sid.clone(),
            service_sid: asset.service_sid.clone(),
            asset_sid: asset.sid.clone(),
            path: path.as_str().to_string(),
            visibility: visibility.as_str().to_string(),
            content_type: content_type.trim().to_string(),
            digest: digest.to_hex(),
            size: meta.size,
            date_created: self.now,
            seq: self.next_seq()?,
        };
        self.put(VERSIONS, &v.sid, &v)?;
        self.link(&asset.sid, &v.sid)?;
        self.txn
            .open_table(BLOB_OWNERS)?
            .insert((&digest.0, v.account_sid.as_str()), ())?;
        Ok(v)
    }

    /// Creates a `building` build of `service` from version SIDs, validated against every
    /// limit (versions of this service only, at least one, counts and sizes), and computes its
    /// route table. The build step ([`Lookup::build_work`], [`Tx::compress`],
    /// [`Tx::finish_build`], or [`Tx::build_now`] in one transaction) completes it.
    pub fn create_build(
        &mut self,
        service: &Service,
        version_sids: &[String],
        dependencies: serde_json::Value,
        runtime: Option<String>,
    ) -> Result<Build> {
        let versions_table = self.txn.open_table(VERSIONS)?;
        let mut versions = Vec::with_capacity(version_sids.len());
        for sid in version_sids {
            let v: AssetVersion = get_json(&versions_table, sid)?
                .filter(|v: &AssetVersion| v.service_sid == service.sid)
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "Asset Version {sid} does not exist in service {}",
                        service.sid
                    ))
                })?;
            versions.push(v);
        }
        drop(versions_table);
        let parsed: Vec<(AssetPath, Visibility, u64)> = versions
            .iter()
            .map(|v| {
                Ok((
                    AssetPath::parse(&v.path)?,
                    Visibility::parse(&v.visibility)?,
                    v.size,
                ))
            })
            .collect::<Result<_, crate::model::RuleError>>()?;
        let entries: Vec<BuildEntry<'_>> = parsed
            .iter()
            .map(|(p, vis, size)| BuildEntry {
                path: p,
                visibility: *vis,
                size: *size,
            })
            .collect();
        validate_build(&entries)?;
        let build = Build {
            sid: new_sid(SidKind::Build),
            account_sid: service.account_sid.clone(),
            service_sid: service.sid.clone(),
            status: BUILDING.into(),
            asset_versions: version_sids.to_vec(),
            function_versions: Vec::new(),
            dependencies,
            runtime: Some(runtime.unwrap_or_else(|| DEFAULT_RUNTIME.to_string())),
            date_created: self.now,
            date_updated: self.now,
        };
        {
            let mut routes = self.txn.open_table(ROUTES)?;
            for v in &versions {
                let digest = Digest::from_hex(&v.digest)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad digest in {}", v.sid)))?;
                let route = Route {
                    visibility: Visibility::parse(&v.visibility)?,
                    size: v.size,
                    digest,
                    content_type: v.content_type.clone(),
                    version_sid: v.sid.clone(),
                };
                routes.insert(
                    (build.sid.as_str(), v.path.as_str()),
                    route.encode().as_slice(),
                )?;
            }
        }
        self.put(BUILDS, &build.sid, &build)?;
        self.link(&service.sid, &build.sid)?;
        Ok(build)
    }

    /// [`Tx::create_build`] for API clients: refused (`RateLimited`) when `per_hour` builds of
    /// the account were created through it in the last hour (0: no limit), else created and
    /// counted. Deleted builds still count; the offline import does not use this.
    pub fn create_limited_build(
        &mut self,
        service: &Service,
        version_sids: &[String],
        dependencies: serde_json::Value,
        runtime: Option<String>,
        per_hour: u32,
    ) -> Result<Build> {
        self.check_build_rate(&service.account_sid, per_hour)?;
        let build = self.create_build(service, version_sids, dependencies, runtime)?;
        self.txn.open_table(BUILD_LOG)?.insert(
            (service.account_sid.as_str(), self.now, build.sid.as_str()),
            (),
        )?;
        Ok(build)
    }

    /// Refuses a new build of `account_sid` when `per_hour` builds were counted in the last
    /// hour (`RateLimited`, with the seconds until enough of them leave the window); 0 means
    /// no limit. Forgets creations older than an hour.
    fn check_build_rate(&mut self, account_sid: &str, per_hour: u32) -> Result<()> {
        let since = self.now.saturating_sub(BUILD_WINDOW_SECS - 1);
        let mut log = self.txn.open_table(BUILD_LOG)?;
        let old: Vec<(u64, String)> = log
            .range((account_sid, 0u64, "")..(account_sid, since, ""))?
            .map(|r| r.map(|(k, _)| (k.value().1, k.value().2.to_string())))
            .collect::<std::result::Result<_, _>>()?;
        for (at, sid) in &old {
            log.remove((account_sid, *at, sid.as_str()))?;
        }
        if per_hour == 0 {
            return Ok(());
        }
        // Creation seconds in the window, oldest first (a clock set back makes some future:
        // they count as now).
        let times: Vec<u64> = log
            .range((account_sid, since, "")..=(account_sid, u64::MAX, "~"))?
            .map(|r| r.map(|(k, _)| k.value().1.min(self.now)))
            .collect::<std::result::Result<_, _>>()?;
        let per_hour = per_hour as usize;
        if times.len() < per_hour {
            return Ok(());
        }
        // Admitted once at most per_hour - 1 remain: when times[len - per_hour] leaves.
        let frees_at = times[times.len() - per_hour] + BUILD_WINDOW_SECS;
        Err(StoreError::RateLimited {
            message: format!(
                "Too many builds: this server allows {per_hour} builds per account per hour"
            ),
            retry_after_secs: frees_at.saturating_sub(self.now),
        })
    }

    /// Computes (once per blob) the gzip variants of `digests`; blobs already done are skipped.
    pub fn compress(&mut self, digests: &[Digest]) -> Result<()> {
        for d in digests {
            ensure_gzip(self.txn, d)?;
        }
        Ok(())
    }

    /// Ends the build step of `build_sid`: `completed` when `ok`, else `failed`. A build that is
    /// no longer `building` is left as it is. Returns its status; `None` when it was deleted.
    pub fn finish_build(&mut self, build_sid: &str, ok: bool) -> Result<Option<String>> {
        let Some(mut build) = self.get::<Build>(BUILDS, build_sid)? else {
            return Ok(None);
        };
        if build.status == BUILDING {
            build.status = if ok { COMPLETED } else { FAILED }.into();
            build.date_updated = self.now;
            self.put(BUILDS, build_sid, &build)?;
        }
        Ok(Some(build.status))
    }

    /// The whole build step inside this transaction (offline import, the manifest call):
    /// gzip variants, then `completed`.
    pub fn build_now(&mut self, build: &mut Build) -> Result<()> {
        let work = build_work(
            &self.txn.open_table(VERSIONS)?,
            &self.txn.open_table(BLOBS)?,
            build,
        )?;
        let digests: Vec<Digest> = work.into_iter().map(|(d, _)| d).collect();
        self.compress(&digests)?;
        build.status = self
            .finish_build(&build.sid, true)?
            .ok_or_else(|| StoreError::NotFound(format!("Build {} not found", build.sid)))?;
        build.date_updated = self.now;
        Ok(())
    }

    /// Makes `build_sid` the active build of `env` (an atomic switch). Refuses a build that is
    /// already active (409 in the API) or that is not a completed build of the same service.
    pub fn deploy(&mut self, env: &Environment, build_sid: &str) -> Result<Deployment> {
        let build: Build = self
            .get(BUILDS, build_sid)?
            .filter(|b: &Build| b.service_sid == env.service_sid)
            .ok_or_else(|| {
                StoreError::NotFound(format!("Build {build_sid} does not exist in this service"))
            })?;
        match build.status.as_str() {
            COMPLETED => {}
            BUILDING => {
                return Err(StoreError::Invalid(format!(
                    "Build {build_sid} is still building: wait until its Status is completed, \
                     then deploy it"
                )));
            }
            other => {
                return Err(StoreError::Invalid(format!(
                    "Build {build_sid} is {other}: only completed builds can be deployed"
                )));
            }
        }
        let mut env: Environment = self
            .get(ENVIRONMENTS, &env.sid)?
            .ok_or_else(|| StoreError::NotFound(format!("Environment {} not found", env.sid)))?;
        if env.build_sid.as_deref() == Some(build_sid) {
            return Err(StoreError::Conflict(format!(
                "Environment already has requested deployment: build {build_sid} is active on {}",
                env.unique_name
            )));
        }
        let dep = Deployment {
            sid: new_sid(SidKind::Deployment),
            account_sid: env.account_sid.clone(),
            service_sid: env.service_sid.clone(),
            environment_sid: env.sid.clone(),
            build_sid: build_sid.to_string(),
            date_created: self.now,
            date_updated: self.now,
        };
        env.build_sid = Some(build_sid.to_string());
        env.date_updated = self.now;
        self.put(ENVIRONMENTS, &env.sid, &env)?;
        self.put(DEPLOYMENTS, &dep.sid, &dep)?;
        let host = HostEntry {
            environment_sid: env.sid.clone(),
            account_sid: env.account_sid.clone(),
            build_sid: Some(build_sid.to_string()),
        };
        self.txn
            .open_table(HOSTS)?
            .insert(env.label.as_str(), host.encode().as_slice())?;
        let seq = self.next_seq()?;
        self.txn
            .open_table(DEPLOY_LOG)?
            .insert((env.sid.as_str(), seq), dep.sid.as_str())?;
        Ok(dep)
    }
}

fn find_service<S, N>(
    services: &S,
    names: &N,
    account_sid: &str,
    sid_or_name: &str,
) -> Result<Option<Service>>
where
    S: ReadableTable<&'static str, &'static [u8]>,
    N: for<'k> ReadableTable<(&'static str, &'static str), &'static str>,
{
    let sid = if Sid::is(SidKind::Service, sid_or_name) {
        sid_or_name.to_ascii_lowercase().replacen("zs", "ZS", 1)
    } else {
        let lower = sid_or_name.to_ascii_lowercase();
        match names.get((account_sid, lower.as_str()))? {
            Some(v) => v.value().to_string(),
            None => return Ok(None),
        }
    };
    Ok(get_json::<Service, _>(services, &sid)?.filter(|s| s.account_sid == account_sid))
}

/// SIDs linked under `parent` whose SIDs start with `prefix`, in SID order.
pub(crate) fn child_sids<C>(links: &C, parent: &str, prefix: &str) -> Result<Vec<String>>
where
    C: ReadableTable<(&'static str, &'static str), ()>,
{
    let mut out = Vec::new();
    for item in links.range((parent, prefix)..)? {
        let (k, _) = item?;
        let (p, child) = k.value();
        if p != parent || !child.starts_with(prefix) {
            break;
        }
        out.push(child.to_string());
    }
    Ok(out)
}

/// The rows of `rows` linked under `parent` whose SIDs start with `prefix`.
fn children<T: serde::de::DeserializeOwned, C, R>(
    links: &C,
    rows: &R,
    parent: &str,
    prefix: &str,
) -> Result<Vec<T>>
where
    C: ReadableTable<(&'static str, &'static str), ()>,
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let mut out = Vec::new();
    for child in child_sids(links, parent, prefix)? {
        if let Some(v) = rows.get(child.as_str())? {
            out.push(decode_json(v.value())?);
        }
    }
    Ok(out)
}

/// The window of the builds-per-hour limit.
const BUILD_WINDOW_SECS: u64 = 3600;

/// Build statuses.
pub const BUILDING: &str = "building";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";

/// Blobs (digest, size) of `build`'s public and protected compressible versions whose gzip
/// state is unknown, each once; an error naming the path when a version or its content is
/// missing.
fn build_work(
    versions: &impl ReadableTable<&'static str, &'static [u8]>,
    blobs: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    build: &Build,
) -> Result<Vec<(Digest, u64)>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for sid in &build.asset_versions {
        let v: AssetVersion = get_json(versions, sid)?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "Asset Version {sid} of build {} is gone",
                build.sid
            ))
        })?;
        let digest = Digest::from_hex(&v.digest)
            .ok_or_else(|| StoreError::Corrupt(format!("bad digest in {}", v.sid)))?;
        let meta = blob_meta(blobs, &digest)?.ok_or_else(|| {
            StoreError::NotFound(format!("{}: content {digest} is not stored", v.path))
        })?;
        if v.visibility != Visibility::Private.as_str()
            && mime::is_compressible(&v.content_type)
            && meta.gzip == GzipState::Unknown
            && seen.insert(digest)
        {
            out.push((digest, meta.size));
        }
    }
    Ok(out)
}

/// See [`Lookup::stats`].
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub builds_building: u64,
    pub builds_completed: u64,
    pub builds_failed: u64,
}

/// What an asset request resolved to.
#[derive(Debug, Clone)]
pub struct Hit {
    pub account_sid: String,
    pub environment_sid: String,
    pub build_sid: String,
    /// The path that matched (after the root rule).
    pub path: String,
    pub route: Route,
    /// The route's strong ETag, `"{digest hex}"` (made once, kept with the cached hit).
    pub etag: String,
}

/// A read snapshot: everything read through one `Lookup` is consistent.
pub struct Lookup {
    txn: ReadTransaction,
    /// The hot-path cache and the generation this snapshot may use it at (see `hot.rs`).
    pub(crate) hot: Option<(std::sync::Arc<super::hot::Hot>, u64)>,
}

impl Lookup {
    pub(crate) fn new(txn: ReadTransaction) -> Lookup {
        Lookup { txn, hot: None }
    }

    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    /// Rows of `table` linked as children of `parent` whose SIDs start with `prefix`.
    pub(crate) fn children_of<T: serde::de::DeserializeOwned>(
        &self,
        parent: &str,
        prefix: &str,
        table: redb::TableDefinition<&'static str, &'static [u8]>,
    ) -> Result<Vec<T>> {
        children(
            &self.txn.open_table(CHILDREN)?,
            &self.txn.open_table(table)?,
            parent,
            prefix,
        )
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        def: redb::TableDefinition<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        get_json(&self.txn.open_table(def)?, key)
    }

    pub fn main_account(&self) -> Result<Option<Account>> {
        let sid = match self.txn.open_table(META)?.get("main_account")? {
            Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
            None => return Ok(None),
        };
        self.account(&sid)
    }

    /// A setting recorded with [`Tx::set_setting`].
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        let key = format!("setting:{key}");
        Ok(self
            .txn
            .open_table(META)?
            .get(key.as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub fn account(&self, sid: &str) -> Result<Option<Account>> {
        let Some((hot, g)) = &self.hot else {
            return self.get(ACCOUNTS, sid);
        };
        if let Some(account) = hot.account(*g, sid) {
            return Ok(account);
        }
        let account: Option<Account> = self.get(ACCOUNTS, sid)?;
        hot.put_account(*g, sid, account.clone());
        Ok(account)
    }

    pub fn find_service(&self, account_sid: &str, sid_or_name: &str) -> Result<Option<Service>> {
        find_service(
            &self.txn.open_table(SERVICES)?,
            &self.txn.open_table(SERVICE_NAMES)?,
            account_sid,
            sid_or_name,
        )
    }

    pub fn environments(&self, service_sid: &str) -> Result<Vec<Environment>> {
        children(
            &self.txn.open_table(CHILDREN)?,
            &self.txn.open_table(ENVIRONMENTS)?,
            service_sid,
            "ZE",
        )
    }

    pub fn build(&self, sid: &str) -> Result<Option<Build>> {
        self.get(BUILDS, sid)
    }

    /// An asset by SID (any account: callers check ownership).
    pub fn asset(&self, sid: &str) -> Result<Option<Asset>> {
        self.get(ASSETS, sid)
    }

    /// An environment by SID (any account: callers check ownership).
    pub fn environment(&self, sid: &str) -> Result<Option<Environment>> {
        self.get(ENVIRONMENTS, sid)
    }

    pub fn version(&self, sid: &str) -> Result<Option<AssetVersion>> {
        self.get(VERSIONS, sid)
    }

    pub fn builds(&self, service_sid: &str) -> Result<Vec<Build>> {
        children(
            &self.txn.open_table(CHILDREN)?,
            &self.txn.open_table(BUILDS)?,
            service_sid,
            "ZB",
        )
    }

    /// The deployments of an environment, oldest first.
    pub fn deployments(&self, environment_sid: &str) -> Result<Vec<Deployment>> {
        let log = self.txn.open_table(DEPLOY_LOG)?;
        let deps = self.txn.open_table(DEPLOYMENTS)?;
        let mut out = Vec::new();
        for item in log.range((environment_sid, 0u64)..=(environment_sid, u64::MAX))? {
            let (_, sid) = item?;
            if let Some(d) = get_json(&deps, sid.value())? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Resolves an asset request: host label → environment → active build → route for the
    /// first of `paths` that exists. The root rule: when `/` is asked and the build has no `/`
    /// route, `/assets/index.html` answers. `None` when the host, build or path is unknown, or
    /// the owning account is suspended or closed.
    pub fn resolve(&self, label: &str, paths: &[&str]) -> Result<Option<Arc<Hit>>> {
        let Some((hot, g)) = &self.hot else {
            return Ok(self.resolve_uncached(label, paths)?.map(Arc::new));
        };
        let mut key = String::with_capacity(label.len() + 64);
        key.push_str(label);
        for p in paths {
            key.push('\0');
            key.push_str(p);
        }
        if let Some(hit) = hot.route(*g, &key) {
            return Ok(hit);
        }
        let hit = self.resolve_uncached(label, paths)?.map(Arc::new);
        hot.put_route(*g, key, hit.clone());
        Ok(hit)
    }

    fn resolve_uncached(&self, label: &str, paths: &[&str]) -> Result<Option<Hit>> {
        let host = match self.txn.open_table(HOSTS)?.get(label)? {
            Some(v) => HostEntry::decode(v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("bad host entry for {label}")))?,
            None => return Ok(None),
        };
        let Some(build_sid) = host.build_sid else {
            return Ok(None);
        };
        // SECURITY: a suspended or closed account serves nothing, whatever the visibility.
        if self
            .txn
            .open_table(INACTIVE_ACCOUNTS)?
            .get(host.account_sid.as_str())?
            .is_some()
        {
            return Ok(None);
        }
        let routes = self.txn.open_table(ROUTES)?;
        let mut candidates: Vec<&str> = paths.to_vec();
        if paths.contains(&"/") {
            candidates.push("/assets/index.html");
        }
        for path in candidates {
            if let Some(v) = routes.get((build_sid.as_str(), path))? {
                let route = Route::decode(v.value())
                    .ok_or_else(|| StoreError::Corrupt(format!("bad route for {path}")))?;
                return Ok(Some(Hit {
                    etag: format!("\"{}\"", route.digest.to_hex()),
                    account_sid: host.account_sid,
                    environment_sid: host.environment_sid,
                    build_sid,
                    path: path.to_string(),
                    route,
                }));
            }
        }
        Ok(None)
    }

    /// Every environment host label, with whether it has an active build.
    pub fn labels(&self) -> Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for item in self.txn.open_table(HOSTS)?.iter()? {
            let (k, v) = item?;
            let deployed = HostEntry::decode(v.value()).is_some_and(|h| h.build_sid.is_some());
            out.push((k.value().to_string(), deployed));
        }
        Ok(out)
    }

    /// The environment with host label `label`, if any.
    pub fn environment_by_label(&self, label: &str) -> Result<Option<Environment>> {
        let host = match self.txn.open_table(HOSTS)?.get(label)? {
            Some(v) => HostEntry::decode(v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("bad host entry for {label}")))?,
            None => return Ok(None),
        };
        self.get(ENVIRONMENTS, &host.environment_sid)
    }

    /// Opens bytes `start..end` of blob `digest` from this snapshot; with `gzip`, of its gzip
    /// variant instead (`None` when it has none). Returns the reader and the full length of
    /// the chosen representation.
    pub fn open_blob(
        &self,
        digest: &Digest,
        gzip: bool,
        range: Option<(u64, u64)>,
    ) -> Result<Option<(BlobReader, u64)>> {
        let meta = match &self.hot {
            Some((hot, g)) => match hot.blob(*g, digest) {
                Some(meta) => meta,
                None => {
                    let meta = blob_meta(&self.txn.open_table(BLOBS)?, digest)?;
                    hot.put_blob(*g, digest, meta);
                    meta
                }
            },
            None => blob_meta(&self.txn.open_table(BLOBS)?, digest)?,
        };
        let Some(meta) = meta else {
            return Ok(None);
        };
        let (id, size) = if gzip {
            match meta.gzip {
                GzipState::Some { id, size } => (id, size),
                _ => return Ok(None),
            }
        } else {
            (meta.id, meta.size)
        };
        let (start, end) = range.unwrap_or((0, size));
        let end = end.min(size);
        if let Some((hot, _)) = &self.hot
            && size <= super::hot::BODY_MAX
        {
            let body = match hot.body(id) {
                Some(body) => body,
                None => {
                    let chunks = self.txn.open_table(CHUNKS)?;
                    let mut all = Vec::with_capacity(size as usize);
                    BlobReader::new(chunks, id, 0, size).read_to_end(&mut all)?;
                    if all.len() as u64 != size {
                        return Err(StoreError::Corrupt(format!("blob {digest} is short")));
                    }
                    let body: Arc<[u8]> = all.into();
                    hot.put_body(id, body.clone());
                    body
                }
            };
            return Ok(Some((BlobReader::memory(body, start, end), size)));
        }
        let chunks = self.txn.open_table(CHUNKS)?;
        Ok(Some((BlobReader::new(chunks, id, start, end), size)))
    }

    /// The SIDs of builds still `building` (left by a restart, or not yet picked up).
    /// Figures for the metrics page: blobs and their bytes (gzip variants included), and
    /// builds by status (`building`, `completed`, `failed`). Reads every blob and build row:
    /// meant for a scrape every few seconds, not for the hot path.
    pub fn stats(&self) -> Result<StoreStats> {
        let mut st = StoreStats::default();
        for item in self.txn.open_table(BLOBS)?.iter()? {
            let (_, v) = item?;
            if let Some(meta) = BlobMeta::decode(v.value()) {
                st.blobs += 1;
                st.blob_bytes += meta.size;
                if let GzipState::Some { size, .. } = meta.gzip {
                    st.blob_bytes += size;
                }
            }
        }
        for item in self.txn.open_table(BUILDS)?.iter()? {
            let (_, v) = item?;
            let b: Build = decode_json(v.value())?;
            match b.status.as_str() {
                BUILDING => st.builds_building += 1,
                "completed" => st.builds_completed += 1,
                _ => st.builds_failed += 1,
            }
        }
        Ok(st)
    }

    pub fn unfinished_builds(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.txn.open_table(BUILDS)?.iter()? {
            let (k, v) = item?;
            let b: Build = decode_json(v.value())?;
            if b.status == BUILDING {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// What the build step of `build_sid` has to do: the blobs (digest, size) whose gzip
    /// variant is not yet computed. `None` when the build is gone or no longer `building`; an
    /// error when a version or its content is missing (the build then fails).
    pub fn build_work(&self, build_sid: &str) -> Result<Option<Vec<(Digest, u64)>>> {
        match self.build(build_sid)? {
            Some(b) if b.status == BUILDING => build_work(
                &self.txn.open_table(VERSIONS)?,
                &self.txn.open_table(BLOBS)?,
                &b,
            )
            .map(Some),
            _ => Ok(None),
        }
    }

    /// The gzip length of blob `digest`, when it has a gzip variant.
    pub fn gzip_len(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(match blob_meta(&self.txn.open_table(BLOBS)?, digest)? {
            Some(BlobMeta {
                gzip: GzipState::Some { size, .. },
                ..
            }) => Some(size),
            _ => None,
        })
    }

    /// Every stored blob's digest and size (for verification and tests).
    pub fn blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for item in self.txn.open_table(BLOBS)?.iter()? {
            let (k, v) = item?;
            let meta = BlobMeta::decode(v.value())
                .ok_or_else(|| StoreError::Corrupt("bad blob record".into()))?;
            out.push((Digest(*k.value()), meta.size));
        }
        Ok(out)
    }
}
