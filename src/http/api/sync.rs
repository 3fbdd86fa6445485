//! assetd's extension: upload only what the server is missing.
//!
//! 1. `POST /v1/Services/{S}/Manifests` with a JSON body
//!    `{"files": [[path, blake3_hex, size, visibility, content_type?], …]}` validates the whole
//!    project (paths, limits) and answers `{"sid": "ZM…", "missing": [digest, …], …}`: the
//!    digests this account has not stored yet.
//! 2. `PUT /v1/Blobs/{digest}` with the raw bytes, for each missing digest; the digest is
//!    verified on arrival (a mismatch is refused and nothing is stored).
//! 3. `POST /v1/Services/{S}/Manifests/{ZM}/Build` (form: optional `Environment` = domain
//!    suffix or `ZE…` SID) creates the versions (reusing identical ones), the build and the
//!    deployment in one transaction.
//!
//! An unchanged 1000-file project moves about 130 KB (the manifest) plus small answers.

use super::error::{ApiError, ApiResult};
use super::staging::Stager;
use super::{Ctx, Route, json_reply};
use crate::http::server::Reply;
use crate::model::limits::MAX_SERVED_BYTES;
use crate::model::{Digest, mime};
use crate::store::{Environment, ManifestEntry, Service};
use serde_json::{Value, json};
use std::io::Read;

pub static ROUTES: &[Route] = &[
    Route {
        method: "POST",
        pattern: "/v1/Services/{}/Manifests",
        handler: create_manifest,
    },
    Route {
        method: "POST",
        pattern: "/v1/Services/{}/Manifests/{}/Build",
        handler: build_manifest,
    },
    Route {
        method: "PUT",
        pattern: "/v1/Blobs/{}",
        handler: put_blob,
    },
    Route {
        method: "HEAD",
        pattern: "/v1/Blobs/{}",
        handler: head_blob,
    },
];

/// Largest manifest body accepted.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

fn service(ctx: &Ctx<'_, '_, '_>, sid_or_name: &str) -> ApiResult<Service> {
    ctx.store
        .read()?
        .find_service(ctx.account_sid(), sid_or_name)?
        .ok_or_else(|| ApiError::not_found(&format!("/Services/{sid_or_name}")))
}

fn read_json(ctx: &mut Ctx<'_, '_, '_>) -> ApiResult<Value> {
    if ctx.req.body_len.is_some_and(|n| n > MAX_MANIFEST_BYTES) {
        return Err(ApiError::too_large(format!(
            "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let mut buf = Vec::new();
    (&mut *ctx.req.body)
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::body("the request body", &e))?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ApiError::too_large(format!(
            "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&buf)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))
}

/// Parses `[path, digest, size, visibility, content_type?]` rows.
fn entries(body: &Value) -> ApiResult<Vec<ManifestEntry>> {
    let rows = body
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("the manifest needs a \"files\" array"))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let bad = || {
                ApiError::invalid(format!(
                    "files[{i}] must be [path, blake3 hex digest, size, visibility, optional content type]"
                ))
            };
            let a = row.as_array().ok_or_else(bad)?;
            if a.len() < 4 || a.len() > 5 {
                return Err(bad());
            }
            let path = a[0].as_str().ok_or_else(bad)?;
            let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
            let content_type = match a.get(4) {
                Some(v) => v.as_str().ok_or_else(bad)?.to_string(),
                None => mime::from_path(&path).to_string(),
            };
            Ok(ManifestEntry {
                digest: a[1].as_str().ok_or_else(bad)?.to_ascii_lowercase(),
                size: a[2].as_u64().ok_or_else(bad)?,
                visibility: a[3].as_str().ok_or_else(bad)?.to_ascii_lowercase(),
                content_type,
                path,
            })
        })
        .collect()
}

fn create_manifest(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let svc = service(ctx, &args[0])?;
    let body = read_json(ctx)?;
    let entries = entries(&body)?;
    // DryRun=true validates and answers what is missing without storing anything.
    let dry_run = ctx.query.bool("DryRun")?.unwrap_or(false);
    let manifest = if dry_run {
        crate::store::validate_entries(&entries)?;
        crate::store::Manifest {
            sid: String::new(),
            account_sid: svc.account_sid.clone(),
            service_sid: svc.sid.clone(),
            entries,
            date_created: 0,
        }
    } else {
        ctx.store.write(|tx| tx.save_manifest(&svc, entries))?
    };
    let digests: Vec<Digest> = manifest
        .entries
        .iter()
        .filter_map(|e| Digest::from_hex(&e.digest))
        .collect();
    let missing = ctx.store.read()?.missing_for(ctx.account_sid(), &digests)?;
    let missing_bytes: u64 = missing
        .iter()
        .filter_map(|d| manifest.entries.iter().find(|e| e.digest == d.to_hex()))
        .map(|e| e.size)
        .sum();
    Ok(json_reply(
        if dry_run { 200 } else { 201 },
        &json!({
            "sid": (!dry_run).then_some(&manifest.sid),
            "service_sid": svc.sid,
            "files": manifest.entries.len(),
            "missing": missing.iter().map(Digest::to_hex).collect::<Vec<_>>(),
            "missing_bytes": missing_bytes,
            "url": (!dry_run).then(|| format!("{}/v1/Services/{}/Manifests/{}", ctx.base, svc.sid, manifest.sid)),
        }),
    ))
}

fn parse_digest(s: &str) -> ApiResult<Digest> {
    Digest::from_hex(s).ok_or_else(|| {
        ApiError::invalid(format!("{s:?} is not a BLAKE3-256 digest (64 hex digits)"))
    })
}

fn put_blob(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let expected = parse_digest(&args[0])?;
    if ctx.req.body_len.is_some_and(|n| n > MAX_SERVED_BYTES) {
        return Err(ApiError::too_large(format!(
            "Request Entity Too Large: blobs are limited to {} MB",
            MAX_SERVED_BYTES / crate::model::limits::MB
        )));
    }
    let mut stager = Stager::new(ctx.store, MAX_SERVED_BYTES, "the blob")?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = ctx
            .req
            .body
            .read(&mut buf)
            .map_err(|e| ApiError::body("the upload", &e))?;
        if n == 0 {
            break;
        }
        stager.write(&buf[..n])?;
    }
    let staged = stager.finish()?;
    if let Some(declared) = ctx.req.body_len
        && declared != staged.size
    {
        return Err(ApiError::invalid(
            "the body is shorter than its Content-Length",
        ));
    }
    // SECURITY: the bytes must hash to the digest they claim; nothing is stored otherwise.
    if staged.digest != expected {
        return Err(ApiError::invalid(format!(
            "content digest mismatch: the URL says {expected}, the bytes hash to {}; nothing was stored",
            staged.digest
        )));
    }
    let account = ctx.account_sid().to_string();
    let put = ctx.store.write(|tx| {
        let mut file = staged
            .open()
            .map_err(|e| crate::store::StoreError::Invalid(e.message))?;
        let put = tx.put_blob(&mut file, Some(expected), None)?;
        tx.own_blob(&expected, &account)?;
        Ok(put)
    })?;
    Ok(json_reply(
        201,
        &json!({"digest": expected.to_hex(), "size": put.size, "new": put.new}),
    ))
}

/// 200 when this account has the blob, 404 otherwise (no body either way).
fn head_blob(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let d = parse_digest(&args[0])?;
    let missing = ctx.store.read()?.missing_for(ctx.account_sid(), &[d])?;
    if missing.is_empty() {
        Ok(json_reply(200, &json!({"digest": d.to_hex()})))
    } else {
        Err(ApiError::not_found(&format!("/Blobs/{d}")))
    }
}

fn build_manifest(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let svc = service(ctx, &args[0])?;
    let form = ctx.form()?;
    let env: Option<Environment> = match form.get("Environment").filter(|s| !s.is_empty()) {
        None => None,
        Some(e) => {
            let lookup = ctx.store.read()?;
            let found = lookup.environments(&svc.sid)?.into_iter().find(|env| {
                env.sid == e
                    || env
                        .domain_suffix
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(e))
            });
            Some(found.ok_or_else(|| {
                ApiError::not_found(&format!("/Services/{}/Environments/{e}", svc.sid))
            })?)
        }
    };
    let result = ctx
        .store
        .write(|tx| tx.build_manifest(&svc, &args[1], env.as_ref(), ctx.config.builds_per_hour))?;
    Ok(json_reply(
        201,
        &json!({
            "build_sid": result.build.sid,
            "status": result.build.status,
            "deployment_sid": result.deployment.as_ref().map(|d| d.sid.clone()),
            "environment_sid": env.as_ref().map(|e| e.sid.clone()),
            "versions_created": result.versions_created,
            "versions_reused": result.versions_reused,
            "unchanged": result.unchanged,
            "url": format!("{}/v1/Services/{}/Builds/{}", ctx.base, svc.sid, result.build.sid),
        }),
    ))
}
