//! Table definitions and the binary codecs of the hot-path values.

use crate::model::{Digest, Visibility};
use redb::TableDefinition;

/// Bumped whenever the layout changes incompatibly; checked on open.
pub const SCHEMA_VERSION: u32 = 1;

/// Bytes per blob chunk: a 12-byte key plus this value fit one 256 KiB redb page, so a chunk
/// never costs a larger power-of-two page.
pub const CHUNK_SIZE: usize = 262_100;

/// `schema_version`, `main_account`, `next_blob_id`, `next_seq`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Account SID → () for every account that is not `active` (derived from ACCOUNTS, rebuilt on
/// open and after a restore; not in backups): the asset path serves none of their assets.
pub const INACTIVE_ACCOUNTS: TableDefinition<&str, ()> = TableDefinition::new("inactive_accounts");
pub const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
/// (account sid, lower-case unique name) → service sid.
pub const SERVICE_NAMES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("service_names");
pub const ENVIRONMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("environments");
/// Environment host label → [`HostEntry`]: the hot path's first lookup.
pub const HOSTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hosts");
pub const ASSETS: TableDefinition<&str, &[u8]> = TableDefinition::new("assets");
/// (service sid, friendly name) → asset sid.
pub const ASSET_NAMES: TableDefinition<(&str, &str), &str> = TableDefinition::new("asset_names");
pub const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("asset_versions");
pub const BUILDS: TableDefinition<&str, &[u8]> = TableDefinition::new("builds");
/// (build sid, path) → [`Route`]: computed once when the build is created.
pub const ROUTES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("routes");
pub const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");
/// (environment sid, sequence) → deployment sid, for history in order.
pub const DEPLOY_LOG: TableDefinition<(&str, u64), &str> = TableDefinition::new("deploy_log");
/// (account SID, creation second, build SID) → () for builds created within the last hour
/// (older rows are pruned as new ones come): the builds-per-hour limit counts creations,
/// including builds deleted since. Transient: not in backups.
pub const BUILD_LOG: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("build_log");
/// (parent sid, child sid) → (): account→service, service→environment/asset/build,
/// asset→version.
pub const CHILDREN: TableDefinition<(&str, &str), ()> = TableDefinition::new("children");
/// API key sid → [`crate::store::ApiKey`] JSON.
pub const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// Environment variables: variable sid → JSON.
pub const VARIABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("variables");
/// BLAKE3 digest → [`BlobMeta`].
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// (digest, account sid) → (): the accounts that uploaded or reference a blob. "Which
/// digests are missing" is answered per account, so that no account can probe for another's
/// files.
pub const BLOB_OWNERS: TableDefinition<(&[u8; 32], &str), ()> = TableDefinition::new("blob_owners");
/// Sync manifest sid → JSON: a validated project manifest awaiting its build.
pub const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
/// (blob id, chunk index) → at most [`CHUNK_SIZE`] bytes.
pub const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");

/// What an asset URL resolves to inside a build.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub visibility: Visibility,
    pub size: u64,
    pub digest: Digest,
    pub content_type: String,
    pub version_sid: String,
}

impl Route {
    pub fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_bytes();
        let mut v = Vec::with_capacity(1 + 8 + 32 + 2 + ct.len() + 34);
        v.push(match self.visibility {
            Visibility::Public => 0,
            Visibility::Protected => 1,
            Visibility::Private => 2,
        });
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&self.digest.0);
        v.extend_from_slice(&(ct.len() as u16).to_le_bytes());
        v.extend_from_slice(ct);
        v.extend_from_slice(self.version_sid.as_bytes());
        v
    }

    pub fn decode(b: &[u8]) -> Option<Route> {
        let visibility = match *b.first()? {
            0 => Visibility::Public,
            1 => Visibility::Protected,
            2 => Visibility::Private,
            _ => return None,
        };
        let size = u64::from_le_bytes(b.get(1..9)?.try_into().ok()?);
        let digest = Digest(b.get(9..41)?.try_into().ok()?);
        let ct_len = u16::from_le_bytes(b.get(41..43)?.try_into().ok()?) as usize;
        let content_type = std::str::from_utf8(b.get(43..43 + ct_len)?)
            .ok()?
            .to_string();
        let version_sid = std::str::from_utf8(b.get(43 + ct_len..)?).ok()?.to_string();
        Some(Route {
            visibility,
            size,
            digest,
            content_type,
            version_sid,
        })
    }
}

/// Where a host label points: the environment, its account and its active build.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEntry {
    pub environment_sid: String,
    pub account_sid: String,
    pub build_sid: Option<String>,
}

impl HostEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(102);
        v.extend_from_slice(self.environment_sid.as_bytes());
        v.extend_from_slice(self.account_sid.as_bytes());
        if let Some(b) = &self.build_sid {
            v.extend_from_slice(b.as_bytes());
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<HostEntry> {
        let s = std::str::from_utf8(b).ok()?;
        if s.len() != 68 && s.len() != 102 {
            return None;
        }
        Some(HostEntry {
            environment_sid: s[..34].to_string(),
            account_sid: s[34..68].to_string(),
            build_sid: (s.len() == 102).then(|| s[68..].to_string()),
        })
    }
}

/// A stored blob: its chunk set and, for compressible content, its gzip variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlobMeta {
    pub id: u64,
    pub size: u64,
    pub gzip: GzipState,
    /// When the blob was first stored (seconds since the epoch): young unreferenced blobs are
    /// kept by the retention pass, since a client may be about to reference them.
    pub created: u64,
}

/// Whether a blob has a gzip variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GzipState {
    /// Never computed (the blob was only stored for incompressible content).
    Unknown,
    /// Computed and not worth it: serve identity.
    None,
    /// A chunk set of `size` gzip bytes under blob id `id`.
    Some { id: u64, size: u64 },
}

impl BlobMeta {
    pub fn encode(&self) -> [u8; 41] {
        let mut v = [0u8; 41];
        v[..8].copy_from_slice(&self.id.to_le_bytes());
        v[8..16].copy_from_slice(&self.size.to_le_bytes());
        match self.gzip {
            GzipState::Unknown => v[16] = 0,
            GzipState::None => v[16] = 1,
            GzipState::Some { id, size } => {
                v[16] = 2;
                v[17..25].copy_from_slice(&id.to_le_bytes());
                v[25..33].copy_from_slice(&size.to_le_bytes());
            }
        }
        v[33..41].copy_from_slice(&self.created.to_le_bytes());
        v
    }

    pub fn decode(b: &[u8]) -> Option<BlobMeta> {
        if b.len() != 41 {
            return None;
        }
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap());
        let gzip = match b[16] {
            0 => GzipState::Unknown,
            1 => GzipState::None,
            2 => GzipState::Some {
                id: u(17..25),
                size: u(25..33),
            },
            _ => return None,
        };
        Some(BlobMeta {
            id: u(0..8),
            size: u(8..16),
            gzip,
            created: u(33..41),
        })
    }

    /// Number of chunks a blob of `size` bytes has.
    pub fn chunks(size: u64) -> u32 {
        size.div_ceil(CHUNK_SIZE as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        let r = Route {
            visibility: Visibility::Protected,
            size: 123,
            digest: Digest([7; 32]),
            content_type: "audio/mpeg".into(),
            version_sid: format!("ZN{}", "0".repeat(32)),
        };
        assert_eq!(Route::decode(&r.encode()), Some(r));
        let h = HostEntry {
            environment_sid: format!("ZE{}", "1".repeat(32)),
            account_sid: format!("AC{}", "2".repeat(32)),
            build_sid: None,
        };
        assert_eq!(HostEntry::decode(&h.encode()), Some(h.clone()));
        let h2 = HostEntry {
            build_sid: Some(format!("ZB{}", "3".repeat(32))),
            ..h
        };
        assert_eq!(HostEntry::decode(&h2.encode()), Some(h2));
        for gzip in [
            GzipState::Unknown,
            GzipState::None,
            GzipState::Some { id: 9, size: 10 },
        ] {
            let m = BlobMeta {
                id: 1,
                size: 2,
                gzip,
                created: 77,
            };
            assert_eq!(BlobMeta::decode(&m.encode()), Some(m));
        }
        assert_eq!(BlobMeta::chunks(0), 0);
        assert_eq!(BlobMeta::chunks(CHUNK_SIZE as u64), 1);
        assert_eq!(BlobMeta::chunks(CHUNK_SIZE as u64 + 1), 2);
    }
}
