//! The stored records. Encoded as JSON in redb values: small, self-describing, and easy to
//! evolve with `#[serde(default)]` fields.

use serde::{Deserialize, Serialize};

/// An account: owns services; its auth token is both the API password and the HMAC key of
/// protected assets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    /// A new token waiting to be promoted (token rotation).
    #[serde(default)]
    pub secondary_token: Option<String>,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// The main account that owns this subaccount; `None` for a main account.
    #[serde(default)]
    pub owner_sid: Option<String>,
    pub date_created: u64,
    pub date_updated: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Service {
    pub sid: String,
    pub account_sid: String,
    pub unique_name: String,
    pub friendly_name: String,
    pub domain_base: String,
    pub include_credentials: bool,
    pub ui_editable: bool,
    pub date_created: u64,
    pub date_updated: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub unique_name: String,
    pub domain_suffix: Option<String>,
    /// The host label: `{domain_base}[-{suffix}]`; the domain is label + `.` + base domain.
    pub label: String,
    pub build_sid: Option<String>,
    pub date_created: u64,
    pub date_updated: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Asset {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub friendly_name: String,
    pub date_created: u64,
    pub date_updated: u64,
}

/// An immutable asset version: which bytes, at which path, for whom.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssetVersion {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub asset_sid: String,
    pub path: String,
    pub visibility: String,
    pub content_type: String,
    /// BLAKE3-256 of the bytes, lower-case hex.
    pub digest: String,
    pub size: u64,
    pub date_created: u64,
    /// Creation order across the store (`date_created` has one-second resolution): versions
    /// are listed, and the latest is chosen, by (`date_created`, `seq`). Not in the API.
    #[serde(default)]
    pub seq: u64,
}

impl AssetVersion {
    /// The key versions are ordered by: oldest first, creation order within a second.
    pub fn order(&self) -> (u64, u64, &str) {
        (self.date_created, self.seq, &self.sid)
    }
}

/// An immutable manifest of asset versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Build {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    /// `building`, `completed` or `failed`.
    pub status: String,
    pub asset_versions: Vec<String>,
    #[serde(default)]
    pub function_versions: Vec<String>,
    #[serde(default)]
    pub dependencies: serde_json::Value,
    #[serde(default)]
    pub runtime: Option<String>,
    pub date_created: u64,
    pub date_updated: u64,
}

/// Points an environment at a build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub environment_sid: String,
    pub build_sid: String,
    pub date_created: u64,
    pub date_updated: u64,
}

/// An API key: authenticates as its account with its secret (stored only as a digest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub secret_hash: String,
    pub date_created: u64,
    pub date_updated: u64,
}

/// An environment variable (stored and listed for compatibility).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub environment_sid: String,
    pub key: String,
    pub value: String,
    pub date_created: u64,
    pub date_updated: u64,
}

/// One file of a sync manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestEntry {
    pub path: String,
    pub digest: String,
    pub size: u64,
    pub visibility: String,
    pub content_type: String,
}

/// A validated project manifest (the upload-only-what-is-missing extension), kept until its
/// build is created or it expires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub entries: Vec<ManifestEntry>,
    pub date_created: u64,
}
