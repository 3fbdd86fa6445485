//! Environments, their deployments and their variables.
//!
//! * `/v1/Services/{S}/Environments[/{Sid}]`: list, create (`UniqueName`\* ≤100,
//!   `DomainSuffix` ≤16; anything else, such as the toolkit's `FriendlyName`, is ignored),
//!   fetch, delete. At most 25 per service (400/20001); a taken unique name or suffix is 409.
//!   Deleting one frees its domain and removes its deployment history and variables.
//! * `…/Environments/{E}/Deployments[/{Sid}]`: list (newest first), create (`BuildSid`\*;
//!   `IsPlugin` is accepted and ignored) → the build goes live at once; 409 when it already
//!   is. Fetch.
//! * `…/Environments/{E}/Variables[/{Sid}]`: list, create (`Key`\* ≤128 characters, unique
//!   in the environment, else 409; `Value`\* ≤450 bytes), fetch, update (`Key`, `Value`),
//!   delete.

use super::error::{ApiError, ApiResult};
use super::services::{not_found, not_found_in_tx, paged, service, service_in};
use super::{Ctx, Route, json, json_reply, no_content};
use crate::http::server::Reply;
use crate::model::time::iso8601;
use crate::model::{Sid, SidKind};
use crate::store::{Environment, Lookup, Service, StoreError, Tx, Variable};
use serde_json::{Value, json};

const ENVS: &str = "/v1/Services/{}/Environments";
const ENV: &str = "/v1/Services/{}/Environments/{}";
const DEPS: &str = "/v1/Services/{}/Environments/{}/Deployments";
const DEP: &str = "/v1/Services/{}/Environments/{}/Deployments/{}";
const VARS: &str = "/v1/Services/{}/Environments/{}/Variables";
const VAR: &str = "/v1/Services/{}/Environments/{}/Variables/{}";

pub static ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: ENVS,
        handler: list,
    },
    Route {
        method: "POST",
        pattern: ENVS,
        handler: create,
    },
    Route {
        method: "GET",
        pattern: ENV,
        handler: fetch,
    },
    Route {
        method: "DELETE",
        pattern: ENV,
        handler: delete,
    },
    Route {
        method: "GET",
        pattern: DEPS,
        handler: list_deployments,
    },
    Route {
        method: "POST",
        pattern: DEPS,
        handler: create_deployment,
    },
    Route {
        method: "GET",
        pattern: DEP,
        handler: fetch_deployment,
    },
    Route {
        method: "GET",
        pattern: VARS,
        handler: list_variables,
    },
    Route {
        method: "POST",
        pattern: VARS,
        handler: create_variable,
    },
    Route {
        method: "GET",
        pattern: VAR,
        handler: fetch_variable,
    },
    Route {
        method: "POST",
        pattern: VAR,
        handler: update_variable,
    },
    Route {
        method: "DELETE",
        pattern: VAR,
        handler: delete_variable,
    },
];

/// A Variable as Twilio spells it.
pub fn variable(base: &str, v: &Variable) -> Value {
    json!({
        "sid": v.sid,
        "account_sid": v.account_sid,
        "service_sid": v.service_sid,
        "environment_sid": v.environment_sid,
        "key": v.key,
        "value": v.value,
        "date_created": iso8601(v.date_created),
        "date_updated": iso8601(v.date_updated),
        "url": format!(
            "{base}/v1/Services/{}/Environments/{}/Variables/{}",
            v.service_sid, v.environment_sid, v.sid
        ),
    })
}

fn env_json(ctx: &Ctx<'_, '_, '_>, e: &Environment) -> Value {
    json::environment(&ctx.base, &ctx.config.base_domain, e)
}

/// The caller's service `args[0]` and its environment `args[1]` (a `ZE` SID), else 404.
pub(super) fn environment(
    ctx: &Ctx<'_, '_, '_>,
    lookup: &Lookup,
    args: &[String],
) -> ApiResult<(Service, Environment)> {
    let svc = service(ctx, lookup, &args[0])?;
    let sid = Sid::parse(SidKind::Environment, &args[1]).ok_or_else(|| not_found(ctx))?;
    let env = lookup
        .service_environment(&svc.sid, sid.as_str())?
        .ok_or_else(|| not_found(ctx))?;
    Ok((svc, env))
}

/// [`environment`] inside a write transaction.
fn environment_in(
    ctx: &Ctx<'_, '_, '_>,
    tx: &Tx<'_>,
    args: &[String],
) -> Result<Environment, StoreError> {
    let svc = service_in(ctx, tx, &args[0])?;
    let sid = Sid::parse(SidKind::Environment, &args[1]).ok_or_else(|| not_found_in_tx(ctx))?;
    tx.service_environment(&svc.sid, sid.as_str())?
        .ok_or_else(|| not_found_in_tx(ctx))
}

fn list(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let svc = service(ctx, &lookup, &args[0])?;
    let rows = lookup
        .environments(&svc.sid)?
        .into_iter()
        .map(|e| (json::sort_key(e.date_created, &e.sid), e))
        .collect();
    paged(ctx, "environments", rows, |e| Ok(env_json(ctx, e)))
}

fn create(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let unique_name = form.required("UniqueName")?;
    // The toolkit omits DomainSuffix for production; an empty one means the same.
    let suffix = form.get("DomainSuffix").filter(|s| !s.is_empty());
    let env = ctx.store.write(|tx| {
        let svc = service_in(ctx, tx, &args[0])?;
        tx.register_environment(&svc, unique_name, suffix)
    })?;
    Ok(json_reply(201, &env_json(ctx, &env)))
}

fn fetch(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let (_, env) = environment(ctx, &ctx.store.read()?, args)?;
    Ok(json_reply(200, &env_json(ctx, &env)))
}

fn delete(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    ctx.store.write(|tx| {
        let env = environment_in(ctx, tx, args)?;
        tx.delete_environment(&env)
    })?;
    Ok(no_content())
}

fn list_deployments(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let (_, env) = environment(ctx, &lookup, args)?;
    // Newest first: the key counts down as the environment's history grows.
    let rows = lookup
        .deployment_history(&env.sid)?
        .into_iter()
        .map(|(seq, d)| (format!("{:020}", u64::MAX - seq), d))
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "deployments", rows, |d| Ok(json::deployment(&base, d)))
}

fn create_deployment(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let raw = form.required("BuildSid")?;
    let build_sid = Sid::parse(SidKind::Build, raw)
        .ok_or_else(|| ApiError::invalid(format!("BuildSid {raw:?} is not a Build SID (ZB…)")))?;
    let dep = ctx.store.write(|tx| {
        let env = environment_in(ctx, tx, args)?;
        tx.deploy(&env, build_sid.as_str())
    })?;
    Ok(json_reply(201, &json::deployment(&ctx.base, &dep)))
}

fn fetch_deployment(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let (_, env) = environment(ctx, &lookup, args)?;
    let sid = Sid::parse(SidKind::Deployment, &args[2]).ok_or_else(|| not_found(ctx))?;
    let dep = lookup
        .environment_deployment(&env.sid, sid.as_str())?
        .ok_or_else(|| not_found(ctx))?;
    Ok(json_reply(200, &json::deployment(&ctx.base, &dep)))
}

fn list_variables(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let (_, env) = environment(ctx, &lookup, args)?;
    let rows = lookup
        .variables(&env.sid)?
        .into_iter()
        .map(|v| (json::sort_key(v.date_created, &v.sid), v))
        .collect();
    let base = ctx.base.clone();
    paged(ctx, "variables", rows, |v| Ok(variable(&base, v)))
}

fn create_variable(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let key = form.required("Key")?;
    let value = form
        .get("Value")
        .ok_or_else(|| ApiError::missing("Value"))?;
    let var = ctx.store.write(|tx| {
        let env = environment_in(ctx, tx, args)?;
        tx.create_variable(&env, key, value)
    })?;
    Ok(json_reply(201, &variable(&ctx.base, &var)))
}

/// The variable `args[2]` of the environment, inside a write transaction.
fn variable_in(
    ctx: &Ctx<'_, '_, '_>,
    tx: &Tx<'_>,
    args: &[String],
) -> Result<Variable, StoreError> {
    let env = environment_in(ctx, tx, args)?;
    let sid = Sid::parse(SidKind::Variable, &args[2]).ok_or_else(|| not_found_in_tx(ctx))?;
    tx.environment_variable(&env.sid, sid.as_str())?
        .ok_or_else(|| not_found_in_tx(ctx))
}

fn fetch_variable(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let lookup = ctx.store.read()?;
    let (_, env) = environment(ctx, &lookup, args)?;
    let sid = Sid::parse(SidKind::Variable, &args[2]).ok_or_else(|| not_found(ctx))?;
    let var = lookup
        .environment_variable(&env.sid, sid.as_str())?
        .ok_or_else(|| not_found(ctx))?;
    Ok(json_reply(200, &variable(&ctx.base, &var)))
}

fn update_variable(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    let form = ctx.form()?;
    let key = form.get("Key");
    let value = form.get("Value");
    let var = ctx.store.write(|tx| {
        let var = variable_in(ctx, tx, args)?;
        tx.update_variable(&var, key, value)
    })?;
    Ok(json_reply(200, &variable(&ctx.base, &var)))
}

fn delete_variable(ctx: &mut Ctx<'_, '_, '_>, args: &[String]) -> ApiResult<Reply> {
    ctx.store.write(|tx| {
        let var = variable_in(ctx, tx, args)?;
        tx.delete_variable(&var)
    })?;
    Ok(no_content())
}
