//! The Serverless resources behind the management API: listing, updating and deleting
//! services, environments, variables, assets and builds.
//!
//! Every write here is one logical operation inside the caller's [`Tx`], so a deletion removes
//! all of its rows or none. A deletion that removes versions also reclaims, in the same
//! transaction, the content blobs nothing references any more
//! ([`Tx::reclaim_unreferenced_blobs`]); bytes still used by another version stay.

use super::ops::{Lookup, Tx, new_sid};
use super::records::*;
use super::tables::*;
use super::{Result, StoreError, decode_json, encode_json, get_json};
use crate::model::{Digest, SidKind, text};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::collections::HashSet;

/// Most services one account may own (Twilio's live error text says 50).
const MAX_SERVICES: usize = 50;
/// Most environments one service may have.
const MAX_ENVIRONMENTS: usize = 25;
/// Longest service or asset friendly name, in characters.
const MAX_FRIENDLY_NAME: usize = 255;
/// Longest variable key, in characters.
const MAX_VARIABLE_KEY: usize = 128;
/// Longest variable value, in bytes.
const MAX_VARIABLE_VALUE: usize = 450;

type Rows = TableDefinition<'static, &'static str, &'static [u8]>;

fn load<T: serde::de::DeserializeOwned>(
    txn: &WriteTransaction,
    def: Rows,
    key: &str,
) -> Result<Option<T>> {
    get_json(&txn.open_table(def)?, key)
}

fn store<T: serde::Serialize>(txn: &WriteTransaction, def: Rows, key: &str, v: &T) -> Result<()> {
    txn.open_table(def)?
        .insert(key, encode_json(v).as_slice())?;
    Ok(())
}

fn unlink(txn: &WriteTransaction, parent: &str, child: &str) -> Result<()> {
    txn.open_table(CHILDREN)?.remove((parent, child))?;
    Ok(())
}

fn children_in_tx(txn: &WriteTransaction, parent: &str, prefix: &str) -> Result<Vec<String>> {
    super::ops::child_sids(&txn.open_table(CHILDREN)?, parent, prefix)
}

fn check_friendly_name(what: &str, name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_FRIENDLY_NAME {
        return Err(StoreError::Invalid(format!(
            "{what} FriendlyName must be 1 to {MAX_FRIENDLY_NAME} characters, not {n}"
        )));
    }
    // SECURITY: names are printed by the CLI and shown in the console; see `model::text`.
    text::check_name(&format!("{what} FriendlyName"), name)?;
    Ok(())
}

fn check_variable(key: &str, value: &str) -> Result<()> {
    text::check_name("Variable Key", key)?;
    text::check_value("Variable Value", value)?;
    let n = key.chars().count();
    if n == 0 || n > MAX_VARIABLE_KEY {
        return Err(StoreError::Invalid(format!(
            "Variable Key must be 1 to {MAX_VARIABLE_KEY} characters, not {n}"
        )));
    }
    if value.len() > MAX_VARIABLE_VALUE {
        return Err(StoreError::Invalid(format!(
            "Variable Value of {key} is {} bytes; values are limited to {MAX_VARIABLE_VALUE} bytes",
            value.len()
        )));
    }
    Ok(())
}

impl Tx<'_> {
    /// Creates a service through the API: the account may own at most 50 services (400/20001
    /// `Services are limited to less than or equal to 50`), the friendly name is 1-255
    /// characters, and the unique name follows [`Tx::create_service`]'s rules.
    pub fn register_service(
        &mut self,
        account_sid: &str,
        unique_name: &str,
        friendly_name: &str,
        include_credentials: bool,
        ui_editable: bool,
    ) -> Result<Service> {
        check_friendly_name("Service", friendly_name)?;
        if children_in_tx(self.txn(), account_sid, "ZS")?.len() >= MAX_SERVICES {
            return Err(StoreError::Invalid(format!(
                "Services are limited to less than or equal to {MAX_SERVICES}"
            )));
        }
        let mut svc = self.create_service(account_sid, unique_name, friendly_name)?;
        if svc.include_credentials != include_credentials || svc.ui_editable != ui_editable {
            svc.include_credentials = include_credentials;
            svc.ui_editable = ui_editable;
            store(self.txn(), SERVICES, &svc.sid, &svc)?;
        }
        Ok(svc)
    }

    /// Changes a service's friendly name and flags; `None` keeps a value. The unique name
    /// never changes (it is part of the service's domains).
    pub fn update_service(
        &mut self,
        service: &Service,
        friendly_name: Option<&str>,
        include_credentials: Option<bool>,
        ui_editable: Option<bool>,
    ) -> Result<Service> {
        let mut svc: Service = load(self.txn(), SERVICES, &service.sid)?.ok_or_else(|| {
            StoreError::NotFound(format!("Service {} was not found", service.sid))
        })?;
        if let Some(name) = friendly_name {
            check_friendly_name("Service", name)?;
            svc.friendly_name = name.to_string();
        }
        if let Some(b) = include_credentials {
            svc.include_credentials = b;
        }
        if let Some(b) = ui_editable {
            svc.ui_editable = b;
        }
        svc.date_updated = self.now();
        store(self.txn(), SERVICES, &svc.sid, &svc)?;
        Ok(svc)
    }

    /// Deletes a service and everything under it: environments (with their domains,
    /// deployment history and variables), assets and all their versions, builds and their
    /// route tables, and the unique-name index entry; then reclaims the blobs only it used.
    pub fn delete_service(&mut self, service: &Service) -> Result<()> {
        let txn = self.txn();
        for env in children_in_tx(txn, &service.sid, "ZE")? {
            delete_environment_rows(txn, &service.sid, &env)?;
        }
        let mut versions: HashSet<String> = HashSet::new();
        for asset_sid in children_in_tx(txn, &service.sid, "ZH")? {
            for v in children_in_tx(txn, &asset_sid, "ZN")? {
                unlink(txn, &asset_sid, &v)?;
                versions.insert(v);
            }
            if let Some(a) = load::<Asset>(txn, ASSETS, &asset_sid)? {
                remove_name_index(txn, &a)?;
            }
            txn.open_table(ASSETS)?.remove(asset_sid.as_str())?;
            unlink(txn, &service.sid, &asset_sid)?;
        }
        for build_sid in children_in_tx(txn, &service.sid, "ZB")? {
            if let Some(b) = load::<Build>(txn, BUILDS, &build_sid)? {
                // Versions of assets deleted earlier live on only through their builds.
                versions.extend(b.asset_versions);
            }
            delete_build_rows(txn, &service.sid, &build_sid)?;
        }
        let freed = remove_versions(txn, versions.iter())?;
        let lower = service.unique_name.to_ascii_lowercase();
        let mut names = txn.open_table(SERVICE_NAMES)?;
        let indexed = names
            .get((service.account_sid.as_str(), lower.as_str()))?
            .is_some_and(|v| v.value() == service.sid);
        if indexed {
            names.remove((service.account_sid.as_str(), lower.as_str()))?;
        }
        drop(names);
        txn.open_table(SERVICES)?.remove(service.sid.as_str())?;
        unlink(txn, &service.account_sid, &service.sid)?;
        self.reclaim_unreferenced_blobs(&freed)?;
        Ok(())
    }

    /// Creates an environment through the API: at most 25 per service, then the rules of
    /// [`Tx::create_environment`] (unique name and suffix unique in the service, 409 otherwise).
    pub fn register_environment(
        &mut self,
        service: &Service,
        unique_name: &str,
        suffix: Option<&str>,
    ) -> Result<Environment> {
        if children_in_tx(self.txn(), &service.sid, "ZE")?.len() >= MAX_ENVIRONMENTS {
            return Err(StoreError::Invalid(format!(
                "Environments are limited to less than or equal to {MAX_ENVIRONMENTS} per Service"
            )));
        }
        self.create_environment(service, unique_name, suffix)
    }

    /// The environment `sid` when it belongs to `service_sid`.
    pub fn service_environment(&self, service_sid: &str, sid: &str) -> Result<Option<Environment>> {
        Ok(load::<Environment>(self.txn(), ENVIRONMENTS, sid)?
            .filter(|e| e.service_sid == service_sid))
    }

    /// The asset `sid` when it belongs to `service_sid`.
    pub fn service_asset(&self, service_sid: &str, sid: &str) -> Result<Option<Asset>> {
        Ok(load::<Asset>(self.txn(), ASSETS, sid)?.filter(|a| a.service_sid == service_sid))
    }

    /// The build `sid` when it belongs to `service_sid`.
    pub fn service_build(&self, service_sid: &str, sid: &str) -> Result<Option<Build>> {
        Ok(load::<Build>(self.txn(), BUILDS, sid)?.filter(|b| b.service_sid == service_sid))
    }

    /// Deletes an environment: its domain stops resolving at once, and its deployment history
    /// and variables go with it. Builds stay (they belong to the service).
    pub fn delete_environment(&mut self, env: &Environment) -> Result<()> {
        delete_environment_rows(self.txn(), &env.service_sid, &env.sid)
    }

    /// Creates a variable; the key is 1-128 characters and unique in the environment (409),
    /// the value at most 450 bytes.
    pub fn create_variable(
        &mut self,
        env: &Environment,
        key: &str,
        value: &str,
    ) -> Result<Variable> {
        check_variable(key, value)?;
        self.check_key_free(&env.sid, key, None)?;
        let now = self.now();
        let var = Variable {
            sid: new_sid(SidKind::Variable),
            account_sid: env.account_sid.clone(),
            service_sid: env.service_sid.clone(),
            environment_sid: env.sid.clone(),
            key: key.to_string(),
            value: value.to_string(),
            date_created: now,
            date_updated: now,
        };
        store(self.txn(), VARIABLES, &var.sid, &var)?;
        self.txn()
            .open_table(CHILDREN)?
            .insert((env.sid.as_str(), var.sid.as_str()), ())?;
        Ok(var)
    }

    fn check_key_free(&self, env_sid: &str, key: &str, except: Option<&str>) -> Result<()> {
        for sid in children_in_tx(self.txn(), env_sid, "ZV")? {
            if Some(sid.as_str()) == except {
                continue;
            }
            if let Some(v) = load::<Variable>(self.txn(), VARIABLES, &sid)?
                && v.key == key
            {
                return Err(StoreError::Conflict(format!(
                    "Variable with Key {key} already exists in environment {env_sid}"
                )));
            }
        }
        Ok(())
    }

    /// The variable `sid` when it belongs to `env_sid`.
    pub fn environment_variable(&self, env_sid: &str, sid: &str) -> Result<Option<Variable>> {
        Ok(load::<Variable>(self.txn(), VARIABLES, sid)?.filter(|v| v.environment_sid == env_sid))
    }

    /// Changes a variable's key and/or value, under the same rules as creation.
    pub fn update_variable(
        &mut self,
        var: &Variable,
        key: Option<&str>,
        value: Option<&str>,
    ) -> Result<Variable> {
        let mut v = var.clone();
        if let Some(k) = key {
            v.key = k.to_string();
        }
        if let Some(val) = value {
            v.value = val.to_string();
        }
        check_variable(&v.key, &v.value)?;
        if v.key != var.key {
            self.check_key_free(&v.environment_sid, &v.key, Some(&v.sid))?;
        }
        v.date_updated = self.now();
        store(self.txn(), VARIABLES, &v.sid, &v)?;
        Ok(v)
    }

    /// Deletes a variable.
    pub fn delete_variable(&mut self, var: &Variable) -> Result<()> {
        self.txn().open_table(VARIABLES)?.remove(var.sid.as_str())?;
        unlink(self.txn(), &var.environment_sid, &var.sid)
    }

    /// Creates an asset (a named container for versions). Friendly names are 1-255
    /// characters and unique in the service (409), because clients find assets by name.
    pub fn create_asset(&mut self, service: &Service, friendly_name: &str) -> Result<Asset> {
        check_friendly_name("Asset", friendly_name)?;
        self.check_asset_name_free(&service.sid, friendly_name)?;
        self.asset_named(service, friendly_name)
    }

    fn check_asset_name_free(&self, service_sid: &str, name: &str) -> Result<()> {
        if self
            .txn()
            .open_table(ASSET_NAMES)?
            .get((service_sid, name))?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "Asset with FriendlyName {name} already exists in service {service_sid}"
            )));
        }
        Ok(())
    }

    /// Renames an asset (same rules as creation); its versions keep their paths.
    pub fn update_asset(&mut self, asset: &Asset, friendly_name: &str) -> Result<Asset> {
        check_friendly_name("Asset", friendly_name)?;
        let mut a = asset.clone();
        if a.friendly_name != friendly_name {
            self.check_asset_name_free(&a.service_sid, friendly_name)?;
            remove_name_index(self.txn(), &a)?;
            a.friendly_name = friendly_name.to_string();
            self.txn()
                .open_table(ASSET_NAMES)?
                .insert((a.service_sid.as_str(), friendly_name), a.sid.as_str())?;
        }
        a.date_updated = self.now();
        store(self.txn(), ASSETS, &a.sid, &a)?;
        Ok(a)
    }

    /// Deletes an asset. Refused (409) while one of its versions is in the active build of an
    /// environment. Versions that are in some (inactive) build stay as that build's history;
    /// the others are removed with the asset.
    pub fn delete_asset(&mut self, asset: &Asset) -> Result<()> {
        let txn = self.txn();
        let versions = children_in_tx(txn, &asset.sid, "ZN")?;
        let mine: HashSet<&str> = versions.iter().map(String::as_str).collect();
        for env in self.environments(&asset.service_sid)? {
            let Some(build_sid) = &env.build_sid else {
                continue;
            };
            let Some(build) = load::<Build>(txn, BUILDS, build_sid)? else {
                continue;
            };
            if let Some(v) = build
                .asset_versions
                .iter()
                .find(|v| mine.contains(v.as_str()))
            {
                return Err(StoreError::Conflict(format!(
                    "Asset {} ({}) cannot be deleted: its version {v} is in the active build of environment {} ({}); deploy a build without it first",
                    asset.sid, asset.friendly_name, env.unique_name, env.sid
                )));
            }
        }
        let in_builds = versions_in_builds(txn, &asset.service_sid, None)?;
        for v in &versions {
            unlink(txn, &asset.sid, v)?;
        }
        let freed = remove_versions(txn, versions.iter().filter(|v| !in_builds.contains(*v)))?;
        remove_name_index(txn, asset)?;
        txn.open_table(ASSETS)?.remove(asset.sid.as_str())?;
        unlink(txn, &asset.service_sid, &asset.sid)?;
        self.reclaim_unreferenced_blobs(&freed)?;
        Ok(())
    }

    /// Deletes a build and its route table. Refused (409) while it is active on an
    /// environment. Versions whose asset was deleted and that no other build holds go too.
    pub fn delete_build(&mut self, build: &Build) -> Result<()> {
        let txn = self.txn();
        for env in self.environments(&build.service_sid)? {
            if env.build_sid.as_deref() == Some(build.sid.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "Build {} is the active build of environment {} ({}); deploy another build there first",
                    build.sid, env.unique_name, env.sid
                )));
            }
        }
        let others = versions_in_builds(txn, &build.service_sid, Some(&build.sid))?;
        let mut orphans = Vec::new();
        {
            let assets = txn.open_table(ASSETS)?;
            let versions = txn.open_table(VERSIONS)?;
            for v in &build.asset_versions {
                if others.contains(v) {
                    continue;
                }
                let Some(row) = get_json::<AssetVersion, _>(&versions, v)? else {
                    continue;
                };
                if assets.get(row.asset_sid.as_str())?.is_none() {
                    orphans.push(v.clone());
                }
            }
        }
        let freed = remove_versions(txn, orphans.iter())?;
        delete_build_rows(txn, &build.service_sid, &build.sid)?;
        self.reclaim_unreferenced_blobs(&freed)?;
        Ok(())
    }
}

/// Removes version rows; returns the digests they referenced (candidates for reclaim).
fn remove_versions<'a>(
    txn: &WriteTransaction,
    sids: impl Iterator<Item = &'a String>,
) -> Result<Vec<Digest>> {
    let mut table = txn.open_table(VERSIONS)?;
    let mut digests = Vec::new();
    for sid in sids {
        if let Some(v) = table.remove(sid.as_str())? {
            let row: AssetVersion = decode_json(v.value())?;
            digests.extend(Digest::from_hex(&row.digest));
        }
    }
    digests.sort();
    digests.dedup();
    Ok(digests)
}

/// Removes the asset's name-index entry when it points at this asset.
fn remove_name_index(txn: &WriteTransaction, asset: &Asset) -> Result<()> {
    let mut names = txn.open_table(ASSET_NAMES)?;
    let key = (asset.service_sid.as_str(), asset.friendly_name.as_str());
    if names.get(key)?.is_some_and(|v| v.value() == asset.sid) {
        names.remove(key)?;
    }
    Ok(())
}

/// Every version SID held by a build of the service (except build `skip`).
fn versions_in_builds(
    txn: &WriteTransaction,
    service_sid: &str,
    skip: Option<&str>,
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let builds = txn.open_table(BUILDS)?;
    for sid in children_in_tx(txn, service_sid, "ZB")? {
        if Some(sid.as_str()) == skip {
            continue;
        }
        if let Some(b) = get_json::<Build, _>(&builds, &sid)? {
            out.extend(b.asset_versions);
        }
    }
    Ok(out)
}

/// Removes a build row, its routes and its link to the service.
fn delete_build_rows(txn: &WriteTransaction, service_sid: &str, build_sid: &str) -> Result<()> {
    let mut routes = txn.open_table(ROUTES)?;
    let mut paths = Vec::new();
    for item in routes.range((build_sid, "")..)? {
        let (k, _) = item?;
        let (b, path) = k.value();
        if b != build_sid {
            break;
        }
        paths.push(path.to_string());
    }
    for p in &paths {
        routes.remove((build_sid, p.as_str()))?;
    }
    drop(routes);
    txn.open_table(BUILDS)?.remove(build_sid)?;
    unlink(txn, service_sid, build_sid)
}

/// Removes an environment row with its host entry, deployment history and variables.
fn delete_environment_rows(txn: &WriteTransaction, service_sid: &str, env_sid: &str) -> Result<()> {
    if let Some(env) = load::<Environment>(txn, ENVIRONMENTS, env_sid)? {
        let mut hosts = txn.open_table(HOSTS)?;
        let ours = hosts
            .get(env.label.as_str())?
            .and_then(|v| HostEntry::decode(v.value()))
            .is_some_and(|h| h.environment_sid == env_sid);
        if ours {
            hosts.remove(env.label.as_str())?;
        }
    }
    {
        let mut log = txn.open_table(DEPLOY_LOG)?;
        let mut entries = Vec::new();
        for item in log.range((env_sid, 0u64)..=(env_sid, u64::MAX))? {
            let (k, v) = item?;
            entries.push((k.value().1, v.value().to_string()));
        }
        let mut deps = txn.open_table(DEPLOYMENTS)?;
        for (seq, dep) in &entries {
            log.remove((env_sid, *seq))?;
            deps.remove(dep.as_str())?;
        }
    }
    for var in children_in_tx(txn, env_sid, "ZV")? {
        txn.open_table(VARIABLES)?.remove(var.as_str())?;
        unlink(txn, env_sid, &var)?;
    }
    txn.open_table(ENVIRONMENTS)?.remove(env_sid)?;
    unlink(txn, service_sid, env_sid)
}

impl Lookup {
    /// The services of an account.
    pub fn services(&self, account_sid: &str) -> Result<Vec<Service>> {
        self.children_of(account_sid, "ZS", SERVICES)
    }

    /// The environment `sid` when it belongs to `service_sid`.
    pub fn service_environment(&self, service_sid: &str, sid: &str) -> Result<Option<Environment>> {
        Ok(
            get_json::<Environment, _>(&self.txn().open_table(ENVIRONMENTS)?, sid)?
                .filter(|e| e.service_sid == service_sid),
        )
    }

    /// The assets of a service.
    pub fn assets(&self, service_sid: &str) -> Result<Vec<Asset>> {
        self.children_of(service_sid, "ZH", ASSETS)
    }

    /// The asset `sid` when it belongs to `service_sid`.
    pub fn service_asset(&self, service_sid: &str, sid: &str) -> Result<Option<Asset>> {
        Ok(get_json::<Asset, _>(&self.txn().open_table(ASSETS)?, sid)?
            .filter(|a| a.service_sid == service_sid))
    }

    /// The versions of an asset that still exist, oldest first (creation order).
    pub fn asset_versions(&self, asset_sid: &str) -> Result<Vec<AssetVersion>> {
        let mut versions: Vec<AssetVersion> = self.children_of(asset_sid, "ZN", VERSIONS)?;
        versions.sort_by(|a, b| a.order().cmp(&b.order()));
        Ok(versions)
    }

    /// The build `sid` when it belongs to `service_sid`.
    pub fn service_build(&self, service_sid: &str, sid: &str) -> Result<Option<Build>> {
        Ok(self.build(sid)?.filter(|b| b.service_sid == service_sid))
    }

    /// The deployments of an environment, newest first, each with its position in the
    /// environment's history (larger is newer).
    pub fn deployment_history(&self, environment_sid: &str) -> Result<Vec<(u64, Deployment)>> {
        let log = self.txn().open_table(DEPLOY_LOG)?;
        let deps = self.txn().open_table(DEPLOYMENTS)?;
        let mut out = Vec::new();
        for item in log
            .range((environment_sid, 0u64)..=(environment_sid, u64::MAX))?
            .rev()
        {
            let (k, sid) = item?;
            if let Some(v) = deps.get(sid.value())? {
                out.push((k.value().1, decode_json(v.value())?));
            }
        }
        Ok(out)
    }

    /// The deployment `sid` when it belongs to `environment_sid`.
    pub fn environment_deployment(
        &self,
        environment_sid: &str,
        sid: &str,
    ) -> Result<Option<Deployment>> {
        Ok(
            get_json::<Deployment, _>(&self.txn().open_table(DEPLOYMENTS)?, sid)?
                .filter(|d| d.environment_sid == environment_sid),
        )
    }

    /// The variables of an environment.
    pub fn variables(&self, environment_sid: &str) -> Result<Vec<Variable>> {
        self.children_of(environment_sid, "ZV", VARIABLES)
    }

    /// The variable `sid` when it belongs to `environment_sid`.
    pub fn environment_variable(
        &self,
        environment_sid: &str,
        sid: &str,
    ) -> Result<Option<Variable>> {
        Ok(
            get_json::<Variable, _>(&self.txn().open_table(VARIABLES)?, sid)?
                .filter(|v| v.environment_sid == environment_sid),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{AssetPath, Visibility};
    use crate::store::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        (dir, store)
    }

    /// Number of rows in every table except accounts, meta and blobs.
    fn rows(store: &Store) -> Vec<(&'static str, u64)> {
        use redb::ReadableTableMetadata;
        let l = store.read().unwrap();
        let t = l.txn();
        let n = |r: std::result::Result<u64, redb::StorageError>| r.unwrap();
        vec![
            ("services", n(t.open_table(super::SERVICES).unwrap().len())),
            (
                "service_names",
                n(t.open_table(super::SERVICE_NAMES).unwrap().len()),
            ),
            (
                "environments",
                n(t.open_table(super::ENVIRONMENTS).unwrap().len()),
            ),
            ("hosts", n(t.open_table(super::HOSTS).unwrap().len())),
            ("assets", n(t.open_table(super::ASSETS).unwrap().len())),
            (
                "asset_names",
                n(t.open_table(super::ASSET_NAMES).unwrap().len()),
            ),
            ("versions", n(t.open_table(super::VERSIONS).unwrap().len())),
            ("builds", n(t.open_table(super::BUILDS).unwrap().len())),
            ("routes", n(t.open_table(super::ROUTES).unwrap().len())),
            (
                "deployments",
                n(t.open_table(super::DEPLOYMENTS).unwrap().len()),
            ),
            (
                "deploy_log",
                n(t.open_table(super::DEPLOY_LOG).unwrap().len()),
            ),
            (
                "variables",
                n(t.open_table(super::VARIABLES).unwrap().len()),
            ),
            ("children", n(t.open_table(super::CHILDREN).unwrap().len())),
        ]
    }

    /// A service with an environment, a variable, two assets, a deployed build, and a second
    /// build holding a version of an asset that was deleted afterwards.
    fn populate(tx: &mut Tx<'_>, acct: &str, name: &str) -> Result<Service> {
        let svc = tx.register_service(acct, name, name, true, false)?;
        let env = tx.register_environment(&svc, "dev-environment", Some("dev"))?;
        tx.create_variable(&env, "KEY", "value")?;
        let mut versions = Vec::new();
        for path in ["/a.txt", "/b.txt"] {
            let put = tx.put_blob(&mut path.as_bytes(), None, None)?;
            let asset = tx.create_asset(&svc, path)?;
            let p = AssetPath::parse(path)?;
            versions.push(tx.create_version(
                &asset,
                &p,
                Visibility::Public,
                "text/plain",
                &put.digest,
            )?);
        }
        let sids: Vec<String> = versions.iter().map(|v| v.sid.clone()).collect();
        let b1 = crate::store::tests::built(tx, &svc, &sids)?;
        let b2 = crate::store::tests::built(tx, &svc, &sids[1..])?;
        tx.deploy(&env, &b2.sid)?;
        // /a.txt is only in the inactive build b1: deleting its asset keeps that version.
        let a = tx.service_asset(&svc.sid, &versions[0].asset_sid)?.unwrap();
        tx.delete_asset(&a)?;
        assert!(tx.service_build(&svc.sid, &b1.sid)?.is_some());
        Ok(svc)
    }

    #[test]
    fn deleting_a_service_removes_every_row_it_owns() {
        let (_d, store) = open();
        let (acct, _) = store.main_account().unwrap();
        let before = rows(&store);
        let keep = store.write(|tx| populate(tx, &acct.sid, "keep")).unwrap();
        let with_one = rows(&store);
        let gone = store.write(|tx| populate(tx, &acct.sid, "gone")).unwrap();
        assert_ne!(rows(&store), with_one);
        let blobs = || store.read().unwrap().blobs().unwrap().len();
        assert_eq!(blobs(), 2);
        store.write(|tx| tx.delete_service(&gone)).unwrap();
        assert_eq!(
            rows(&store),
            with_one,
            "the deleted service left rows behind"
        );
        assert_eq!(
            blobs(),
            2,
            "blobs still used by the other service must stay"
        );
        store.write(|tx| tx.delete_service(&keep)).unwrap();
        assert_eq!(rows(&store), before);
        assert_eq!(blobs(), 0, "unreferenced blobs are reclaimed");
        assert!(
            store
                .read()
                .unwrap()
                .find_service(&acct.sid, "gone")
                .unwrap()
                .is_none()
        );
        // The name is free again.
        store
            .write(|tx| tx.register_service(&acct.sid, "gone", "again", true, false))
            .unwrap();
    }

    #[test]
    fn active_versions_and_builds_are_not_deleted() {
        let (_d, store) = open();
        let (acct, _) = store.main_account().unwrap();
        let svc = store.write(|tx| populate(tx, &acct.sid, "svc")).unwrap();
        let l = store.read().unwrap();
        let env = l.environments(&svc.sid).unwrap().remove(0);
        let active = l.build(env.build_sid.as_deref().unwrap()).unwrap().unwrap();
        let asset = l.assets(&svc.sid).unwrap().remove(0);
        drop(l);
        let e = store.write(|tx| tx.delete_asset(&asset)).unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("active build of environment dev-environment")),
            "{e}"
        );
        let e = store.write(|tx| tx.delete_build(&active)).unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)));
        // Nothing was lost.
        let l = store.read().unwrap();
        assert_eq!(l.asset_versions(&asset.sid).unwrap().len(), 1);
        assert!(l.build(&active.sid).unwrap().is_some());
    }

    #[test]
    fn limits_and_uniqueness() {
        let (_d, store) = open();
        let (acct, _) = store.main_account().unwrap();
        let e = store
            .write(|tx| {
                for i in 0..50 {
                    tx.register_service(&acct.sid, &format!("s{i}"), "x", true, false)?;
                }
                tx.register_service(&acct.sid, "s50", "x", true, false)
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Services are limited to less than or equal to 50"
        );
        let svc = store
            .write(|tx| tx.register_service(&acct.sid, "one", "x", false, true))
            .unwrap();
        assert!(!svc.include_credentials && svc.ui_editable);
        let e = store
            .write(|tx| {
                for i in 0..25 {
                    tx.register_environment(&svc, &format!("e{i}"), Some(&format!("e{i}")))?;
                }
                tx.register_environment(&svc, "e25", Some("e25"))
            })
            .unwrap_err();
        assert!(e.to_string().contains("25"), "{e}");
        let e = store
            .write(|tx| {
                let env = tx.register_environment(&svc, "dev", Some("dev"))?;
                let v = tx.create_variable(&env, "K", "1")?;
                let w = tx.create_variable(&env, "L", "2")?;
                assert!(tx.update_variable(&w, Some("K"), None).is_err());
                tx.update_variable(&v, None, Some(&"x".repeat(450)))?;
                assert!(
                    tx.update_variable(&v, None, Some(&"x".repeat(451)))
                        .is_err()
                );
                tx.create_variable(&env, "K", "again")
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)));
    }
}
