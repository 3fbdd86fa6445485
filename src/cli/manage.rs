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
    /// server URL (default: $ASSETD_URL or http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// PEM certificates to verify an https server against (a private CA or a self-signed
    /// server certificate; default $ASSETD_CA_CERT, else the built-in public roots)
    #[argh(option)]
    ca_cert: Option<std::path::PathBuf>,
    /// account SID or API key SID (default: $ASSETD_ACCOUNT_SID or $TWILIO_ACCOUNT_SID)
    #[argh(option)]
    account_sid: Option<String>,
    /// auth token or API key secret (default: $ASSETD_AUTH_TOKEN or $TWILIO_AUTH_TOKEN)
    #[argh(option)]
    auth_token: Option<String>,
}

/// A string field as printed: `-` when absent; characters the text policy refuses (control,
/// bidi, zero-width) escaped, since stores written before the policy may hold them.
fn s(v: &Value) -> String {
    // SECURITY: stored text never reaches the terminal raw (an escape sequence could drive it).
    crate::model::text::escape_for_terminal(v.as_str().unwrap_or("-"))
}

pub fn list(a: ListArgs) -> CliResult {
    let c = remote::connect(a.url, a.ca_cert, a.account_sid, a.auth_token)?;
    let need_service = || -> Result<Value, Box<dyn std::error::Error>> {
        let name = a
            .service
            .as_deref()
            .ok_or("this list needs --service NAME")?;
        Ok(remote::service(&c, name)?)
    };
    match a.what.as_str() {
        "services" => {
            for v in c.list("/v1/Services", "services")? {
                println!(
                    "{:<34}  {:<30}  {}",
                    s(&v["sid"]),
                    s(&v["unique_name"]),
                    s(&v["domain_base"])
                );
            }
        }
        "environments" => {
            let svc = need_service()?;
            for v in c.list(
                &format!("/v1/Services/{}/Environments", s(&svc["sid"])),
                "environments",
            )? {
                println!(
                    "{:<34}  {:<20}  {:<40}  build {}",
                    s(&v["sid"]),
                    s(&v["unique_name"]),
                    crate::model::text::escape_for_terminal(&remote::environment_url(&c, &v)),
                    s(&v["build_sid"])
                );
            }
        }
        "builds" => {
            let svc = need_service()?;
            for v in c.list(&format!("/v1/Services/{}/Builds", s(&svc["sid"])), "builds")? {
                let n = v["asset_versions"].as_array().map(Vec::len).unwrap_or(0);
                println!(
                    "{:<34}  {:<10}  {n:>5} assets  {}",
                    s(&v["sid"]),
                    s(&v["status"]),
                    s(&v["date_created"])
                );
            }
        }
        "assets" => {
            let svc = need_service()?;
            for v in c.list(&format!("/v1/Services/{}/Assets", s(&svc["sid"])), "assets")? {
                println!("{:<34}  {}", s(&v["sid"]), s(&v["friendly_name"]));
            }
        }
        other => {
            return Err(format!(
                "cannot list {other:?}: choose services, environments, builds or assets"
            )
            .into());
        }
    }
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
    /// server URL (default: $ASSETD_URL or http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// PEM certificates to verify an https server against (a private CA or a self-signed
    /// server certificate; default $ASSETD_CA_CERT, else the built-in public roots)
    #[argh(option)]
    ca_cert: Option<std::path::PathBuf>,
    /// account SID or API key SID (default: $ASSETD_ACCOUNT_SID or $TWILIO_ACCOUNT_SID)
    #[argh(option)]
    account_sid: Option<String>,
    /// auth token or API key secret (default: $ASSETD_AUTH_TOKEN or $TWILIO_AUTH_TOKEN)
    #[argh(option)]
    auth_token: Option<String>,
}

fn suffix(s: &str) -> Option<&str> {
    if s.is_empty() || s == "production" {
        None
    } else {
        Some(s)
    }
}

/// Deploys `build` to `env`; an already active build is reported, not an error.
fn deploy(c: &crate::client::Client, service_sid: &str, env: &Value, build: &str) -> CliResult {
    let url = crate::model::text::escape_for_terminal(&remote::environment_url(c, env));
    let path = format!(
        "/v1/Services/{service_sid}/Environments/{}/Deployments",
        s(&env["sid"])
    );
    match c.post_form(&path, &[("BuildSid", build)]) {
        Ok(d) => {
            println!(
                "deployed build {build} to {url} (deployment {})",
                s(&d["sid"])
            );
            Ok(())
        }
        Err(e) if e.status == Some(409) => {
            println!("build {build} is already active on {url}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub fn promote(a: PromoteArgs) -> CliResult {
    let c = remote::connect(a.url, a.ca_cert, a.account_sid, a.auth_token)?;
    let svc = remote::service(&c, &a.service)?;
    let sid = s(&svc["sid"]).to_string();
    let from = remote::find_environment(&c, &sid, suffix(&a.from))?
        .ok_or_else(|| format!("service {} has no environment {}", a.service, a.from))?;
    let build = from["build_sid"]
        .as_str()
        .ok_or_else(|| format!("environment {} has nothing deployed to promote", a.from))?
        .to_string();
    let to = remote::environment(&c, &sid, suffix(&a.to))?;
    deploy(&c, &sid, &to, &build)
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
    /// server URL (default: $ASSETD_URL or http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// PEM certificates to verify an https server against (a private CA or a self-signed
    /// server certificate; default $ASSETD_CA_CERT, else the built-in public roots)
    #[argh(option)]
    ca_cert: Option<std::path::PathBuf>,
    /// account SID or API key SID (default: $ASSETD_ACCOUNT_SID or $TWILIO_ACCOUNT_SID)
    #[argh(option)]
    account_sid: Option<String>,
    /// auth token or API key secret (default: $ASSETD_AUTH_TOKEN or $TWILIO_AUTH_TOKEN)
    #[argh(option)]
    auth_token: Option<String>,
}

pub fn rollback(a: RollbackArgs) -> CliResult {
    let c = remote::connect(a.url, a.ca_cert, a.account_sid, a.auth_token)?;
    let svc = remote::service(&c, &a.service)?;
    let sid = s(&svc["sid"]).to_string();
    let env = remote::find_environment(&c, &sid, suffix(&a.environment))?
        .ok_or_else(|| format!("service {} has no environment {}", a.service, a.environment))?;
    let current = env["build_sid"].as_str().map(str::to_string);
    let build = match a.build {
        Some(b) => b,
        None => {
            // Deployments come newest first; the first other build that still exists is the
            // previous one (a build may have been deleted since it was deployed).
            let deps = c.list(
                &format!(
                    "/v1/Services/{sid}/Environments/{}/Deployments",
                    s(&env["sid"])
                ),
                "deployments",
            )?;
            let mut previous = None;
            for b in deps.iter().filter_map(|d| d["build_sid"].as_str()) {
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
    deploy(&c, &sid, &env, &build)
}
