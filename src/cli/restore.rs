//! `soko restore <set-or-archive>`: requires soko to be stopped (it holds the appliance lock
//! while it works, so `soko up` cannot start meanwhile). Checks every archive and the schema
//! version first, then restores the secrets (only where there are none), the database, the
//! vectors and the images, and says how to start soko again.

use crate::config::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

use super::EXIT_CONFIG;
use super::migrate::{close_database, open_database};
use crate::config::secrets::Secrets;
use crate::ops::admin;
use crate::store;
use crate::workers::backup::{Target, binlog, replay, restore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A backup set directory (`<backup.dir>/<set>`), its manifest.json, or one archive in it
    /// (restores only that part).
    path: PathBuf,
    /// Do not ask for confirmation (needed when not run from a terminal).
    #[arg(long)]
    yes: bool,
    /// Point-in-time recovery: after the dump, replay the shipped binlogs up to this instant
    /// (RFC 3339, e.g. 2026-12-04T10:15:00Z); without a value, to the end of the shipped logs.
    #[arg(long, num_args = 0..=1, default_missing_value = "end", value_name = "TIME")]
    until: Option<String>,
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    if admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(5))
        .await
        .is_ok()
    {
        eprintln!(
            "soko: soko is running: stop it first (`systemctl stop soko` or Ctrl-C on `soko up`), \
             restore, then start it again"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    crate::workers::backup::make_private_dir(&cfg.run_dir())?;
    let lock_path = cfg.run_dir().join("soko.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        eprintln!(
            "soko: another soko holds {}: stop it first",
            lock_path.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };

    let plan = restore::plan(&args.path)?;
    println!(
        "backup set {} (made by soko {}, schema version {}):",
        plan.manifest.set_id, plan.manifest.soko_version, plan.manifest.schema_version
    );
    for p in &plan.parts {
        println!("  {:<9} {}", p.kind, p.path.display());
    }
    if plan.part(crate::config::backup::Kind::Secrets).is_none() {
        eprintln!("WARNING: this backup has NO copy of the secrets file");
    }
    let replay = match &args.until {
        Some(u) => {
            let until = replay::Until::parse(u)?;
            let rp = replay::plan(&plan, until)?;
            println!(
                "point in time: {} (window of set {}: {} to {}), {} binlog file(s) after the dump at {}:{}",
                rp.stop
                    .map(binlog::rfc3339)
                    .unwrap_or_else(|| "the end of the shipped binlogs".into()),
                rp.set_id,
                binlog::rfc3339(rp.from),
                binlog::rfc3339(rp.until),
                rp.files.len(),
                rp.start.file,
                rp.start.pos
            );
            Some(rp)
        }
        None => None,
    };
    print!("checking the archives ... ");
    restore::verify(&plan, store::migrate::expected_version()).await?;
    if let Some(rp) = &replay {
        replay::verify(rp).await?;
    }
    println!("ok");
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "soko: restoring replaces the database and images of {}; pass --yes to confirm",
                cfg.data_dir.display()
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        println!(
            "This replaces the database and images of {}. Type yes to go on:",
            cfg.data_dir.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("nothing was changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    if restore::secrets(&plan, &cfg.secrets_path()).await? {
        println!("secrets file restored to {}", cfg.secrets_path().display());
    } else if plan.part(crate::config::backup::Kind::Secrets).is_some() {
        println!(
            "secrets file kept as it is ({} exists)",
            cfg.secrets_path().display()
        );
    }
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let result = async {
        let target = Target::from_config(&cfg, &secrets)?;
        anyhow::Ok(
            restore::restore_until(
                &plan,
                &pool,
                &target,
                &cfg.backup.dir_for(&cfg),
                replay.as_ref(),
            )
            .await?,
        )
    }
    .await;
    close_database(pool, temporary).await;
    let report = result?;
    for r in &report.restored {
        println!("restored {r}");
    }
    if let Some(r) = &report.replayed {
        println!(
            "replayed {} binlog file(s) ({}): {} transactions, {} row changes, events up to {}{} in {:.2} s",
            r.files.len(),
            if r.files.is_empty() {
                "none after the dump".to_owned()
            } else {
                r.files.join(", ")
            },
            r.scan.transactions,
            r.scan.rows,
            r.scan
                .last_event_at
                .map(binlog::rfc3339)
                .unwrap_or_else(|| "-".into()),
            r.scan
                .last_gtid
                .as_deref()
                .map(|g| format!(" (last GTID {g})"))
                .unwrap_or_default(),
            r.secs
        );
    }
    println!(
        "schema version {} | {} image files | {} products queued to rebuild the vector index{}",
        report.schema_version,
        report.image_files,
        report.requeued,
        if report.dangling_vectors > 0 {
            format!(
                " | {} vectors of deleted products dropped",
                report.dangling_vectors
            )
        } else {
            String::new()
        }
    );
    println!("done: start soko again with `soko up` (or `systemctl start soko`)");
    Ok(ExitCode::SUCCESS)
}
