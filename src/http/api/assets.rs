//! Assets and the listing and fetching of their versions (versions are created by the
//! multipart upload in [`super::upload`]).
//!
//! * `/v1/Services/{S}/Assets[/{Sid}]`: list, create (`FriendlyName`\* ≤255, unique in the
//!   service, else 409), fetch, update (`FriendlyName`\*), delete. Deleting is refused (409)
//!   while a version of the asset is in the active build of an environment; versions held by
//!   other builds stay as those builds' history, the rest go with the asset.
//! * `/v1/Services/{S}/Assets/{A}/Versions[/{Sid}]`: list, fetch.

use super::error::ApiResult;
use super::services::{not_found, not_found_in_tx, paged, service, service_in};
use super::{Ctx, Route, json, json_reply, no_content};
use crate::http::server::Reply;
use crate::model::{Sid, SidKind};
use crate::store::{Asset, Lookup, StoreError, Tx};

const ASSETS: &str = "/v1/Services/{}/Assets";
const ASSET: &str = "/v1/Services/{}/Assets/{}";

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: ASSETS,
        handler: list,
    },
    Route {
        method: "POST",
        pattern: ASSETS,
        handler: create,
    },
    Route {
        method: "GET",
        pattern: ASSET,
        handler: fetch,
    },
    Route {
        method: "POST",
        pattern: ASSET,
        handler: update,
    },
    Route {
        method: "DELETE",
        pattern: ASSET,
        handler: delete,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Assets/{}/Versions",
        handler: list_versions,
    },
    Route {
        method: "GET",
        pattern: "/v1/Services/{}/Assets/{}/Versions/{}",
        handler: fetch_version,
    },
];

/// The caller's asset `args[1]` of service `args[0]`, else 404.
fn asset(ctx: &Ctx<'_, '_, '_>, lookup: &Lookup, args: &[String]) -> ApiResult<Asset> {
    let svc = service(ctx, lookup, &args[0])?;
    let sid = Sid::parse(SidKind::Asset, &args[1]).ok_or_else(|| not_found(ctx))?;
    lookup
        .service_asset(&svc.sid, sid.as_str())?
        .ok_or_else(|| not_found(ctx))
}

/// [`asset`] inside a write transaction.
fn asset_in(ctx: &Ctx<'_, '_, '_>, tx: &Tx<'_>, args: &[String]) -> Result<Asset, StoreError> {
    let svc = service_in(ctx, tx, &args[0])?;
    let sid = Sid::parse(SidKind::Asset, &args[1]).ok_or_else(|| not_found_in_tx(ctx))?;
    tx.service_asset(&svc.sid, sid.as_str())?
        .ok_or_else(|| not_found_in_tx(ctx))
}

fn list(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let svc = service(ctx, &lookup, &args[0])?;
    let rows = lookup
        .assets(&svc.sid)?
        .into_iter()
        .map(|a| (json::sort_key(a.date_created, &a.sid), a))
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "assets", rows, |a| Ok(json::asset(&base, a)))
}

fn create(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let name = form.required("FriendlyName")?;
    let asset = ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        tx.create_asset(&svc, name)
    })?;
    Ok(json_reply(201, &json::asset(&ctx.base, &asset)))
}

fn fetch(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let a = asset(ctx, &ctx.store.read()?, args)?;
    Ok(json_reply(200, &json::asset(&ctx.base, &a)))
}

fn update(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let name = form.required("FriendlyName")?;
    let a = ctx.store.write(|tx| {
        let a = asset_in(ctx, tx, args)?;
        tx.update_asset(&a, name)
    })?;
    Ok(json_reply(200, &json::asset(&ctx.base, &a)))
}

fn delete(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    ctx.store.write(|tx| {
        let a = asset_in(ctx, tx, args)?;
        tx.delete_asset(&a)
    })?;
    Ok(no_content())
}

fn list_versions(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let a = asset(ctx, &lookup, args)?;
    let rows = lookup
        .asset_versions(&a.sid)?
        .into_iter()
        .map(|v| {
            (
                json::sort_key(v.date_created, &format!("{:020}-{}", v.seq, v.sid)),
                v,
            )
        })
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "asset_versions", rows, |v| {
        Ok(json::asset_version(&base, v))
    })
}

fn fetch_version(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let a = asset(ctx, &lookup, args)?;
    let sid = Sid::parse(SidKind::Version, &args[2]).ok_or_else(|| not_found(ctx))?;
    let v = lookup
        .version(sid.as_str())?
        .filter(|v| v.asset_sid == a.sid && v.service_sid == a.service_sid)
        .ok_or_else(|| not_found(ctx))?;
    Ok(json_reply(200, &json::asset_version(&ctx.base, &v)))
}
