//! Asset Version create: the multipart upload (`Path`, `Visibility`, `Content` in any order),
//! streamed to a staging file with bounded memory, hashed on the way, then stored and
//! recorded in one transaction. Past 25 MB the answer is 413 without reading the rest.

use super::error::{ApiError, ApiResult};
use super::multipart::{Multipart, boundary};
use super::staging::Stager;
use super::{Ctx, Route, json, json_reply};
use crate::http::server::Reply;
use crate::model::limits::{MAX_SERVED_BYTES, max_bytes};
use crate::model::{AssetPath, Visibility, mime};

pub static ROUTES: &[Route] = &[Route {
    method: "POST",
    pattern: "/v1/Services/{}/Assets/{}/Versions",
    handler: create_version,
}];

/// Multipart framing allowed on top of the largest content.
const MULTIPART_SLACK: u64 = 64 * 1024;
/// The largest multipart body an upload takes: the largest asset plus its framing.
pub const MAX_UPLOAD_BYTES: u64 = MAX_SERVED_BYTES + MULTIPART_SLACK;

fn create_version(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let (service, asset) = {
        let lookup = ctx.store.read()?;
        let service = lookup
            .find_service(ctx.account_sid(), &args[0])?
            .ok_or_else(|| ApiError::not_found(&format!("/Services/{}", args[0])))?;
        let asset = lookup
            .asset(&args[1])?
            .filter(|a| a.service_sid == service.sid)
            .ok_or_else(|| {
                ApiError::not_found(&format!("/Services/{}/Assets/{}", args[0], args[1]))
            })?;
        (service, asset)
    };
    let content_type = ctx.req.header("content-type").unwrap_or("").to_string();
    let Some(boundary) = boundary(&content_type) else {
        return Err(ApiError::invalid(
            "Asset Versions are created with a multipart/form-data body (parts Path, Visibility, Content)",
        ));
    };
    if let Some(len) = ctx.req.body_len
        && len > MAX_UPLOAD_BYTES
    {
        return Err(ApiError::too_large(format!(
            "Request Entity Too Large: {len} bytes; assets are limited to {} MB",
            MAX_SERVED_BYTES / crate::model::limits::MB
        )));
    }
    let (mut path, mut visibility, mut part_type, mut filename) = (None, None, None, None);
    let mut staged = None;
    let mut parts = Multipart::new(ctx.req.body, &boundary);
    while let Some(part) = parts.next_part()? {
        match part.name.as_str() {
            // A repeated part is refused rather than resolved by order ("last wins" would
            // let the part order decide a version's path or visibility).
            "Path" | "path" => {
                if path.replace(parts.read_text(1024)?).is_some() {
                    return Err(ApiError::invalid("the Path part appears twice"));
                }
            }
            "Visibility" | "visibility" => {
                if visibility.replace(parts.read_text(64)?).is_some() {
                    return Err(ApiError::invalid("the Visibility part appears twice"));
                }
            }
            "Content" | "content" => {
                if staged.is_some() {
                    return Err(ApiError::invalid("the Content part appears twice"));
                }
                part_type = part.content_type.clone();
                filename = part.filename.clone();
                let mut stager = Stager::new(ctx.store, MAX_SERVED_BYTES, "the asset")?;
                parts.read_body(&mut |b| stager.write(b))?;
                staged = Some(stager.finish()?);
            }
            // Unknown parts are ignored, like unknown form parameters.
            _ => parts.read_body(&mut |_| Ok(()))?,
        }
    }
    let path = path.ok_or_else(|| ApiError::missing("Path"))?;
    let path = AssetPath::parse(path.trim())?;
    let visibility =
        Visibility::parse(&visibility.ok_or_else(|| ApiError::missing("Visibility"))?)?;
    let staged = staged.ok_or_else(|| ApiError::missing("Content"))?;
    let limit = max_bytes(visibility);
    if staged.size > limit {
        return Err(ApiError::too_large(format!(
            "{path} is {} bytes; {visibility} assets are limited to {} MB",
            staged.size,
            limit / crate::model::limits::MB
        )));
    }
    // The part's Content-Type is stored when it is a valid type; otherwise (or when it is the
    // generic octet-stream) the type comes from the path's extension, then the filename's.
    let content_type = match part_type.as_deref().map(str::trim) {
        Some(ct) if mime::check_content_type(ct).is_ok() && ct != "application/octet-stream" => {
            ct.to_string()
        }
        _ => {
            let by_path = mime::from_path(path.as_str());
            if by_path == "application/octet-stream" {
                filename
                    .as_deref()
                    .map(mime::from_path)
                    .unwrap_or(by_path)
                    .to_string()
            } else {
                by_path.to_string()
            }
        }
    };
    let account = ctx.account_sid().to_string();
    let version = ctx.store.write(|tx| {
        // The asset may have been deleted while the bytes were arriving.
        if tx.service_asset(&asset.service_sid, &asset.sid)?.is_none() {
            return Err(crate::store::StoreError::NotFound(format!(
                "The requested resource /Services/{}/Assets/{} was not found",
                asset.service_sid, asset.sid
            )));
        }
        let mut file = staged
            .open()
            .map_err(|e| crate::store::StoreError::Invalid(e.message))?;
        tx.put_blob(&mut file, Some(staged.digest), None)?;
        tx.own_blob(&staged.digest, &account)?;
        tx.create_version(&asset, &path, visibility, &content_type, &staged.digest)
    })?;
    drop(service);
    Ok(json_reply(201, &json::asset_version(&ctx.base, &version)))
}
