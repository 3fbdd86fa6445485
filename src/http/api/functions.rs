//! Functions and Logs: the part of the Serverless API that runs code, which assetd does not.
//! Twilio's Serverless Toolkit calls it on every deploy (it lists a service's Functions even
//! for a project without any), so it answers in Twilio's shapes:
//!
//! * `GET /v1/Services/{S}/Functions` → an empty `functions` page (404 for an unknown
//!   service). No Function ever exists, so `GET …/Functions/{F}` and
//!   `GET …/Functions/{F}/Versions[/{V}]` are 404.
//! * `POST …/Functions` and `POST …/Functions/{F}/Versions` → 400/20001 with
//!   [`ASSETS_ONLY`], the one-line message that tells a toolkit user what to do instead.
//! * `GET …/Environments/{E}/Logs` → an empty `logs` page (nothing runs, so nothing logs);
//!   `GET …/Logs/{L}` is 404.

use super::environments::environment;
use super::error::{ApiError, ApiResult};
use super::services::{not_found, paged, service};
use super::{Ctx, Route};
use crate::http::server::Reply;
use serde_json::Value;

/// Why a Function (or a Function Version, or a build with Function Versions) is refused,
/// naming the toolkit's real flag (`twilio-run deploy --no-functions`).
pub const ASSETS_ONLY: &str = "assetd hosts assets only and does not run Functions: deploy without them (twilio-run deploy --no-functions, or remove the functions/ folder)";

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Functions",
        handler: list_functions,
    },
    Route {
        method: "POST",
        pattern: "/v1/Services/{}/Functions",
        handler: refuse_function,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Functions/{}",
        handler: missing_function,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Functions/{}/Versions",
        handler: missing_function,
    },
    Route {
        method: "POST",
        pattern: "/v1/Services/{}/Functions/{}/Versions",
        handler: refuse_function,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Functions/{}/Versions/{}",
        handler: missing_function,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Environments/{}/Logs",
        handler: list_logs,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Environments/{}/Logs/{}",
        handler: missing_log,
    },
];

fn list_functions(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    service(ctx, &ctx.store.read()?, &args[0])?;
    paged::<()>(ctx, "functions", Vec::new(), |_| Ok(Value::Null))
}

/// 400 for any attempt to create a Function or a Function Version (after the service is
/// known to be the caller's, so an unknown service is still 404).
fn refuse_function(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    service(ctx, &ctx.store.read()?, &args[0])?;
    let mut e = ApiError::invalid(ASSETS_ONLY);
    // The body (a Function Version's multipart upload) is not read: the connection must
    // not be reused.
    e.headers.push(("connection".into(), "close".into()));
    Err(e)
}

/// 404: the service may exist, its Functions never do.
fn missing_function(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    service(ctx, &ctx.store.read()?, &args[0])?;
    Err(not_found(ctx))
}

fn list_logs(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    environment(ctx, &ctx.store.read()?, args)?;
    paged::<()>(ctx, "logs", Vec::new(), |_| Ok(Value::Null))
}

fn missing_log(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    environment(ctx, &ctx.store.read()?, args)?;
    Err(not_found(ctx))
}
