//! Everyday commands over the API: `list`, `promote`, `rollback`.

use super::CliResult;
use super::remote;
use argh::FromArgs;
use serde_json::Value;

/// List services, environments, builds or assets.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// services, environments, builds or assets
    #[argh(positional)]
    what: String,
    /// the service (unique name or SID), for environments, builds and assets
    #[argh(option)]
    service: Option<String>,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
}

/// A string field as printed: `-` when absent; characters the text policy refuses (control,
/// bidi, zero-width) escaped, since stores written before the policy may hold them.
fn s(v: &Value) -> String {
    // SECURITY: stored text never reaches the terminal raw (an escape sequence could drive it).
    crate::model::text::escape_for_terminal(v.as_str().unwrap_or("-"))
}

pub fn list(a: ListArgs) -> CliResult {
    let c = remote::connect_with(None)?;
    let need_service = || -> Result<Value, Box<dyn std::error::Error>> {
        let name = a
            .service
            .as_deref()
            .ok_or("this list needs --service NAME")?;
        Ok(remote::service(&c, name)?)
    };
    let envs_of = |svc: &Value| {
        c.list(
            &format!("/v1/Services/{}/Environments", s(&svc["sid"])),
            "environments",
        )
    };
    let env_name = |e: &Value| {
        if e["domain_suffix"].is_null() {
            "production".to_string()
        } else {
            s(&e["domain_suffix"])
        }
    };
    let (rows, header, noun): (Vec<Value>, Vec<String>, &str) = match a.what.as_str() {
        "services" => {
            let v = c.list("/v1/Services", "services")?;
            let lines: Vec<String> = v
                .iter()
                .map(|v| {
                    format!(
                        "{:<34}  {:<30}  {}",
                        s(&v["sid"]),
                        s(&v["unique_name"]),
                        s(&v["domain_base"])
                    )
                })
                .collect();
            (
                v,
                std::iter::once(format!(
                    "{:<34}  {:<30}  {}",
                    "SID", "UNIQUE NAME", "DOMAIN BASE"
                ))
                .chain(lines)
                .collect(),
                "service",
            )
        }
        "environments" => {
            let svc = need_service()?;
            let v = envs_of(&svc)?;
            let lines: Vec<String> = v
                .iter()
                .map(|e| {
                    format!(
                        "{:<34}  {:<12}  {:<44}  {}",
                        s(&e["sid"]),
                        env_name(e),
                        crate::model::text::escape_for_terminal(&remote::environment_url(&c, e)),
                        s(&e["build_sid"])
                    )
                })
                .collect();
            (
                v,
                std::iter::once(format!(
                    "{:<34}  {:<12}  {:<44}  {}",
                    "SID", "ENVIRONMENT", "URL", "ACTIVE BUILD"
                ))
                .chain(lines)
                .collect(),
                "environment",
            )
        }
        "builds" => {
            let svc = need_service()?;
            let envs = envs_of(&svc)?;
            let v = c.list(&format!("/v1/Services/{}/Builds", s(&svc["sid"])), "builds")?;
            let lines: Vec<String> = v
                .iter()
                .map(|b| {
                    let n = b["asset_versions"].as_array().map(Vec::len).unwrap_or(0);
                    let live: Vec<String> = envs
                        .iter()
                        .filter(|e| e["build_sid"] == b["sid"])
                        .map(env_name)
                        .collect();
                    format!(
                        "{:<34}  {:<10}  {n:>6}  {:<20}  {}",
                        s(&b["sid"]),
                        s(&b["status"]),
                        s(&b["date_created"]),
                        if live.is_empty() {
                            String::new()
                        } else {
                            format!("* active on {}", live.join(", "))
                        }
                    )
                })
                .collect();
            (
                v,
                std::iter::once(format!(
                    "{:<34}  {:<10}  {:>6}  {:<20}  {}",
                    "SID", "STATUS", "FILES", "CREATED", "ACTIVE"
                ))
                .chain(lines)
                .collect(),
                "build",
            )
        }
        "assets" => {
            let svc = need_service()?;
            let sid = s(&svc["sid"]);
            // Visibility and where each path is live, from the environments' active builds.
            let mut live: std::collections::BTreeMap<String, (String, Vec<String>)> =
                Default::default();
            for e in envs_of(&svc)? {
                if let Some(b) = e["build_sid"].as_str() {
                    for (path, (_, vis)) in remote::build_files(&c, &sid, b)? {
                        let entry = live.entry(path).or_insert((vis, Vec::new()));
                        entry.1.push(env_name(&e));
                    }
                }
            }
            let mut v = c.list(&format!("/v1/Services/{sid}/Assets"), "assets")?;
            v.sort_by(|x, y| s(&x["friendly_name"]).cmp(&s(&y["friendly_name"])));
            let lines: Vec<String> = v
                .iter()
                .map(|asset| {
                    let path = s(&asset["friendly_name"]);
                    let (vis, envs) = live
                        .get(asset["friendly_name"].as_str().unwrap_or(""))
                        .map(|(v, e)| (v.clone(), e.join(", ")))
                        .unwrap_or(("-".into(), "(not deployed)".into()));
                    format!(
                        "{:<34}  {:<10}  {:<40}  {envs}",
                        s(&asset["sid"]),
                        vis,
                        path
                    )
                })
                .collect();
            (
                v,
                std::iter::once(format!(
                    "{:<34}  {:<10}  {:<40}  {}",
                    "SID", "VISIBILITY", "PATH", "LIVE ON"
                ))
                .chain(lines)
                .collect(),
                "asset",
            )
        }
        other => {
            return Err(format!(
                "cannot list {other:?}: choose services, environments, builds or assets"
            )
            .into());
        }
    };
    if a.json {
        println!("{}", Value::Array(rows));
        return Ok(());
    }
    for line in &header {
        println!("{}", line.trim_end());
    }
    println!("{}", super::deploy::plural(rows.len(), noun));
    Ok(())
}

/// Deploy the build active on one environment to another (created when missing); no upload.
#[derive(FromArgs)]
#[argh(subcommand, name = "promote")]
pub struct PromoteArgs {
    /// the service (unique name or SID)
    #[argh(option)]
    service: String,
    /// the source environment's domain suffix (or ZE… SID)
    #[argh(option)]
    from: String,
    /// the target environment's domain suffix (or ZE… SID); `production` means no suffix
    #[argh(option)]
    to: String,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
}

use remote::suffix;

/// Deploys `build` to `env` and says what changed against the build it replaces (text or
/// JSON); an already active build is reported, not an error.
fn deploy(
    c: &crate::client::Client,
    service_sid: &str,
    env: &Value,
    build: &str,
    verb: &str,
    json: bool,
) -> CliResult {
    let url = crate::model::text::escape_for_terminal(&remote::environment_url(c, env));
    let name = env["domain_suffix"].as_str().unwrap_or("production");
    let name = crate::model::text::escape_for_terminal(name);
    let current = env["build_sid"].as_str().map(str::to_string);
    let path = format!(
        "/v1/Services/{service_sid}/Environments/{}/Deployments",
        s(&env["sid"])
    );
    let new_files = remote::build_files(c, service_sid, build)?;
    let old_files = match &current {
        Some(b) => remote::build_files(c, service_sid, b)?,
        None => Default::default(),
    };
    let (added, changed, removed) = remote::diff(&old_files, &new_files);
    let (deployment, already) = match c.post_form(&path, &[("BuildSid", build)]) {
        Ok(d) => (Some(s(&d["sid"])), false),
        Err(e) if e.status == Some(409) => (None, true),
        Err(e) => return Err(e.into()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "environment": name, "environment_sid": env["sid"], "environment_url": url,
                "previous_build_sid": current, "build_sid": build, "deployment_sid": deployment,
                "already_active": already, "added": added, "changed": changed, "removed": removed,
            })
        );
        return Ok(());
    }
    if already {
        println!("build {build} is already active on {name} ({url}); nothing changed");
        return Ok(());
    }
    println!(
        "{verb} {name} ({url}) from build {} to build {build} (deployment {})",
        current.as_deref().unwrap_or("(none)"),
        deployment.unwrap_or_default()
    );
    println!(
        "  {} added, {} changed, {} removed; {} now",
        added.len(),
        changed.len(),
        removed.len(),
        super::deploy::plural(new_files.len(), "file")
    );
    for (what, paths) in [
        ("added", &added),
        ("changed", &changed),
        ("removed", &removed),
    ] {
        if !paths.is_empty() {
            println!("  {what}: {}", remote::first_few(paths));
        }
    }
    Ok(())
}

pub fn promote(a: PromoteArgs) -> CliResult {
    let c = remote::connect_with(None)?;
    let svc = remote::service(&c, &a.service)?;
    let sid = s(&svc["sid"]).to_string();
    let from = remote::find_environment(&c, &sid, suffix(&a.from))?
        .ok_or_else(|| format!("service {} has no environment {}", a.service, a.from))?;
    let build = from["build_sid"]
        .as_str()
        .ok_or_else(|| format!("environment {} has nothing deployed to promote", a.from))?
        .to_string();
    let to = remote::environment(&c, &sid, suffix(&a.to))?;
    deploy(&c, &sid, &to, &build, "promoted", a.json)
}

/// Deploy an earlier build again: the previous one by default.
#[derive(FromArgs)]
#[argh(subcommand, name = "rollback")]
pub struct RollbackArgs {
    /// the service (unique name or SID)
    #[argh(option)]
    service: String,
    /// the environment's domain suffix (or ZE… SID); `production` means no suffix
    #[argh(option)]
    environment: String,
    /// the build to return to (default: the one deployed before the current one)
    #[argh(option)]
    build: Option<String>,
    /// print JSON instead of text
    #[argh(switch)]
    json: bool,
}

pub fn rollback(a: RollbackArgs) -> CliResult {
    let c = remote::connect_with(None)?;
    let svc = remote::service(&c, &a.service)?;
    let sid = s(&svc["sid"]).to_string();
    let env = remote::find_environment(&c, &sid, suffix(&a.environment))?
        .ok_or_else(|| format!("service {} has no environment {}", a.service, a.environment))?;
    let current = env["build_sid"].as_str().map(str::to_string);
    let build = match a.build {
        Some(b) => b,
        None => {
            // Deployments come newest first. Walk back: the build deployed before the current
            // one was *first* deployed, so that a second rollback goes further back instead of
            // returning to the build just rolled away from. A deleted build is passed over.
            let deps = c.list(
                &format!(
                    "/v1/Services/{sid}/Environments/{}/Deployments",
                    s(&env["sid"])
                ),
                "deployments",
            )?;
            let builds: Vec<&str> = deps
                .iter()
                .filter_map(|d| d["build_sid"].as_str())
                .collect();
            let first = builds
                .iter()
                .rposition(|b| Some(*b) == current.as_deref())
                .map_or(0, |i| i + 1);
            let mut previous = None;
            for &b in &builds[first.min(builds.len())..] {
                if Some(b) != current.as_deref()
                    && c.exists(&format!("/v1/Services/{sid}/Builds/{b}"))?
                {
                    previous = Some(b.to_string());
                    break;
                }
            }
            previous.ok_or_else(|| {
                format!(
                    "environment {} has no earlier build to roll back to",
                    a.environment
                )
            })?
        }
    };
    deploy(&c, &sid, &env, &build, "rolled back", a.json)
}
