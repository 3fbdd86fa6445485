//! Services, addressed by SID or unique name, plus what every Serverless resource module
//! shares: account-scoped lookups that answer 404 (never 403) and list paging.
//!
//! * `GET /v1/Services`: the caller's services, oldest first.
//! * `POST /v1/Services`: `UniqueName`\*, `FriendlyName`\*, `IncludeCredentials` (default
//!   true), `UiEditable` (default false) → 201. At most 50 per account (400/20001); a taken
//!   unique name is 409.
//! * `GET /v1/Services/{Sid}`: by SID or unique name.
//! * `POST /v1/Services/{Sid}`: `FriendlyName`, `IncludeCredentials`, `UiEditable`.
//! * `DELETE /v1/Services/{Sid}` → 204: the service and everything under it, in one
//!   transaction, including the content blobs that no other version still uses.

use super::error::{ApiError, ApiResult};
use super::{Ctx, Route, json, json_reply, no_content};
use crate::http::server::Reply;
use crate::store::{Lookup, Service, StoreError, Tx};
use serde_json::Value;

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/v1/Services",
        handler: list,
    },
    Route {
        method: "POST",
        pattern: "/v1/Services",
        handler: create,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}",
        handler: fetch,
    },
    Route {
        method: "POST",
        pattern: "/v1/Services/{}",
        handler: update,
    },
    Route {
        method: "DELETE",
        pattern: "/v1/Services/{}",
        handler: delete,
    },
];

fn list(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let rows = lookup
        .services(ctx.account_sid())?
        .into_iter()
        .map(|s| (json::sort_key(s.date_created, &s.sid), s))
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "services", rows, |s| Ok(json::service(&base, s)))
}

fn create(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let unique_name = form.required("UniqueName")?;
    let friendly_name = form.required("FriendlyName")?;
    let include_credentials = form.bool("IncludeCredentials")?.unwrap_or(true);
    let ui_editable = form.bool("UiEditable")?.unwrap_or(false);
    let account = ctx.account_sid().to_string();
    let svc = ctx.store.write(|tx| {
        tx.register_service(
            &account,
            unique_name,
            friendly_name,
            include_credentials,
            ui_editable,
        )
    })?;
    Ok(json_reply(201, &json::service(&ctx.base, &svc)))
}

fn fetch(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let svc = service(ctx, &ctx.store.read()?, &args[0])?;
    Ok(json_reply(200, &json::service(&ctx.base, &svc)))
}

fn update(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let include_credentials = form.bool("IncludeCredentials")?;
    let ui_editable = form.bool("UiEditable")?;
    let friendly_name = form.get("FriendlyName");
    let svc = ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        tx.update_service(&svc, friendly_name, include_credentials, ui_editable)
    })?;
    Ok(json_reply(200, &json::service(&ctx.base, &svc)))
}

fn delete(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        tx.delete_service(&svc)
    })?;
    Ok(no_content())
}

/// The requested resource as Twilio names it in a 404: the path without `/v1`.
fn resource(ctx: &Ctx<'_, '_, '_>) -> String {
    let p = ctx.path.strip_prefix("/v1").unwrap_or(&ctx.path);
    p.to_string()
}

/// 404/20404 `The requested resource /Services/… was not found` for this request.
pub(super) fn not_found(ctx: &Ctx<'_, '_, '_>) -> ApiError {
    ApiError::not_found(&resource(ctx))
}

/// The same 404 as a store error, for lookups inside a write transaction.
pub(super) fn not_found_in_tx(ctx: &Ctx<'_, '_, '_>) -> StoreError {
    StoreError::NotFound(not_found(ctx).message)
}

/// The caller's service named by SID or unique name, else 404.
pub(super) fn service(
    ctx: &Ctx<'_, '_, '_>,
    lookup: &Lookup,
    sid_or_name: &str,
) -> ApiResult<Service> {
    lookup
        .find_service(ctx.account_sid(), sid_or_name)?
        .ok_or_else(|| not_found(ctx))
}

/// [`service`] inside a write transaction.
pub(super) fn service_in(
    ctx: &Ctx<'_, '_, '_>,
    tx: &Tx<'_>,
    sid_or_name: &str,
) -> Result<Service, StoreError> {
    tx.find_service(ctx.account_sid(), sid_or_name)?
        .ok_or_else(|| not_found_in_tx(ctx))
}

/// One page of `rows` (sort key, row) in Twilio's list envelope ([`json::page`]). Only the
/// rows on the requested page are rendered, so listing stays cheap however long the list.
pub(super) fn paged<T>(
    ctx: &Ctx<'_, '_, '_>,
    key: &str,
    mut rows: Vec<(String, T)>,
    render: impl Fn(&T) -> ApiResult<Value>,
) -> ApiResult<Reply> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (start, end) = window(ctx, &rows);
    let items = rows
        .into_iter()
        .enumerate()
        .map(|(i, (k, row))| {
            let v = if (start..end).contains(&i) {
                render(&row)?
            } else {
                Value::Null
            };
            Ok((k, v))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    json::page(ctx, key, items)
}

/// The index range [`json::page`] will show for these parameters (same rules: `PageSize`
/// default 50, `PageToken` = `PT` + the last key of the previous page). For parameters it
/// refuses, nothing needs rendering.
fn window<T>(ctx: &Ctx<'_, '_, '_>, rows: &[(String, T)]) -> (usize, usize) {
    let size = match ctx.query.get("PageSize") {
        None => json::DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=json::MAX_PAGE_SIZE).contains(&n) => n,
            _ => return (0, 0),
        },
    };
    let start = match ctx.query.get("PageToken") {
        None => 0,
        Some(t) => match t.strip_prefix("PT") {
            Some(after) => rows.partition_point(|(k, _)| k.as_str() <= after),
            None => return (0, 0),
        },
    };
    (start, (start + size).min(rows.len()))
}
