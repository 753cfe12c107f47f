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
use crate::workers::backup::{Target, restore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A backup set directory (`<backup.dir>/<set>`), its manifest.json, or one archive in it
    /// (restores only that part).
    path: PathBuf,
    /// Do not ask for confirmation (needed when not run from a terminal).
    #[arg(long)]
    yes: bool,
    /// The age identity file from `soko backup keygen`: decrypts the archives, and its
    /// verifying-key line checks the manifests' signatures. Without it, this box's own keys
    /// (its secrets file) are used.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Also trust manifests signed by this key (64 hex characters, printed by `soko backup
    /// keygen`): for a set made unencrypted, restored on a new box.
    #[arg(long, value_name = "KEY")]
    verify_key: Vec<String>,
    /// Restore a set whose manifest is unsigned or signed by an unknown key (a set made before
    /// manifests were signed). Archives are still checked against the manifest.
    #[arg(long)]
    trust_unverified: bool,
}

/// What the restore opens sets with: the `--identity` file's identity (else this box's), the
/// keys it trusts (this box's, the identity file's, `--verify-key`).
pub fn opener(
    cfg: &Config,
    identity: Option<&std::path::Path>,
    verify_keys: &[String],
    trust_unverified: bool,
) -> anyhow::Result<restore::Opener> {
    let own = Secrets::read(&cfg.secrets_path())?.unwrap_or_default();
    let mut opener = restore::Opener::from_box(&own)?;
    if let Some(path) = identity {
        opener.use_identity_file(path)?;
    }
    for k in verify_keys {
        opener.trust_key(k)?;
    }
    opener.unverified_ok = trust_unverified;
    Ok(opener)
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
    let opener = opener(
        &cfg,
        args.identity.as_deref(),
        &args.verify_key,
        args.trust_unverified,
    )?;
    print!("checking the signature and the archives ... ");
    let warnings = restore::verify(&plan, store::migrate::expected_version(), &opener).await?;
    println!("ok");
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
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
    if restore::secrets(&plan, &cfg.secrets_path(), &opener).await? {
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
            restore::restore(&plan, &pool, &target, &cfg.backup.dir_for(&cfg), &opener).await?,
        )
    }
    .await;
    close_database(pool, temporary).await;
    let report = result?;
    for r in &report.restored {
        println!("restored {r}");
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
