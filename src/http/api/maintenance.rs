//! Operator endpoints on the management API (main account only): the retention pass.

use super::error::{ApiError, ApiResult};
use super::{Ctx, Route, json_reply};
use crate::http::server::Reply;

pub static ROUTES: &[Route] = &[Route {
    method: "POST",
    pattern: "/v1/Retention",
    handler: retention,
}];

/// Runs the retention pass now: builds never deployed and versions in no build older than
/// `MaxAgeSeconds` (default: the server's `--retention-days`) are deleted, then unreferenced
/// blobs are reclaimed. Answers the report.
fn retention(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    // SECURITY: the pass spans every account, so only the main account may run it.
    if ctx.caller.account.owner_sid.is_some() || ctx.caller.api_key.is_some() {
        return Err(ApiError::new(
            403,
            20403,
            "only the main account's auth token may run the retention pass",
        ));
    }
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
    let mut body = serde_json::to_value(&report).map_err(|e| ApiError::internal(&e))?;
    body["max_age_seconds"] = age.into();
    Ok(json_reply(200, &body))
}
