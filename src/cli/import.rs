//! `assetd import`: offline import of a Serverless Toolkit project into the data directory.

use super::{CliResult, PublicBase, default_data, open_store};
use crate::model::{Visibility, domain};
use crate::store::{StoreError, Tx};
use argh::FromArgs;
use std::fs::File;
use std::path::PathBuf;

/// Import a Serverless Toolkit project (assets/ or static/) offline: new versions, one build,
/// deployed to the environment, all in one transaction.
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
pub struct Args {
    /// the project directory
    #[argh(positional)]
    dir: PathBuf,
    /// service unique name (created when missing)
    #[argh(option)]
    service: String,
    /// environment domain suffix (default: dev; created when missing)
    #[argh(option)]
    environment: Option<String>,
    /// deploy to the environment without suffix (production)
    #[argh(switch)]
    production: bool,
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
}

/// What one import did.
struct Report {
    /// The main account, when this import created it (an empty data directory).
    created_account: Option<crate::store::Account>,
    env_label: String,
    build_sid: String,
    files: usize,
    new_files: usize,
    new_bytes: u64,
}

pub fn run(args: Args) -> CliResult {
    domain::check_service_name(&args.service)?;
    if args.production && args.environment.is_some() {
        return Err("--environment and --production are alternatives: pass one".into());
    }
    let suffix = if args.production {
        None
    } else {
        args.environment
            .as_deref()
            .map_or(Some("dev"), super::remote::suffix)
    };
    if let Some(s) = suffix {
        domain::check_suffix(s)?;
    }
    let project = crate::project::read(&args.dir)?;
    let store = open_store(&args.data)?;
    let report = store.write(|tx| import(tx, &args.service, suffix, &project))?;
    let base = store
        .read()?
        .setting("public_base")?
        .and_then(|s| PublicBase::decode(&s))
        .unwrap_or(PublicBase {
            scheme: "http".into(),
            base_domain: "localhost".into(),
            port: Some(super::serve::DEFAULT_PORT),
        });
    let env_url = base.environment_url(&report.env_label);
    if let Some(a) = &report.created_account {
        println!(
            "created the main account (`assetd account` shows it again while the server is stopped):"
        );
        println!("  ASSETD_ACCOUNT_SID={}", a.sid);
        println!("  ASSETD_AUTH_TOKEN={}", a.auth_token);
    }
    for f in &project.files {
        match f.visibility {
            Visibility::Private => {
                println!("{:<9} {} (private: owner API only)", f.visibility, f.path)
            }
            v => println!("{v:<9} {env_url}{}", f.path),
        }
    }
    for s in &project.skipped {
        println!("skipped   {s} (hidden file)");
    }
    for (from, to) in project.renamed() {
        println!("renamed   {from} -> {to} (the toolkit turns whitespace into -)");
    }
    println!(
        "deployed build {} to {env_url}: {} files, {} new ({} bytes new)",
        report.build_sid, report.files, report.new_files, report.new_bytes
    );
    Ok(())
}

fn import(
    tx: &mut Tx<'_>,
    service_name: &str,
    suffix: Option<&str>,
    project: &crate::project::Project,
) -> Result<Report, StoreError> {
    let (account, created) = tx.ensure_main_account()?;
    let service = match tx.find_service(&account.sid, service_name)? {
        Some(s) => s,
        None => tx.create_service(&account.sid, service_name, service_name)?,
    };
    let wanted = suffix.map(str::to_ascii_lowercase);
    let env = match tx
        .environments(&service.sid)?
        .into_iter()
        .find(|e| e.domain_suffix.as_deref().map(str::to_ascii_lowercase) == wanted)
    {
        Some(e) => e,
        None => {
            tx.create_environment(&service, &domain::environment_unique_name(suffix), suffix)?
        }
    };
    let (mut new_files, mut new_bytes) = (0usize, 0u64);
    let mut versions = Vec::with_capacity(project.files.len());
    for f in &project.files {
        if !tx.has_blob(&f.digest)? {
            let mut file = File::open(&f.source)
                .map_err(|e| StoreError::Invalid(format!("cannot read {}: {e}", f.relative)))?;
            let put = tx
                .put_blob(&mut file, Some(f.digest), None)
                .map_err(|e| match e {
                    StoreError::DigestMismatch { .. } => StoreError::Invalid(format!(
                        "{} changed while it was imported; nothing was changed, run the import again",
                        f.relative
                    )),
                    other => other,
                })?;
            if put.new {
                new_files += 1;
                new_bytes += put.size;
            }
        }
        let asset = tx.asset_named(&service, f.path.as_str())?;
        let v = tx.create_version(&asset, &f.path, f.visibility, f.content_type, &f.digest)?;
        versions.push(v.sid);
    }
    let mut build = tx.create_build(&service, &versions, serde_json::json!([]), None)?;
    tx.build_now(&mut build)?;
    tx.deploy(&env, &build.sid)?;
    Ok(Report {
        created_account: created.then_some(account),
        env_label: env.label,
        build_sid: build.sid,
        files: project.files.len(),
        new_files,
        new_bytes,
    })
}
