//! Builds and their status.
//!
//! * `POST /v1/Services/{S}/Builds`: `AssetVersions` (repeated, or `AssetVersions[]`),
//!   `FunctionVersions` (must be empty: assetd hosts assets only), `Dependencies` (a JSON
//!   array, bare or wrapped in one more pair of quotes as serverless-api sends it) and
//!   `Runtime` (default [`DEFAULT_RUNTIME`](crate::model::limits::DEFAULT_RUNTIME)). Every limit is checked here (at least one version, counts, sizes, one version
//!   per path, versions of this service only) and a failure is 400/20001 naming the limit and
//!   the path. A valid build answers 201 `building` (embedding the version objects as
//!   Twilio's does) and is completed in the background by [`crate::builder`]; past the
//!   account's builds per hour, 429/20429 with `Retry-After`.
//! * `GET …/Builds`, `GET …/Builds/{Sid}`, `GET …/Builds/{Sid}/Status`.
//! * `DELETE …/Builds/{Sid}` → 204; 409 while the build is active on an environment.

use super::error::{ApiError, ApiResult};
use super::form::Params;
use super::services::{not_found, not_found_in_tx, paged, service, service_in};
use super::{Ctx, Route, json, json_reply, no_content};
use crate::http::server::Reply;
use crate::model::{Sid, SidKind};
use crate::store::{AssetVersion, Build, Lookup};
use serde_json::{Value, json};

/// Longest accepted `Runtime` value.
const MAX_RUNTIME: usize = 64;

const BUILDS: &str = "/v1/Services/{}/Builds";
const BUILD: &str = "/v1/Services/{}/Builds/{}";

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: BUILDS,
        handler: list,
    },
    Route {
        method: "POST",
        pattern: BUILDS,
        handler: create,
    },
    Route {
        method: "GET",
        pattern: BUILD,
        handler: fetch,
    },
    Route {
        method: "DELETE",
        pattern: BUILD,
        handler: delete,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Builds/{}/Status",
        handler: status,
    },
];

/// The build's JSON with its version objects embedded (a version that no longer exists is
/// left out).
fn build_json(base: &str, lookup: &Lookup, b: &Build) -> ApiResult<Value> {
    let mut versions: Vec<AssetVersion> = Vec::with_capacity(b.asset_versions.len());
    for sid in &b.asset_versions {
        if let Some(v) = lookup.version(sid)? {
            versions.push(v);
        }
    }
    Ok(json::build(base, b, &versions))
}

/// The caller's build `args[1]` of service `args[0]`, else 404.
fn build(ctx: &Ctx<'_, '_, '_>, lookup: &Lookup, args: &[String]) -> ApiResult<Build> {
    let svc = service(ctx, lookup, &args[0])?;
    let sid = Sid::parse(SidKind::Build, &args[1]).ok_or_else(|| not_found(ctx))?;
    lookup
        .service_build(&svc.sid, sid.as_str())?
        .ok_or_else(|| not_found(ctx))
}

fn list(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let svc = service(ctx, &lookup, &args[0])?;
    let rows = lookup
        .builds(&svc.sid)?
        .into_iter()
        .map(|b| (json::sort_key(b.date_created, &b.sid), b))
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "builds", rows, |b| build_json(&base, &lookup, b))
}

/// What a build create asks for, checked before any store work.
struct NewBuild {
    versions: Vec<String>,
    dependencies: Value,
    runtime: Option<String>,
}

fn parse_create(form: &Params) -> ApiResult<NewBuild> {
    if form
        .all("FunctionVersions")
        .iter()
        .any(|v| !v.trim().is_empty())
    {
        return Err(ApiError::invalid(super::functions::ASSETS_ONLY));
    }
    let versions = form
        .all("AssetVersions")
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            Sid::parse(SidKind::Version, v.trim())
                .map(|s| s.to_string())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "AssetVersions value {v:?} is not an Asset Version SID (ZN…)"
                    ))
                })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let dependencies = parse_dependencies(form.get("Dependencies"))?;
    let runtime = match form.get("Runtime").map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > MAX_RUNTIME => {
            return Err(ApiError::invalid(format!(
                "Runtime must be at most {MAX_RUNTIME} characters"
            )));
        }
        r => r.map(str::to_string),
    };
    Ok(NewBuild {
        versions,
        dependencies,
        runtime,
    })
}

/// `Dependencies` as a JSON array of `{name, version}` objects. Accepts the bare form
/// `[{…}]`, a JSON string holding it, and serverless-api's `"[{…}]"` (the array between one
/// more pair of unescaped quotes). Absent or empty is `[]`.
pub fn parse_dependencies(raw: Option<&str>) -> ApiResult<Value> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(json!([]));
    };
    let bad = |why: String| {
        ApiError::invalid(format!(
            "Dependencies must be a JSON array of {{\"name\": …, \"version\": …}} objects: {why}"
        ))
    };
    let parsed = match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(inner)) => {
            serde_json::from_str(inner.trim()).map_err(|e| bad(e.to_string()))?
        }
        Ok(v) => v,
        Err(e) => match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => serde_json::from_str(inner.trim()).map_err(|e| bad(e.to_string()))?,
            None => return Err(bad(e.to_string())),
        },
    };
    let Value::Array(items) = &parsed else {
        return Err(bad("not an array".into()));
    };
    for item in items {
        let name_ok = item
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let version_ok = item.get("version").is_none_or(Value::is_string);
        if !item.is_object() || !name_ok || !version_ok {
            return Err(bad(format!(
                "{item} needs a non-empty string name and a string version"
            )));
        }
    }
    Ok(parsed)
}

fn create(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let NewBuild {
        versions,
        dependencies,
        runtime,
    } = parse_create(&form)?;
    let build = ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        tx.create_limited_build(
            &svc,
            &versions,
            dependencies,
            runtime,
            ctx.config.builds_per_hour,
        )
    })?;
    ctx.builder.enqueue(build.sid.clone());
    let lookup = ctx.store.read()?;
    Ok(json_reply(201, &build_json(&ctx.base, &lookup, &build)?))
}

fn fetch(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let b = build(ctx, &lookup, args)?;
    Ok(json_reply(200, &build_json(&ctx.base, &lookup, &b)?))
}

fn status(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let b = build(ctx, &ctx.store.read()?, args)?;
    Ok(json_reply(200, &json::build_status(&ctx.base, &b)))
}

fn delete(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        let sid = Sid::parse(SidKind::Build, &args[1]).ok_or_else(|| not_found_in_tx(ctx))?;
        let b = tx
            .service_build(&svc.sid, sid.as_str())?
            .ok_or_else(|| not_found_in_tx(ctx))?;
        tx.delete_build(&b)
    })?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::parse_dependencies;
    use serde_json::json;

    #[test]
    fn dependencies_bare_quoted_and_invalid() {
        let want = json!([{"name": "twilio", "version": "3.29.2"}]);
        let bare = r#"[{"name":"twilio","version":"3.29.2"}]"#;
        assert_eq!(parse_dependencies(Some(bare)).unwrap(), want);
        // serverless-api: `"${JSON.stringify(dependencies)}"`.
        assert_eq!(
            parse_dependencies(Some(&format!("\"{bare}\""))).unwrap(),
            want
        );
        // A proper JSON string holding the array.
        let escaped = serde_json::to_string(bare).unwrap();
        assert_eq!(parse_dependencies(Some(&escaped)).unwrap(), want);
        assert_eq!(parse_dependencies(None).unwrap(), json!([]));
        assert_eq!(parse_dependencies(Some(" ")).unwrap(), json!([]));
        for bad in [
            "{",
            "{\"name\":\"x\"}",
            "[1]",
            "[{\"version\":\"1\"}]",
            "\"[\"",
            "[{\"name\":\"x\",\"version\":1}]",
        ] {
            let e = parse_dependencies(Some(bad)).unwrap_err();
            assert_eq!((e.status, e.code), (400, 20001), "{bad}");
        }
    }
}
