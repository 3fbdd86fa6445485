//! Resource JSON exactly as Twilio's Serverless v1 API spells it, and the list envelope with
//! `meta` paging.

use super::error::{ApiError, ApiResult};
use super::form::encode;
use super::{Ctx, json_reply};
use crate::http::server::Reply;
use crate::model::limits::DEFAULT_RUNTIME;
use crate::model::time::iso8601;
use crate::store::{Asset, AssetVersion, Build, Deployment, Environment, Service};
use serde_json::{Value, json};

/// Default and largest page sizes.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

pub fn service(base: &str, s: &Service) -> Value {
    let url = format!("{base}/v1/Services/{}", s.sid);
    json!({
        "sid": s.sid,
        "account_sid": s.account_sid,
        "friendly_name": s.friendly_name,
        "unique_name": s.unique_name,
        "include_credentials": s.include_credentials,
        "ui_editable": s.ui_editable,
        "domain_base": s.domain_base,
        "date_created": iso8601(s.date_created),
        "date_updated": iso8601(s.date_updated),
        "url": url,
        "links": {
            "environments": format!("{url}/Environments"),
            "functions": format!("{url}/Functions"),
            "assets": format!("{url}/Assets"),
            "builds": format!("{url}/Builds"),
        }
    })
}

/// `domain_name` is the environment label + `.` + the server's base domain.
pub fn environment(base: &str, base_domain: &str, e: &Environment) -> Value {
    let url = format!(
        "{base}/v1/Services/{}/Environments/{}",
        e.service_sid, e.sid
    );
    json!({
        "sid": e.sid,
        "account_sid": e.account_sid,
        "service_sid": e.service_sid,
        "build_sid": e.build_sid,
        "unique_name": e.unique_name,
        "domain_suffix": e.domain_suffix,
        "domain_name": format!("{}.{base_domain}", e.label),
        "custom_domain_name": null,
        "date_created": iso8601(e.date_created),
        "date_updated": iso8601(e.date_updated),
        "url": url,
        "links": {
            "variables": format!("{url}/Variables"),
            "deployments": format!("{url}/Deployments"),
            "logs": format!("{url}/Logs"),
        }
    })
}

pub fn asset(base: &str, a: &Asset) -> Value {
    let url = format!("{base}/v1/Services/{}/Assets/{}", a.service_sid, a.sid);
    json!({
        "sid": a.sid,
        "account_sid": a.account_sid,
        "service_sid": a.service_sid,
        "friendly_name": a.friendly_name,
        "date_created": iso8601(a.date_created),
        "date_updated": iso8601(a.date_updated),
        "url": url,
        "links": { "asset_versions": format!("{url}/Versions") }
    })
}

pub fn asset_version(base: &str, v: &AssetVersion) -> Value {
    json!({
        "sid": v.sid,
        "account_sid": v.account_sid,
        "service_sid": v.service_sid,
        "asset_sid": v.asset_sid,
        "path": v.path,
        "visibility": v.visibility,
        "date_created": iso8601(v.date_created),
        "url": format!("{base}/v1/Services/{}/Assets/{}/Versions/{}", v.service_sid, v.asset_sid, v.sid),
    })
}

/// Builds embed their version objects (as Twilio's responses do, not bare SIDs); `runtime` is
/// the one given at creation, else [`DEFAULT_RUNTIME`]; `function_versions` is always `[]`.
pub fn build(base: &str, b: &Build, versions: &[AssetVersion]) -> Value {
    let url = format!("{base}/v1/Services/{}/Builds/{}", b.service_sid, b.sid);
    let embedded: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "sid": v.sid,
                "account_sid": v.account_sid,
                "service_sid": v.service_sid,
                "asset_sid": v.asset_sid,
                "date_created": iso8601(v.date_created),
                "path": v.path,
                "visibility": v.visibility,
            })
        })
        .collect();
    json!({
        "sid": b.sid,
        "account_sid": b.account_sid,
        "service_sid": b.service_sid,
        "status": b.status,
        "asset_versions": embedded,
        "function_versions": [],
        "dependencies": b.dependencies,
        // Builds stored before runtimes were defaulted report the default too.
        "runtime": b.runtime.as_deref().unwrap_or(DEFAULT_RUNTIME),
        "date_created": iso8601(b.date_created),
        "date_updated": iso8601(b.date_updated),
        "url": url,
        "links": { "build_status": format!("{url}/Status") }
    })
}

pub fn build_status(base: &str, b: &Build) -> Value {
    json!({
        "sid": b.sid,
        "account_sid": b.account_sid,
        "service_sid": b.service_sid,
        "status": b.status,
        "url": format!("{base}/v1/Services/{}/Builds/{}/Status", b.service_sid, b.sid),
    })
}

pub fn deployment(base: &str, d: &Deployment) -> Value {
    json!({
        "sid": d.sid,
        "account_sid": d.account_sid,
        "service_sid": d.service_sid,
        "environment_sid": d.environment_sid,
        "build_sid": d.build_sid,
        "date_created": iso8601(d.date_created),
        "date_updated": iso8601(d.date_updated),
        "url": format!(
            "{base}/v1/Services/{}/Environments/{}/Deployments/{}",
            d.service_sid, d.environment_sid, d.sid
        ),
    })
}

/// One page of a list, in Twilio's envelope. `items` are (sort key, JSON) in list order; the
/// page token names the last key of the previous page, so paging stays correct while rows
/// are added or removed.
pub fn page(ctx: &Ctx<'_, '_, '_>, key: &str, items: Vec<(String, Value)>) -> ApiResult<Reply> {
    let size = match ctx.query.get("PageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "PageSize must be between 1 and {MAX_PAGE_SIZE}, not {s:?}"
                )));
            }
        },
    };
    let page_index: usize = ctx
        .query
        .get("Page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let start = match ctx.query.get("PageToken") {
        None => 0,
        Some(t) => {
            let after = t
                .strip_prefix("PT")
                .ok_or_else(|| ApiError::invalid(format!("PageToken {t:?} is not valid")))?;
            items.partition_point(|(k, _)| k.as_str() <= after)
        }
    };
    let end = (start + size).min(items.len());
    let list_url = format!("{}{}", ctx.base, ctx.path);
    let first = format!("{list_url}?PageSize={size}&Page=0");
    let this = match ctx.query.get("PageToken") {
        Some(t) => format!(
            "{list_url}?PageSize={size}&Page={page_index}&PageToken={}",
            encode(t)
        ),
        None => format!("{list_url}?PageSize={size}&Page={page_index}"),
    };
    let next = (end < items.len()).then(|| {
        format!(
            "{list_url}?PageSize={size}&Page={}&PageToken=PT{}",
            page_index + 1,
            encode(&items[end - 1].0)
        )
    });
    let previous = (page_index > 0 && start > 0).then(|| {
        let prev_start = start.saturating_sub(size);
        match prev_start {
            0 => format!("{list_url}?PageSize={size}&Page={}", page_index - 1),
            n => format!(
                "{list_url}?PageSize={size}&Page={}&PageToken=PT{}",
                page_index - 1,
                encode(&items[n - 1].0)
            ),
        }
    });
    let values: Vec<Value> = items[start..end].iter().map(|(_, v)| v.clone()).collect();
    let mut body = serde_json::Map::new();
    body.insert(key.to_string(), Value::Array(values));
    body.insert(
        "meta".into(),
        json!({
            "first_page_url": first,
            "key": key,
            "next_page_url": next,
            "page": page_index,
            "page_size": size,
            "previous_page_url": previous,
            "url": this,
        }),
    );
    Ok(json_reply(200, &Value::Object(body)))
}

/// The list sort key: creation time then SID, so pages are stable.
pub fn sort_key(date_created: u64, sid: &str) -> String {
    format!("{date_created:012}-{sid}")
}
