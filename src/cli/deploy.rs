//! `assetd deploy`: deploy a Serverless Toolkit project to a running server, sending only the
//! bytes it does not have.

use super::CliResult;
use super::remote;
use crate::client::Client;
use crate::model::Visibility;
use crate::project::{Project, ProjectFile};
use argh::FromArgs;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Deploy a project (assets/ or static/) to a running server: hash, upload only what is
/// missing, build, deploy, print the URLs.
#[derive(FromArgs)]
#[argh(subcommand, name = "deploy")]
pub struct Args {
    /// the project directory (default: the current directory)
    #[argh(positional)]
    dir: Option<PathBuf>,
    /// service unique name (created when missing). Each flag overrides .assetd.toml in the
    /// project directory, which overrides the defaults
    #[argh(option)]
    service: Option<String>,
    /// environment domain suffix (default: .assetd.toml, else dev; created when missing);
    /// `production` is the environment without a suffix
    #[argh(option)]
    environment: Option<String>,
    /// deploy to the environment without a suffix (production)
    #[argh(switch)]
    production: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    json: bool,
    /// print every file's URL (default: only for fewer than 20 files)
    #[argh(switch)]
    verbose: bool,
    /// list what would change and change nothing
    #[argh(switch)]
    dry_run: bool,
    /// parallel uploads (default 4)
    #[argh(option, default = "4")]
    jobs: usize,
}

/// `.assetd.toml` in the project directory: defaults for the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectConfig {
    url: Option<String>,
    service: Option<String>,
    environment: Option<String>,
    production: Option<bool>,
}

fn read_config(dir: &Path) -> Result<ProjectConfig, String> {
    let path = dir.join(".assetd.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            format!(
                "{}: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or("")
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProjectConfig::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Progress on stderr: a bar on a terminal, nothing otherwise (the summary follows).
struct Progress {
    tty: bool,
    total_files: usize,
    total_bytes: u64,
    files: AtomicUsize,
    bytes: AtomicU64,
    lock: Mutex<()>,
}

impl Progress {
    fn tick(&self, bytes: u64) {
        let files = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        let done = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if !self.tty {
            return;
        }
        let _guard = self.lock.lock();
        let width = 30;
        let filled = (done * width as u64)
            .checked_div(self.total_bytes)
            .map_or(width, |f| f as usize);
        eprint!(
            "\r[{}{}] {files}/{} files, {:.1}/{:.1} MiB",
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            self.total_files,
            done as f64 / 1048576.0,
            self.total_bytes as f64 / 1048576.0
        );
        if files == self.total_files {
            eprintln!();
        }
    }
}

pub fn run(args: Args) -> CliResult {
    let started = Instant::now();
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let config = read_config(&dir)?;
    // Each flag overrides .assetd.toml, which overrides the default; the choice and where it
    // came from are said before any work.
    let (service_name, service_from) = match (&args.service, &config.service) {
        (Some(s), _) => (s.clone(), "--service"),
        (None, Some(s)) => (s.clone(), ".assetd.toml"),
        (None, None) => {
            return Err(
                "no service: pass --service NAME or set service = \"NAME\" in .assetd.toml".into(),
            );
        }
    };
    crate::model::domain::check_service_name(&service_name)?;
    if args.production && args.environment.is_some() {
        return Err("--environment and --production are alternatives: pass one".into());
    }
    let (suffix, env_from) = if args.production {
        (None, "--production")
    } else if let Some(e) = &args.environment {
        (remote::suffix(e).map(str::to_string), "--environment")
    } else if config.production == Some(true) {
        (None, ".assetd.toml")
    } else if let Some(e) = &config.environment {
        (remote::suffix(e).map(str::to_string), ".assetd.toml")
    } else {
        (Some("dev".to_string()), "the default")
    };
    if let Some(s) = &suffix {
        crate::model::domain::check_suffix(s)?;
    }
    if args.jobs == 0 || args.jobs > 64 {
        return Err("--jobs must be between 1 and 64".into());
    }
    let project = crate::project::read(&dir)?;
    let url_from = if super::remote_opts().url.is_some() {
        "--url"
    } else if config.url.is_some() {
        ".assetd.toml"
    } else {
        "$ASSETD_URL or the default"
    };
    let client = remote::connect_with(config.url.clone())?;
    if !args.json {
        println!(
            "deploying {} to service {service_name} (from {service_from}), environment {} (from {env_from}), on {} (from {url_from})",
            dir.display(),
            suffix.as_deref().unwrap_or("production (no suffix)"),
            client.base
        );
        for (from, to) in project.renamed() {
            println!("renamed   {from} -> {to} (the toolkit turns whitespace into -)");
        }
    }

    let service = match remote::find_service(&client, &service_name)? {
        Some(s) => s,
        None if args.dry_run => json!({"sid": null, "unique_name": service_name}),
        None => remote::create_service(&client, &service_name)?,
    };
    let service_sid = service["sid"].as_str().map(str::to_string);
    let rows: Vec<Value> = project
        .files
        .iter()
        .map(|f| {
            json!([
                f.path.as_str(),
                f.digest.to_hex(),
                f.size,
                f.visibility.as_str(),
                f.content_type
            ])
        })
        .collect();

    if args.dry_run {
        let target = DryTarget {
            service: &service_name,
            service_sid: service_sid.as_deref(),
            suffix: suffix.as_deref(),
        };
        return dry_run(&client, &args, &project, &target, &rows);
    }
    let service_sid = service_sid.ok_or("the server's service has no sid")?;
    let env = remote::environment(&client, &service_sid, suffix.as_deref())?;
    let env_sid = env["sid"]
        .as_str()
        .ok_or("the server's environment has no sid")?
        .to_string();

    // Files the environment serves now that this project drops: said, then the project wins
    // (as with the toolkit, the project is the truth; `--dry-run` shows them without deploying).
    let live = match env["build_sid"].as_str() {
        Some(b) => remote::build_files(&client, &service_sid, b)?,
        None => Default::default(),
    };
    let dropped: Vec<String> = live
        .keys()
        .filter(|p| !project.files.iter().any(|f| f.path.as_str() == p.as_str()))
        .cloned()
        .collect();
    if !dropped.is_empty() && !args.json {
        println!(
            "{} live on {} {} not in this project and will stop being served: {}",
            plural(dropped.len(), "file"),
            suffix.as_deref().unwrap_or("production"),
            if dropped.len() == 1 { "is" } else { "are" },
            remote::first_few(&dropped)
        );
    }

    let manifest = client.post_json(
        &format!("/v1/Services/{service_sid}/Manifests"),
        &json!({"files": rows}),
    )?;
    let manifest_sid = manifest["sid"]
        .as_str()
        .ok_or("the server's manifest has no sid")?
        .to_string();
    let missing: Vec<String> = manifest["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let to_send: Vec<&ProjectFile> = missing
        .iter()
        .filter_map(|d| project.files.iter().find(|f| f.digest.to_hex() == *d))
        .collect();
    let bytes_sent = upload(
        &client,
        &to_send,
        args.jobs,
        !args.json && std::io::stderr().is_terminal(),
    )?;

    let built = client.post_form(
        &format!("/v1/Services/{service_sid}/Manifests/{manifest_sid}/Build"),
        &[("Environment", &env_sid)],
    )?;
    let build_sid = built["build_sid"].as_str().unwrap_or("").to_string();
    wait_for_build(&client, &service_sid, &build_sid)?;
    let env_url = remote::environment_url(&client, &env);
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let files: Vec<Value> = project
            .files
            .iter()
            .map(|f| {
                let url = (f.visibility != Visibility::Private).then(|| format!("{env_url}{}", f.path));
                json!({"path": f.path.as_str(), "visibility": f.visibility.as_str(), "url": url, "digest": f.digest.to_hex(), "size": f.size})
            })
            .collect();
        println!(
            "{}",
            json!({
                "service_sid": service_sid, "environment_sid": env_sid, "build_sid": build_sid,
                "deployment_sid": built["deployment_sid"], "unchanged": built["unchanged"],
                "environment_url": env_url, "files": files, "new_files": to_send.len(),
                "bytes_sent": bytes_sent, "wire_bytes": client.wire_bytes(), "seconds": seconds,
                "removed": dropped, "renamed": project.renamed().iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    if args.verbose || project.files.len() < 20 {
        for f in &project.files {
            match f.visibility {
                Visibility::Private => println!(
                    "{:<9} {}  (owner API: {}/v1/Services/{service_sid}/Builds/{build_sid}/PrivateAssets)",
                    f.visibility, f.path, client.base
                ),
                v => println!("{v:<9} {env_url}{}", f.path),
            }
        }
    }
    for s in &project.skipped {
        println!("skipped   {s} (hidden file)");
    }
    let state = if built["unchanged"] == true {
        "unchanged, still"
    } else {
        "deployed"
    };
    let count = |v: Visibility| project.files.iter().filter(|f| f.visibility == v).count();
    println!("{state} build {build_sid}");
    println!("  service      {service_name} ({service_sid})");
    println!(
        "  environment  {} ({env_sid})",
        suffix.as_deref().unwrap_or("production")
    );
    println!("  URL          {env_url}");
    println!(
        "  files        {}, {} new, {} unchanged, {} removed ({} public, {} protected, {} private)",
        plural(project.files.len(), "file"),
        to_send.len(),
        project.files.len() - to_send.len(),
        dropped.len(),
        count(Visibility::Public),
        count(Visibility::Protected),
        count(Visibility::Private),
    );
    println!(
        "  sent         {} ({} on the wire) in {seconds:.1} s",
        remote::human_bytes(bytes_sent),
        remote::human_bytes(client.wire_bytes())
    );
    if !(args.verbose || project.files.len() < 20) {
        println!("  (--verbose lists every file's URL)");
    }
    Ok(())
}

/// "1 file", "2 files".
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Where a dry run would deploy.
struct DryTarget<'a> {
    service: &'a str,
    /// `None`: the service does not exist yet.
    service_sid: Option<&'a str>,
    /// The environment's domain suffix (`None`: production).
    suffix: Option<&'a str>,
}

fn dry_run(
    client: &Client,
    args: &Args,
    project: &Project,
    target: &DryTarget<'_>,
    rows: &[Value],
) -> CliResult {
    let service_sid = target.service_sid;
    let env = match service_sid {
        Some(sid) => remote::find_environment(client, sid, target.suffix)?,
        None => None,
    };
    let env_exists = env.is_some();
    // What the deploy would stop serving.
    let dropped: Vec<String> = match (
        service_sid,
        env.as_ref().and_then(|e| e["build_sid"].as_str()),
    ) {
        (Some(sid), Some(build)) => remote::build_files(client, sid, build)?
            .into_keys()
            .filter(|p| !project.files.iter().any(|f| f.path.as_str() == p.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    let missing: Vec<String> = match service_sid {
        Some(sid) => {
            let m = client.post_json(
                &format!("/v1/Services/{sid}/Manifests?DryRun=true"),
                &json!({"files": rows}),
            )?;
            m["missing"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
        // No service yet, so no manifest: ask which blobs the account lacks, one by one (the
        // account may hold them from another service).
        None => {
            let mut missing = Vec::new();
            for f in &project.files {
                let d = f.digest.to_hex();
                if !missing.contains(&d) && !client.exists(&format!("/v1/Blobs/{d}"))? {
                    missing.push(d);
                }
            }
            missing
        }
    };
    let new: Vec<&ProjectFile> = project
        .files
        .iter()
        .filter(|f| missing.contains(&f.digest.to_hex()))
        .collect();
    let bytes: u64 = new.iter().map(|f| f.size).sum();
    if args.json {
        let files: Vec<&str> = new.iter().map(|f| f.path.as_str()).collect();
        println!(
            "{}",
            json!({"dry_run": true, "service_exists": service_sid.is_some(), "environment_exists": env_exists, "upload": files, "bytes": bytes, "files": project.files.len(), "removed": dropped})
        );
        return Ok(());
    }
    if service_sid.is_none() {
        println!("would create service {}", target.service);
    }
    if !env_exists {
        match target.suffix {
            Some(s) => println!("would create environment {s}"),
            None => println!("would create the production environment (no suffix)"),
        }
    }
    for f in &new {
        println!(
            "would upload {} ({} bytes, {})",
            f.path, f.size, f.visibility
        );
    }
    if !dropped.is_empty() {
        println!(
            "would stop serving {} live on {}: {}",
            plural(dropped.len(), "file"),
            target.suffix.unwrap_or("production"),
            remote::first_few(&dropped)
        );
    }
    println!(
        "dry run: {} files, {} to upload ({bytes} bytes); nothing was changed",
        project.files.len(),
        new.len()
    );
    Ok(())
}

/// Uploads the files in parallel; returns the bytes sent.
fn upload(
    client: &Client,
    files: &[&ProjectFile],
    jobs: usize,
    tty: bool,
) -> Result<u64, Box<dyn std::error::Error>> {
    let progress = Arc::new(Progress {
        tty,
        total_files: files.len(),
        total_bytes: files.iter().map(|f| f.size).sum(),
        files: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
        lock: Mutex::new(()),
    });
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.len() || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let f = files[i];
                    // Streamed from disk; the server hashes it on arrival, so a file that
                    // changed since it was hashed here is refused (and nothing stored).
                    let result = client
                        .put_file(&format!("/v1/Blobs/{}", f.digest.to_hex()), &f.source)
                        .map_err(|e| {
                            let changed = e.message.contains("digest mismatch")
                                || e.message.contains("shorter than its Content-Length");
                            if e.status == Some(400) && changed {
                                format!("{} changed during the deploy; run it again", f.relative)
                            } else {
                                format!("{}: {e}", f.relative)
                            }
                        });
                    match result {
                        Ok(_) => progress.tick(f.size),
                        Err(e) => {
                            if let Ok(mut slot) = failure.lock() {
                                slot.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e.into());
    }
    Ok(progress.bytes.load(Ordering::Relaxed))
}

/// Polls the build status (after 50 ms, then doubling to every second, up to 5 minutes) until
/// completed or failed.
fn wait_for_build(
    client: &Client,
    service_sid: &str,
    build_sid: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        let s = client.get(&format!(
            "/v1/Services/{service_sid}/Builds/{build_sid}/Status"
        ))?;
        match s["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed") => return Err(format!("build {build_sid} failed").into()),
            _ if Instant::now() > deadline => {
                return Err(format!("build {build_sid} did not complete within 5 minutes").into());
            }
            _ => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}
