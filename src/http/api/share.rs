//! Share links (an assetd extension): `POST /v1/ShareLinks` with `Url` (a protected asset's
//! URL, host-style or path-style) and `Ttl` (seconds, at most the server's
//! `--share-max-lifetime`) answers `{url, expires, date_expires}`: the asset's URL with
//! `Expires` and `Signature`, which anyone may open until it expires.

use super::error::{ApiError, ApiResult};
use super::{Ctx, Route, json_reply};
use crate::http::server::Reply;
use crate::http::{PATH_STYLE_PREFIX, strip_port};
use crate::model::{Visibility, domain, urlencode};

pub static ROUTES: &[Route] = &[Route {
    method: "POST",
    pattern: "/v1/ShareLinks",
    handler: create,
}];

/// The environment label and the decoded asset path of an asset URL, if it is one.
fn asset_of(url: &str, base_domain: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    let raw_path = tail.split(['?', '#']).next().unwrap_or("");
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    let (label, raw_path) = match domain::label_of_host(strip_port(host), base_domain) {
        Some(label) => (label.to_ascii_lowercase(), raw_path.to_string()),
        None => {
            let rest = raw_path.strip_prefix(PATH_STYLE_PREFIX)?;
            let (label, path) = rest.split_once('/').unwrap_or((rest, ""));
            (label.to_ascii_lowercase(), format!("/{path}"))
        }
    };
    let path = urlencode::decode_path(&raw_path)?;
    Some((label, path))
}

fn create(ctx: &mut Ctx<'_, '_, '_>, _: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let url = form.required("Url")?.to_string();
    let max = ctx.config.share_max_secs;
    let ttl = match form.get("Ttl") {
        None => max.min(24 * 3600),
        Some(s) => s.parse::<u64>().ok().filter(|&t| t > 0).ok_or_else(|| {
            ApiError::invalid(format!("Ttl must be a whole number of seconds, not {s:?}"))
        })?,
    };
    if ttl > max {
        return Err(ApiError::invalid(format!(
            "Ttl {ttl} is longer than this server's share-link lifetime of {max} seconds (serve --share-max-lifetime)"
        )));
    }
    let not_shareable = || ApiError::not_found(&url);
    let (label, path) = asset_of(&url, &ctx.config.base_domain).ok_or_else(not_shareable)?;
    let lookup = ctx.store.read()?;
    let hit = lookup
        .resolve(&label, &[path.as_str()])?
        .ok_or_else(not_shareable)?;
    // SECURITY: only the owner may share its assets (another account's answer 404, as
    // everywhere in the API), and private assets are never shareable (404, as by URL).
    if hit.account_sid != ctx.caller.account.sid || hit.route.visibility == Visibility::Private {
        return Err(not_shareable());
    }
    let expires = crate::store::now().saturating_add(ttl);
    let link = crate::sign::share_url(&ctx.caller.account.auth_token, &url, expires)
        .ok_or_else(not_shareable)?;
    Ok(json_reply(
        201,
        &serde_json::json!({
            "url": link,
            "expires": expires,
            "date_expires": crate::model::time::iso8601(expires),
            "visibility": hit.route.visibility.as_str(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::asset_of;

    #[test]
    fn asset_urls() {
        let a = |u| asset_of(u, "localhost");
        assert_eq!(
            a("http://svc-1234-dev.localhost:8080/a%20b.txt"),
            Some(("svc-1234-dev".into(), "/a b.txt".into()))
        );
        assert_eq!(
            a("http://127.0.0.1:8080/e/svc-1234-dev/x/y.mp3?z"),
            Some(("svc-1234-dev".into(), "/x/y.mp3".into()))
        );
        assert_eq!(a("http://127.0.0.1:8080/v1/Services"), None);
        assert_eq!(a("ftp://svc.localhost/x"), None);
    }
}
