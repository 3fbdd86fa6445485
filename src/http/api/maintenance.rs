//! Operator endpoints on the management API (main account only): the retention pass, a
//! consistent backup while serving, and verification of every blob and reference.

use super::error::{ApiError, ApiResult};
use super::{Ctx, Route, json_reply};
use crate::http::server::{Body, Reply};

pub static ROUTES: &[Route] = &[
    Route {
        method: "POST",
        pattern: "/v1/Retention",
        handler: retention,
    },
    Route {
        method: "GET",
        pattern: "/v1/Backup",
        handler: backup,
    },
    Route {
        method: "POST",
        pattern: "/v1/Verify",
        handler: verify,
    },
];

// SECURITY: these endpoints span every account, so only the main account's own auth token
// may call them (not a subaccount, not an API key).
fn main_only(ctx: &Ctx<'_, '_, '_>, what: &str) -> ApiResult<()> {
    if ctx.caller.account.owner_sid.is_some() || ctx.caller.api_key.is_some() {
        return Err(ApiError::new(
            403,
            20403,
            format!("only the main account's auth token may {what}"),
        ));
    }
    Ok(())
}

/// Streams a backup of one consistent snapshot (the server keeps serving and deploying).
/// The backup is written to an unlinked temporary file first, so that its length is known.
fn backup(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    main_only(ctx, "take a backup")?;
    let mut file = super::staging::unlinked_temp(ctx.store, "backup")?;
    let report = {
        let mut w = std::io::BufWriter::new(&mut file);
        let r = ctx.store.read()?.backup(&mut w)?;
        std::io::Write::flush(&mut w).map_err(|e| ApiError::internal(&e))?;
        r
    };
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            (
                "content-disposition".into(),
                "attachment; filename=\"assetd.backup\"".into(),
            ),
            (
                "x-assetd-backup-records".into(),
                report.records.to_string().into(),
            ),
        ],
        body: Body::Stream {
            reader: Box::new(file),
            len: report.bytes,
        },
    })
}

/// Re-hashes every blob and checks every reference; answers the problems found.
fn verify(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    main_only(ctx, "verify the store")?;
    let (problems, blobs) = ctx.store.read()?.verify()?;
    Ok(json_reply(
        200,
        &serde_json::json!({"blobs_checked": blobs, "problems": problems}),
    ))
}

/// Runs the retention pass now: builds never deployed and versions in no build older than
/// `MaxAgeSeconds` (default: the server's `--retention-days`) are deleted, then unreferenced
/// blobs are reclaimed. Answers the report.
fn retention(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    main_only(ctx, "run the retention pass")?;
    let form = ctx.form()?;
    let age = match form.get("MaxAgeSeconds") {
        None => ctx.config.retention_secs,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::invalid(format!(
                "MaxAgeSeconds must be a whole number of seconds, not {s:?}"
            ))
        })?,
    };
    let report = ctx.store.write(|tx| tx.retention(age))?;
    crate::metrics::get().retention(report.bytes_reclaimed);
    let mut body = serde_json::to_value(&report).map_err(|e| ApiError::internal(&e))?;
    body["max_age_seconds"] = age.into();
    Ok(json_reply(200, &body))
}
