//! Accounts in Twilio's `/2010-04-01/Accounts` shape (subaccounts), API keys
//! (`/2010-04-01/Accounts/{AccountSid}/Keys`) and auth-token rotation (`/v1/AuthTokens/…`,
//! Twilio's Accounts v1 shape).
//!
//! Rules:
//! * Every endpoint here needs the account's **auth token**: a request authenticated with an
//!   API key gets 403 (20403), as Twilio's standard keys cannot manage accounts or keys.
//! * A caller sees itself and its own subaccounts; any other account answers 404 (20404),
//!   never 403, so that account SIDs cannot be probed.
//! * Only a main account creates subaccounts (a subaccount gets 403). The owner changes a
//!   subaccount's `Status` (`active`, `suspended`, `closed`; closed is final); an account may
//!   rename itself but not change its own status.
//! * The 2010-04-01 API writes dates as RFC 2822 (`Thu, 26 Nov 2026 21:00:00 +0000`) and pages
//!   with relative `*_uri` fields and `Page`/`PageSize`; the v1 token endpoints use ISO 8601
//!   and absolute `url`s.

use super::error::{ApiError, ApiResult};
use super::form::{Params, encode};
use super::json::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::{Ctx, Route, json_reply, no_content};
use crate::http::server::Reply;
use crate::model::time::{http_date, iso8601};
use crate::store::{Account, ApiKey};
use serde_json::{Value, json};

/// Longest account `FriendlyName`.
pub const MAX_ACCOUNT_NAME: usize = 255;
/// Longest API key `FriendlyName` (Twilio: "up to 64 characters").
pub const MAX_KEY_NAME: usize = 64;

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/2010-04-01/Accounts",
        handler: list_accounts,
    },
    Route {
        method: "POST",
        pattern: "/2010-04-01/Accounts",
        handler: create_account,
    },
    Route {
        method: "GET",
        pattern: "/2010-04-01/Accounts/{}",
        handler: fetch_account,
    },
    Route {
        method: "POST",
        pattern: "/2010-04-01/Accounts/{}",
        handler: update_account,
    },
    Route {
        method: "GET",
        pattern: "/2010-04-01/Accounts/{}/Keys",
        handler: list_keys,
    },
    Route {
        method: "POST",
        pattern: "/2010-04-01/Accounts/{}/Keys",
        handler: create_key,
    },
    Route {
        method: "GET",
        pattern: "/2010-04-01/Accounts/{}/Keys/{}",
        handler: fetch_key,
    },
    Route {
        method: "POST",
        pattern: "/2010-04-01/Accounts/{}/Keys/{}",
        handler: update_key,
    },
    Route {
        method: "DELETE",
        pattern: "/2010-04-01/Accounts/{}/Keys/{}",
        handler: delete_key,
    },
    Route {
        method: "POST",
        pattern: "/v1/AuthTokens/Secondary",
        handler: create_secondary,
    },
    Route {
        method: "DELETE",
        pattern: "/v1/AuthTokens/Secondary",
        handler: delete_secondary,
    },
    Route {
        method: "POST",
        pattern: "/v1/AuthTokens/Promote",
        handler: promote,
    },
];

/// Formats seconds since the Unix epoch as RFC 2822, as the 2010-04-01 API writes dates:
/// `Thu, 26 Nov 2026 21:00:00 +0000`.
pub fn rfc2822(unix_secs: u64) -> String {
    let d = http_date(unix_secs);
    match d.strip_suffix("GMT") {
        Some(head) => format!("{head}+0000"),
        None => d,
    }
}

/// Twilio's default subaccount name: `SubAccount Created at YYYY-MM-DD HH:MM am|pm` (UTC).
fn default_subaccount_name(unix_secs: u64) -> String {
    let iso = iso8601(unix_secs); // YYYY-MM-DDTHH:MM:SSZ
    let date = &iso[..10];
    let hour: u32 = iso[11..13].parse().unwrap_or(0);
    let minute = &iso[14..16];
    let (h12, meridian) = match hour {
        0 => (12, "am"),
        1..=11 => (hour, "am"),
        12 => (12, "pm"),
        _ => (hour - 12, "pm"),
    };
    format!("SubAccount Created at {date} {h12:02}:{minute} {meridian}")
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(403, 20403, message)
}

/// Refuses callers authenticated with an API key.
fn require_auth_token(ctx: &Ctx<'_, '_, '_>) -> ApiResult<()> {
    // SECURITY: an API key is a credential to *use* an account's resources. It must not be
    // able to read or rotate the auth token (which would outlive the key's deletion), create
    // further keys, or manage subaccounts. Only the account's own auth token can.
    match &ctx.caller.api_key {
        Some(key) => Err(forbidden(format!(
            "API key {key} cannot manage accounts, API keys or auth tokens; authenticate with the account SID and auth token"
        ))),
        None => Ok(()),
    }
}

/// The account `sid` when it is the caller or one of the caller's subaccounts; else 404.
fn visible_account(ctx: &Ctx<'_, '_, '_>, sid: &str) -> ApiResult<Account> {
    let caller = ctx.account_sid();
    match ctx.store.read()?.account(sid)? {
        // SECURITY: another account's SID answers exactly like an unknown one.
        Some(a) if a.sid == caller || a.owner_sid.as_deref() == Some(caller) => Ok(a),
        _ => Err(ApiError::not_found(&ctx.path)),
    }
}

fn friendly_name(params: &Params, max: usize) -> ApiResult<Option<String>> {
    match params.get("FriendlyName") {
        None => Ok(None),
        Some(n) if n.chars().count() > max => Err(ApiError::invalid(format!(
            "FriendlyName must be at most {max} characters"
        ))),
        Some(n) => {
            crate::model::text::check_name("FriendlyName", n)?;
            Ok(Some(n.to_string()))
        }
    }
}

/// The 2010-04-01 Account resource.
pub fn account_json(a: &Account) -> Value {
    let uri = format!("/2010-04-01/Accounts/{}", a.sid);
    json!({
        "sid": a.sid,
        "owner_account_sid": a.owner_sid.as_deref().unwrap_or(&a.sid),
        "friendly_name": a.friendly_name,
        "status": a.status,
        "type": "Full",
        "auth_token": a.auth_token,
        "date_created": rfc2822(a.date_created),
        "date_updated": rfc2822(a.date_updated),
        "uri": format!("{uri}.json"),
        "subresource_uris": {
            "keys": format!("{uri}/Keys.json"),
        },
    })
}

/// The 2010-04-01 Key resource (the secret is never part of it).
pub fn key_json(k: &ApiKey) -> Value {
    json!({
        "sid": k.sid,
        "friendly_name": k.friendly_name,
        "date_created": rfc2822(k.date_created),
        "date_updated": rfc2822(k.date_updated),
    })
}

/// One page in the 2010-04-01 list shape: the array under `key` plus `start`, `end`, `page`,
/// `page_size` and relative `uri`, `first_page_uri`, `next_page_uri`, `previous_page_uri`.
/// `list_uri` is the relative list path with `.json`; `filters` are echoed in every URI.
fn page_2010(
    query: &Params,
    list_uri: &str,
    filters: &[(&str, &str)],
    key: &str,
    items: Vec<Value>,
) -> ApiResult<Reply> {
    let size = match query.get("PageSize") {
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
    let page = match query.get("Page") {
        None => 0,
        Some(p) => p.parse::<usize>().map_err(|_| {
            ApiError::invalid(format!("Page must be a non-negative integer, not {p:?}"))
        })?,
    };
    let start = page.saturating_mul(size);
    let from = start.min(items.len());
    let to = start.saturating_add(size).min(items.len());
    let extra: String = filters
        .iter()
        .map(|(k, v)| format!("&{k}={}", encode(v)))
        .collect();
    let uri = |p: usize| format!("{list_uri}?PageSize={size}&Page={p}{extra}");
    let next = (to < items.len()).then(|| uri(page + 1));
    let previous = (page > 0).then(|| uri(page - 1));
    let count = to - from;
    let values: Vec<Value> = items[from..to].to_vec();
    let mut body = serde_json::Map::new();
    body.insert(key.to_string(), Value::Array(values));
    body.insert(
        "end".into(),
        json!(if count == 0 { start } else { start + count - 1 }),
    );
    body.insert("first_page_uri".into(), json!(uri(0)));
    body.insert("next_page_uri".into(), json!(next));
    body.insert("page".into(), json!(page));
    body.insert("page_size".into(), json!(size));
    body.insert("previous_page_uri".into(), json!(previous));
    body.insert("start".into(), json!(start));
    body.insert("uri".into(), json!(uri(page)));
    Ok(json_reply(200, &Value::Object(body)))
}

/// `GET /2010-04-01/Accounts`: the caller, then its subaccounts (oldest first). Filters
/// `FriendlyName` (exact) and `Status`.
fn list_accounts(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let lookup = ctx.store.read()?;
    let me = lookup
        .account(ctx.account_sid())?
        .ok_or_else(|| ApiError::not_found(&ctx.path))?;
    let mut subs = lookup.subaccounts(&me.sid)?;
    subs.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
    let name = ctx.query.get("FriendlyName").map(str::to_string);
    let status = ctx.query.get("Status").map(str::to_string);
    let items: Vec<Value> = std::iter::once(me)
        .chain(subs)
        .filter(|a| name.as_deref().is_none_or(|n| a.friendly_name == n))
        .filter(|a| status.as_deref().is_none_or(|s| a.status == s))
        .map(|a| account_json(&a))
        .collect();
    let mut filters = Vec::new();
    if let Some(n) = &name {
        filters.push(("FriendlyName", n.as_str()));
    }
    if let Some(s) = &status {
        filters.push(("Status", s.as_str()));
    }
    page_2010(
        &ctx.query,
        "/2010-04-01/Accounts.json",
        &filters,
        "accounts",
        items,
    )
}

/// `POST /2010-04-01/Accounts`: creates a subaccount of the calling main account (201).
fn create_account(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    if ctx.caller.account.owner_sid.is_some() {
        return Err(forbidden(
            "a subaccount cannot create subaccounts; use the main account's credentials",
        ));
    }
    let params = ctx.form()?;
    let name = friendly_name(&params, MAX_ACCOUNT_NAME)?.filter(|n| !n.is_empty());
    let owner = ctx.caller.account.sid.clone();
    let acct = ctx.store.write(|tx| {
        let name = name.unwrap_or_else(|| default_subaccount_name(tx.now()));
        tx.create_subaccount(&owner, &name)
    })?;
    Ok(json_reply(201, &account_json(&acct)))
}

/// `GET /2010-04-01/Accounts/{Sid}`: the caller itself or one of its subaccounts.
fn fetch_account(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let acct = visible_account(ctx, &args[0])?;
    Ok(json_reply(200, &account_json(&acct)))
}

/// `POST /2010-04-01/Accounts/{Sid}`: `FriendlyName` (the caller or its subaccount) and
/// `Status` (only the owner, on its subaccount; `closed` is final).
fn update_account(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let target = visible_account(ctx, &args[0])?;
    let params = ctx.form()?;
    let name = friendly_name(&params, MAX_ACCOUNT_NAME)?;
    let status = params.get("Status").map(str::to_string);
    if let Some(s) = &status
        && !matches!(s.as_str(), "active" | "suspended" | "closed")
    {
        return Err(ApiError::invalid(format!(
            "Status must be active, suspended or closed, not {s:?}"
        )));
    }
    // SECURITY: an account cannot change its own status (a subaccount would otherwise
    // reactivate itself); only the owning main account suspends, reactivates or closes it.
    if status.is_some() && target.sid == ctx.caller.account.sid {
        return Err(forbidden(
            "an account cannot change its own Status; the owning main account changes a subaccount's Status",
        ));
    }
    let changes_closed = name.is_some() || status.as_deref().is_some_and(|s| s != "closed");
    if target.status == "closed" && changes_closed {
        return Err(ApiError::invalid(format!(
            "Account {} is closed; a closed account cannot be reopened or changed",
            target.sid
        )));
    }
    let acct = ctx
        .store
        .write(|tx| tx.update_account(&target.sid, name.as_deref(), status.as_deref()))?;
    Ok(json_reply(200, &account_json(&acct)))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Keys`.
fn list_keys(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let acct = visible_account(ctx, &args[0])?;
    let mut keys = ctx.store.read()?.api_keys(&acct.sid)?;
    keys.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
    let items = keys.iter().map(key_json).collect();
    let list_uri = format!("/2010-04-01/Accounts/{}/Keys.json", acct.sid);
    page_2010(&ctx.query, &list_uri, &[], "keys", items)
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Keys`: 201 with the secret, shown only here.
fn create_key(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let acct = visible_account(ctx, &args[0])?;
    let params = ctx.form()?;
    let name = friendly_name(&params, MAX_KEY_NAME)?.unwrap_or_default();
    let (key, secret) = ctx.store.write(|tx| tx.create_api_key(&acct.sid, &name))?;
    let mut body = key_json(&key);
    body["secret"] = json!(secret);
    Ok(json_reply(201, &body))
}

/// The key `key_sid` of the (visible) account `account_sid`; else 404.
fn visible_key(ctx: &Ctx<'_, '_, '_>, account_sid: &str, key_sid: &str) -> ApiResult<ApiKey> {
    let acct = visible_account(ctx, account_sid)?;
    match ctx.store.read()?.api_key(key_sid)? {
        Some(k) if k.account_sid == acct.sid => Ok(k),
        _ => Err(ApiError::not_found(&ctx.path)),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}`.
fn fetch_key(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let key = visible_key(ctx, &args[0], &args[1])?;
    Ok(json_reply(200, &key_json(&key)))
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}`: renames the key.
fn update_key(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let key = visible_key(ctx, &args[0], &args[1])?;
    let params = ctx.form()?;
    let Some(name) = friendly_name(&params, MAX_KEY_NAME)? else {
        return Ok(json_reply(200, &key_json(&key)));
    };
    let key = ctx
        .store
        .write(|tx| tx.rename_api_key(&key.account_sid, &key.sid, &name))?;
    Ok(json_reply(200, &key_json(&key)))
}

/// `DELETE /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}`: 204; the key stops working at once.
fn delete_key(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let key = visible_key(ctx, &args[0], &args[1])?;
    ctx.store
        .write(|tx| tx.delete_api_key(&key.account_sid, &key.sid))?;
    Ok(no_content())
}

/// `POST /v1/AuthTokens/Secondary`: creates (or replaces) the caller's secondary token (201).
/// It does not authenticate until promoted.
fn create_secondary(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let sid = ctx.account_sid().to_string();
    let acct = ctx.store.write(|tx| tx.create_secondary_token(&sid))?;
    Ok(json_reply(
        201,
        &json!({
            "account_sid": acct.sid,
            "date_created": iso8601(acct.date_updated),
            "date_updated": iso8601(acct.date_updated),
            "secondary_auth_token": acct.secondary_token,
            "url": format!("{}/v1/AuthTokens/Secondary", ctx.base),
        }),
    ))
}

/// `DELETE /v1/AuthTokens/Secondary`: 204; 404 when there is none.
fn delete_secondary(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let sid = ctx.account_sid().to_string();
    ctx.store.write(|tx| tx.delete_secondary_token(&sid))?;
    Ok(no_content())
}

/// `POST /v1/AuthTokens/Promote`: the secondary token becomes the auth token (200). The old
/// token stops working at once, for the API and for protected-asset signatures.
fn promote(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    require_auth_token(ctx)?;
    let sid = ctx.account_sid().to_string();
    let acct = ctx.store.write(|tx| tx.promote_secondary_token(&sid))?;
    Ok(json_reply(
        200,
        &json!({
            "account_sid": acct.sid,
            "auth_token": acct.auth_token,
            "date_created": iso8601(acct.date_created),
            "date_updated": iso8601(acct.date_updated),
            "url": format!("{}/v1/AuthTokens/Promote", ctx.base),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822(784_111_777), "Sun, 06 Nov 1994 08:49:37 +0000");
        assert_eq!(
            default_subaccount_name(1_541_880_000),
            "SubAccount Created at 2018-11-10 08:00 pm"
        );
        assert_eq!(
            default_subaccount_name(0),
            "SubAccount Created at 1970-01-01 12:00 am"
        );
    }

    #[test]
    fn paging_2010() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let q = Params::parse("PageSize=2&Page=1");
        let r = page_2010(
            &q,
            "/2010-04-01/Accounts.json",
            &[("Status", "active")],
            "accounts",
            items,
        )
        .unwrap();
        let crate::http::server::Body::Bytes(b) = r.body else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["accounts"], json!([2, 3]));
        assert_eq!(v["start"], 2);
        assert_eq!(v["end"], 3);
        assert_eq!(v["page"], 1);
        assert_eq!(v["page_size"], 2);
        assert_eq!(
            v["uri"],
            "/2010-04-01/Accounts.json?PageSize=2&Page=1&Status=active"
        );
        assert_eq!(
            v["next_page_uri"],
            "/2010-04-01/Accounts.json?PageSize=2&Page=2&Status=active"
        );
        assert_eq!(
            v["previous_page_uri"],
            "/2010-04-01/Accounts.json?PageSize=2&Page=0&Status=active"
        );
        assert!(page_2010(&Params::parse("PageSize=0"), "/x", &[], "k", vec![]).is_err());
        assert!(page_2010(&Params::parse("Page=-1"), "/x", &[], "k", vec![]).is_err());
    }
}
